"""A whole compose project -> StackSpec, with the checks that span services."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controller.core.boundary import (
    ConfigFiles,
    confine,
)
from controller.core.compose.context import StackCtx
from controller.core.compose.crosscheck import check_depends, cross_check
from controller.core.compose.include import Project, expand
from controller.core.compose.interpolate import (
    DotenvError,
    Substituted,
    interpolate_node,
    parse_dotenv,
)
from controller.core.compose.keys import TOP_LEVEL_KEYS
from controller.core.compose.link_aliases import alias_links
from controller.core.compose.loading import Loader
from controller.core.compose.merge import merge_files
from controller.core.compose.profiles import how, select_services
from controller.core.compose.secrets import check_definitions
from controller.core.compose.service import translate_service
from controller.core.compose.swarm_check import check_swarm
from controller.core.compose.top_objects import BAD_NAME, top_networks, top_volumes
from controller.core.compose.unicity import enforce_unicity
from controller.core.compose.xberth import proxy_spec, stack_backend
from controller.core.model import (
    NAME_RE,
    Location,
    ProxySpec,
    ServiceSpec,
    StackSpec,
)
from controller.core.peers import layout_for
from controller.core.yamlsrc import COMPOSE_TAGS, Located, Node, Path, load_node, unwrap
from controller.errors import ConfigError, Problem, brief

PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_TOP_REJECTED: dict[str, str] = {}  # every compose-spec top-level key is honoured now


def normalize_project(name: str) -> str:
    """Compose's normalisation of a directory or `name:` into a project name."""
    kept = "".join(re.findall(r"[a-z0-9_-]", name.lower()))
    return kept.lstrip("_-")


def _read_dotenv(
    path: str, environ: Mapping[str, str], files: ConfigFiles
) -> tuple[dict[str, str], list[Problem]]:
    if (problem := confine(files, path)) is not None:
        return {}, [Problem(path, None, "", f"refused: {problem}")]
    try:
        text = files.read_text(path)
    except FileNotFoundError:
        return {}, []
    except ConfigError as exc:
        return {}, list(exc.problems)
    try:
        return parse_dotenv(text, environ=environ), []
    except DotenvError as exc:
        return {}, [Problem(path, exc.line, "", str(exc))]


def _parse_files(
    files: Sequence[tuple[str, str]], base: Project, loader: Loader
) -> tuple[list[Node], list[Problem]]:
    """Each file parsed and interpolated, then its includes and extends applied (compose
    does both per file, before the files are merged)."""
    nodes: list[Node] = []
    problems: list[Problem] = []
    for path, text in files:
        try:
            node = load_node(text, path, tags=COMPOSE_TAGS)
        except ConfigError as exc:
            problems += exc.problems
            continue
        if not isinstance(node.value, dict):
            problems.append(Problem(path, 1, "", "a compose file must be a mapping"))
            continue
        node, found = interpolate_node(node, base.lookup)
        problems += found
        if not found:
            nodes.append(expand(node, replace(base, key=loader.sources.resolve(path)), loader))
    return nodes, problems + loader.problems


def _project(
    loc: Located, explicit: str | None, project_dir: str, env: tuple[Mapping[str, str], str]
) -> str:
    """Compose's precedence: an explicit name, then COMPOSE_PROJECT_NAME (process
    environment over the project's `.env`; like an explicit name it must already be
    normalised), then `name:` (normalised), then the project directory (normalised)."""
    if loc.data.get("name") is not None and not isinstance(loc.data["name"], str):
        loc.error(("name",), f"must be a string, got {brief(loc.data['name'])}")
    if explicit is not None:
        if not PROJECT_RE.fullmatch(explicit):
            loc.error(("name",), f"project name {brief(explicit)} must match {PROJECT_RE.pattern}")
        return explicit
    variables, source = env  # source: the file it came from, or "" (the environment)
    from_env = variables.get("COMPOSE_PROJECT_NAME")
    if from_env:
        if not PROJECT_RE.fullmatch(from_env):
            where = f"in {source}" if source else "in the environment"
            loc.problems.append(
                Problem(
                    source or loc.where(()).file,
                    None,
                    "COMPOSE_PROJECT_NAME",
                    f"{brief(from_env)} ({where}) is not a project name: it must match "
                    f"{PROJECT_RE.pattern} (compose refuses it too)",
                )
            )
        return from_env
    name = loc.data.get("name")
    if isinstance(name, str) and name:
        normalized = normalize_project(name)
        if not normalized:
            loc.error(("name",), f"cannot make a project name of {brief(name)}")
        return normalized
    normalized = normalize_project(posixpath.basename(project_dir.rstrip("/")))
    if not normalized:
        loc.error(("name",), "cannot derive a project name from the directory; set `name:`")
    return normalized


