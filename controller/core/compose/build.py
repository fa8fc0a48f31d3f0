"""A compose `build:` section -> BuildSpec (how Berth builds a service's image on the host).

Compose's rules: `build: ./dir` or a mapping; `context` relative to the project directory
(default `.`); `dockerfile` relative to the context; `args` as a list or map, where a bare
`KEY` takes its value from the project environment and is left out when unset; the image
is named `{project}-{service}` unless `image:` names it. Berth adds the boundary rule:
the context must lie inside the compose root, and desired/ is never sent with it.

BuildKit-only keys (ssh, secrets, additional_contexts, cache_to, platforms...) need a
builder the classic Engine API `/build` does not have: they are refused with the reason.
"""

from __future__ import annotations

import posixpath
from typing import Any

from controller.core.boundary import boundary_problem, inside, path_problem
from controller.core.compose.context import StackCtx
from controller.core.compose.fields import (
    kv_pairs,
    parse_bytes,
    want_bool,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.model import BuildSpec
from controller.core.yamlsrc import Path
from controller.errors import brief

BUILD_KEYS = frozenset(
    {
        "context",
        "dockerfile",
        "dockerfile_inline",
        "args",
        "target",
        "labels",
        "cache_from",
        "network",
        "shm_size",
        "extra_hosts",
        "no_cache",
        "pull",
    }
)
_BUILDKIT = "needs BuildKit; Berth builds through the Engine API's classic /build"
REFUSED_BUILD_KEYS: dict[str, str] = {
    "ssh": _BUILDKIT,
    "secrets": _BUILDKIT,
    "additional_contexts": _BUILDKIT,
    "cache_to": _BUILDKIT,
    "platforms": f"{_BUILDKIT} (multi-platform builds)",
    "entitlements": _BUILDKIT,
    "privileged": _BUILDKIT,
    "provenance": _BUILDKIT,
    "sbom": _BUILDKIT,
    "tags": "is not supported: Berth tags the build with the desired tag only",
    "isolation": "is a Windows engine option",
    "ulimits": "is not supported by the Engine API's /build",
    "no_cache_filter": _BUILDKIT,
}
_REMOTE = ("http://", "https://", "git://", "git@", "ssh://", "github.com/")


def default_image(project: str, service: str) -> str:
    """Compose's name for an image it builds without `image:` (v2: `{project}-{service}`)."""
    return f"{project}-{service}".lower()  # repository names are lowercase


def translate_build(ctx: StackCtx, path: Path, raw: Any, *, has_image: bool) -> BuildSpec | None:
    """None after recording why the section cannot be used."""
    spec = {"context": raw} if isinstance(raw, str) else want_map(ctx.loc, path, raw)
    if spec is None:
        return None
    ok = True
    for key in spec:
        if key in BUILD_KEYS or key.startswith("x-"):
            continue
        why = REFUSED_BUILD_KEYS.get(key, "is not a compose build key")
        ctx.loc.error((*path, key), f"'{key}' {why}")
        ok = False
    context = _context(ctx, path, spec.get("context", "."))
    inline = _opt_str(ctx, (*path, "dockerfile_inline"), spec.get("dockerfile_inline"))
    dockerfile = _opt_str(ctx, (*path, "dockerfile"), spec.get("dockerfile")) or "Dockerfile"
    if context is not None and inline is None:
        # with `image:` too, compose pulls first: a host without the sources is normal, but
        # the builder opens a Dockerfile outside the context itself: it is confined always
        where = (*path, "dockerfile")
        ok = _dockerfile_readable(ctx, where, context, dockerfile, must_exist=not has_image) and ok
    parsed = _options(ctx, path, spec)
    if context is None or parsed is None or not ok:
        return None
    desired = ctx.files.boundary.desired
    exclude = (posixpath.relpath(desired, context),) if inside(desired, context) else ()
    return BuildSpec(
        context=context,
        dockerfile=dockerfile,
        dockerfile_inline=inline,
        exclude=exclude,
        pull_first=has_image,
        **parsed,
    )


def _opt_str(ctx: StackCtx, path: Path, value: Any) -> str | None:
    return None if value is None else want_str(ctx.loc, path, value)


def _context(ctx: StackCtx, path: Path, value: Any) -> str | None:
    here = (*path, "context")
    text = want_str(ctx.loc, here, value)
    if text is None:
        return None
    if text.startswith(_REMOTE) or "://" in text:
        ctx.loc.error(
            here,
            f"{brief(text)}: remote build contexts are not supported; "
            "check the sources out inside the compose root and build from there",
        )
        return None
    full = posixpath.normpath(posixpath.join(ctx.project_dir, text))
    problem = path_problem(full) or boundary_problem(ctx.files.resolve(full), ctx.files.boundary)
    if problem is not None:
        ctx.loc.error(here, f"build context {brief(text)} {problem}")
        return None
    return ctx.files.resolve(full)


def _dockerfile_readable(
    ctx: StackCtx, path: Path, context: str, dockerfile: str, *, must_exist: bool
) -> bool:
    full = posixpath.normpath(posixpath.join(context, dockerfile))
    problem = path_problem(full) or boundary_problem(ctx.files.resolve(full), ctx.files.boundary)
    if problem is not None:
        ctx.loc.error(path, f"Dockerfile {brief(dockerfile)} {problem}")
        return False
    if not must_exist:
        return True
    try:
        ctx.files.read_text(full)
    except FileNotFoundError:
        ctx.loc.error(path, f"no Dockerfile at {full} (build context {context})")
        return False
    except Exception as exc:  # ConfigError: not a regular file, too large, not UTF-8
        ctx.loc.error(path, f"Dockerfile {full} cannot be read: {exc}")
        return False
    return True


def _pairs(ctx: StackCtx, path: Path, value: Any, *, environ: bool) -> tuple[tuple[str, str], ...]:
    pairs = kv_pairs(ctx.loc, path, value) if value is not None else {}
    out: list[tuple[str, str]] = []
    for key, val in (pairs or {}).items():
        if val is None and environ:  # compose: a bare KEY takes the project environment's
            if key in ctx.env:
                out.append((key, ctx.env[key]))
            continue
        out.append((key, val or ""))
    return tuple(out)


def _hosts(ctx: StackCtx, path: Path, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if isinstance(value, dict):  # HOST: IP or HOST: [IP, ...], as the service's extra_hosts
        lists = {k: want_str_list(ctx.loc, (*path, k), v) or [] for k, v in value.items()}
        items = [f"{k}={ip}" for k, ips in lists.items() for ip in ips]
    else:
        items = want_str_list(ctx.loc, path, value) or []
    out: list[tuple[str, str]] = []
    for item in items:
        sep = "=" if "=" in item else ":"
        host, found, ip = item.partition(sep)
        if not found or not host or not ip:
            ctx.loc.error(path, f"{brief(item)} must be HOST:IP or HOST=IP")
            continue
        out.append((host, ip.strip("[]")))
    return tuple(out)


def _options(ctx: StackCtx, path: Path, spec: dict[str, Any]) -> dict[str, Any] | None:
    before = len(ctx.loc.problems)
    shm: int | None = None
    if spec.get("shm_size") is not None:
        try:
            shm = parse_bytes(spec["shm_size"])
        except ValueError as exc:
            ctx.loc.error((*path, "shm_size"), str(exc))
    flags = {
        k: bool(want_bool(ctx.loc, (*path, k), spec[k]))
        for k in ("no_cache", "pull")
        if spec.get(k) is not None
    }
    out: dict[str, Any] = {
        "args": _pairs(ctx, (*path, "args"), spec.get("args"), environ=True),
        "labels": _pairs(ctx, (*path, "labels"), spec.get("labels"), environ=False),
        "target": _opt_str(ctx, (*path, "target"), spec.get("target")),
        "network": _opt_str(ctx, (*path, "network"), spec.get("network")),
        "cache_from": tuple(
            want_str_list(ctx.loc, (*path, "cache_from"), spec.get("cache_from") or []) or ()
        ),
        "shm_size": shm,
        "extra_hosts": _hosts(ctx, (*path, "extra_hosts"), spec.get("extra_hosts")),
        **flags,
    }
    return None if len(ctx.loc.problems) > before else out