def _check_text(loc: Located) -> None:
    """No key or text value may hold a NUL character: the engine refuses it at create time
    (environment, command, labels, user, sysctls...), so `validate` must refuse it first."""
    stack: list[tuple[Path, Any]] = [((), loc.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if "\x00" in str(k):
                    loc.error(path, "a key contains a NUL character")
                stack.append(((*path, k), v))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            loc.error(path, "contains a NUL character (the Docker engine refuses it)")


def _check_top(loc: Located) -> None:
    for key in loc.data:
        if key in _TOP_REJECTED:
            loc.error((key,), _TOP_REJECTED[key])
        elif key not in TOP_LEVEL_KEYS and not key.startswith("x-"):
            loc.error(
                (key,), f"unknown top-level key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}"
            )


def load_stack(
    *,
    project: str | None,
    files: Sequence[tuple[str, str]],
    environ: Mapping[str, str],
    sources: ConfigFiles,
) -> StackSpec:
    """Parse, interpolate, merge and translate compose files; all problems in one ConfigError.

    `.env` is read from the first compose file's directory (the project directory, against
    which every relative path resolves, as in compose); the real environment wins over it.
    """
    if not files:
        raise ConfigError([Problem("", None, "compose", "no compose file given")])
    project_dir = posixpath.dirname(files[0][0])
    dotenv_path = posixpath.join(project_dir, ".env")
    env, lookup, loader, loc = _read_merged(files, environ, sources, dotenv_path)
    data = loc.data
    alias_links(data)  # before any service is translated: it adds aliases to the linked
    _check_top(loc)
    _check_text(loc)
    source = "" if "COMPOSE_PROJECT_NAME" in environ else dotenv_path
    name = _project(loc, project, project_dir, (env, source))
    backend = stack_backend(loc, data.get("x-berth"))
    networks = top_networks(loc, name, backend)
    volumes = top_volumes(loc, name, (project_dir, sources))
    ctx = StackCtx(
        loc=loc,
        project=name,
        project_dir=project_dir,
        env=env,
        files=sources,
        networks=networks,
        volumes=volumes,
        backend=backend,
    )
    check_definitions(ctx)  # top-level secrets and configs, used or not
    services, disabled = _services(ctx)
    proxy = _proxy(ctx, services)
    if backend == "swarm":
        raw = data.get("services")
        check_swarm(ctx, [n for n in raw if n not in disabled] if isinstance(raw, dict) else [])
    if loc.problems:
        raise ConfigError(lookup.redact(loc.problems))
    used = {a.network for s in services.values() for a in s.networks}
    if networks["default"].name not in used and "default" not in (data.get("networks") or {}):
        del networks["default"]
    return StackSpec(
        project=name,
        compose_files=tuple(f for f, _ in files),
        services=services,
        networks=networks,
        volumes=volumes,
        proxy=proxy,
        env_files=(dotenv_path, *dict.fromkeys([*loader.read, *ctx.files_read])),
        disabled=disabled,
        backend=backend,
        backend_at=_backend_at(loc),
        warnings=tuple(lookup.redact(loc.warnings)),
    )


def _read_merged(
    files: Sequence[tuple[str, str]],
    environ: Mapping[str, str],
    sources: ConfigFiles,
    dotenv_path: str,
) -> tuple[dict[str, str], Substituted, Loader, Located]:
    """The compose files read (`.env` first, the real environment over it), parsed with
    their includes and merged in order; any problem so far raises the ConfigError."""
    dotenv, problems = _read_dotenv(dotenv_path, environ, sources)
    env = {**dotenv, **environ}
    lookup = Substituted(env)
    loader = Loader(sources)
    base = Project(key="", workdir=posixpath.dirname(files[0][0]), env=env, lookup=lookup, chain=())
    nodes, found = _parse_files(files, base, loader)
    problems += found
    if problems or not nodes:
        raise ConfigError(lookup.redact(problems))
    merged, redefined = enforce_unicity(merge_files(nodes))
    loc = Located(*unwrap(merged), files[0][0])
    loc.warnings += redefined
    return env, lookup, loader, loc


def _backend_at(loc: Located) -> Location | None:
    top = loc.data.get("x-berth")
    if not isinstance(top, dict) or "backend" not in top:
        return None
    where = loc.where(("x-berth", "backend"))
    return Location(where.file, where.line)


def _proxy(ctx: StackCtx, services: Mapping[str, ServiceSpec]) -> ProxySpec | None:
    """The top-level x-berth.proxy, checked against the services it must serve."""
    loc = ctx.loc
    proxy = None
    if loc.data.get("x-berth") is not None:
        proxy = proxy_spec(loc, ("x-berth",), loc.data["x-berth"], ctx=ctx)
    if proxy is not None and proxy.service is not None and proxy.service not in services:
        loc.error(
            ("x-berth", "proxy", "service"),
            f"{brief(proxy.service)} is not a service of this stack",
        )
    if proxy is not None and proxy.switch == "auto" and ctx.backend == "swarm":
        proxy = replace(proxy, switch="dynamic")  # Swarm's nginx is switched through Lua
    if proxy is not None and proxy.switch == "dynamic":
        layout, why = layout_for(proxy, services)
        if layout is None:
            loc.error(("x-berth", "proxy", "switch"), f"the dynamic switch cannot work: {why}")
    if proxy is None and loc.problems == []:
        for svc_name, svc in services.items():
            if svc.berth.upstream is not None:
                loc.error(
                    ("services", svc_name, "x-berth", "upstream"),
                    "served through nginx, but the stack has no top-level x-berth.proxy",
                )
    return proxy


def _services(ctx: StackCtx) -> tuple[dict[str, ServiceSpec], dict[str, str]]:
    """The enabled services, translated, and why each disabled one is (its profiles)."""
    loc = ctx.loc
    raw = loc.data.get("services")
    if not isinstance(raw, dict) or not raw:
        loc.error(("services",), "a compose file for Berth needs at least one service")
        return {}, {}
    selection = select_services(loc, raw, ctx.env)
    if not selection.enabled:
        loc.error(("services",), "every service is disabled by its profiles: " + how(ctx.env))
    services: dict[str, ServiceSpec] = {}
    ports: dict[str, set[int]] = {}
    for name, spec in selection.enabled.items():
        if not NAME_RE.fullmatch(name):
            loc.error(("services", name), BAD_NAME)
            continue
        translated, ports[name] = translate_service(ctx, name, spec)
        if translated is not None:
            services[name] = translated
    cross_check(loc, services, ports)
    services = check_depends(ctx, services, selection)
    return services, {n: selection.why_disabled(n, ctx.env) for n in selection.disabled}
