"""`x-berth` (DESIGN §3): per-service rollout options and the stack's proxy.

Every key is checked, because a misspelt `progres_deadline` silently falling back to the
default would change how a bad release is caught. Upstream names are pasted into the nginx
configuration Berth writes, so they are restricted to nginx-safe identifiers.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from controller.core.boundary import confine, shown
from controller.core.compose.canary import canary_options
from controller.core.compose.context import StackCtx
from controller.core.compose.fields import (
    check_keys,
    want_command,
    want_duration,
    want_int,
    want_map,
    want_str,
)
from controller.core.compose.tasks import URL_PATH, hooks_spec, release_tasks, smoke_checks
from controller.core.compose.update_opts import update_options
from controller.core.model import BerthOptions, ProbeSpec, ProxySpec, UpstreamSpec
from controller.core.tagpolicy import pattern_problem
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

_SERVICE_KEYS = (
    "strategy",
    "upstream",
    "health",
    "progress_deadline",
    "drain_timeout",
    "bake",
    "allowed_tags",
    "canary",
    "track",
    "update",
    "release",
    "smoke",
    "hooks",
)
TRACKS = ("pinned", "digest", "tag")
_HEALTH_KEYS = ("path", "port", "interval", "timeout", "healthy_threshold")
_PROXY_KEYS = ("service", "upstreams_file", "test_command", "reload_command", "switch")
SWITCHES = ("auto", "dynamic", "reload")
BACKENDS = ("local", "swarm")  # top-level x-berth.backend; local is the default
_UPSTREAM_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
# The probe writes its path into a request line: URL characters only (compose/tasks.py).
_PROBE_PATH = URL_PATH


def _port(loc: Located, path: Path, value: Any) -> int | None:
    port = want_int(loc, path, value, minimum=1)
    if port is not None and port > 65535:
        loc.error(path, "must be a port number 1-65535")
        return None
    return port


def _upstream(loc: Located, path: Path, value: Any) -> UpstreamSpec | None:
    spec = want_map(loc, path, value)
    if spec is None:
        return None
    check_keys(loc, path, spec, ("name", "port"))
    name = want_str(loc, (*path, "name"), spec.get("name"))
    port = _port(loc, (*path, "port"), spec.get("port"))
    if name is not None and not _UPSTREAM_NAME.fullmatch(name):
        loc.error((*path, "name"), "must be letters, digits and '_' (an nginx upstream name)")
        return None
    return None if name is None or port is None else UpstreamSpec(name=name, port=port)


MIN_PROBE = 0.01  # seconds: health.interval and health.timeout


def _health(
    loc: Located, path: Path, value: Any, upstream: UpstreamSpec | None
) -> ProbeSpec | None:
    spec = want_map(loc, path, value)
    if spec is None:
        return None
    check_keys(loc, path, spec, _HEALTH_KEYS)
    probe = ProbeSpec()
    fields: dict[str, Any] = {}
    path_value = want_str(loc, (*path, "path"), spec.get("path", probe.path))
    if path_value is not None and not _PROBE_PATH.fullmatch(path_value):
        loc.error(
            (*path, "path"),
            "must start with '/' and be at most 1024 URL characters (letters, digits and "
            "-._~!$&'()*+,;=:@/%?); no spaces or control characters",
        )
        path_value = None
    fields["path"] = path_value
    if "port" in spec:
        fields["port"] = _port(loc, (*path, "port"), spec["port"])
    elif upstream is not None:
        fields["port"] = upstream.port
    else:
        loc.error(path, "needs 'port' when the service has no upstream")
    for key in ("interval", "timeout"):
        if key in spec:
            fields[key] = want_duration(loc, (*path, key), spec[key])
            if fields[key] is not None and fields[key] < MIN_PROBE:
                # below this a probe loop only spins (or every probe times out)
                loc.error((*path, key), f"must be at least {MIN_PROBE * 1000:.0f}ms")
                fields[key] = None
    if "healthy_threshold" in spec:
        fields["healthy_threshold"] = want_int(
            loc, (*path, "healthy_threshold"), spec["healthy_threshold"], minimum=1, maximum=100
        )
    if any(v is None for v in fields.values()):
        return None
    return ProbeSpec(**fields)


def _allowed_tags(loc: Located, path: Path, value: Any) -> str | None:
    pattern = want_str(loc, path, value)
    if pattern is None:
        return None
    problem = pattern_problem(pattern)
    if problem is not None:
        loc.error(path, problem)
        return None
    return pattern


def service_options(loc: Located, path: Path, value: Any) -> BerthOptions:
    spec = want_map(loc, path, value) if value is not None else {}
    if not spec:
        return BerthOptions()
    check_keys(loc, path, spec, _SERVICE_KEYS)
    kw: dict[str, Any] = {}
    strategy = spec.get("strategy", "start-first")
    if strategy not in ("start-first", "stop-first"):
        loc.error((*path, "strategy"), "must be start-first or stop-first")
    else:
        kw["strategy"] = strategy
    if spec.get("upstream") is not None:
        kw["upstream"] = _upstream(loc, (*path, "upstream"), spec["upstream"])
    if spec.get("health") is not None:
        kw["health"] = _health(loc, (*path, "health"), spec["health"], kw.get("upstream"))
    for key in ("progress_deadline", "drain_timeout", "bake"):
        if key in spec and (seconds := want_duration(loc, (*path, key), spec[key])) is not None:
            kw[key] = seconds
    if kw.get("progress_deadline") == 0:
        loc.error((*path, "progress_deadline"), "must be greater than 0 (every rollout would fail)")
    health: ProbeSpec | None = kw.get("health")
    deadline = kw.get("progress_deadline", BerthOptions().progress_deadline)
    if health is not None and deadline < health.interval * health.healthy_threshold:
        loc.error(
            (*path, "progress_deadline"),
            f"{deadline:g}s cannot fit {health.healthy_threshold} probe(s) "
            f"{health.interval:g}s apart: no container could pass the gate",
        )
    if spec.get("allowed_tags") is not None:
        kw["allowed_tags"] = _allowed_tags(loc, (*path, "allowed_tags"), spec["allowed_tags"])
    if "track" in spec:
        if spec["track"] in TRACKS:
            kw["track"] = spec["track"]
        else:
            loc.error((*path, "track"), f"must be one of {', '.join(TRACKS)}")
    if spec.get("update") is not None:
        kw["update"] = update_options(loc, (*path, "update"), spec["update"])
    if spec.get("canary") is not None:
        canary = canary_options(loc, (*path, "canary"), spec["canary"])
        if canary is not None and kw.get("upstream") is None:
            loc.error(
                (*path, "canary"), "a canary splits nginx traffic: the service needs an upstream"
            )
        elif canary is not None:
            kw["canary"] = canary
    _tasks(loc, path, spec, kw)
    return BerthOptions(**kw)


def _tasks(loc: Located, path: Path, spec: dict[str, Any], kw: dict[str, Any]) -> None:
    """The rollout's own work: release tasks, smoke checks, hooks (compose/tasks.py)."""
    if spec.get("release") is not None:
        kw["release"] = release_tasks(loc, (*path, "release"), spec["release"])
    if spec.get("smoke") is not None:
        kw["smoke"] = smoke_checks(
            loc,
            (*path, "smoke"),
            spec["smoke"],
            health=kw.get("health"),
            upstream=kw.get("upstream"),
            bake=kw.get("bake", 0.0),
        )
    if spec.get("hooks") is not None:
        kw["hooks"] = hooks_spec(loc, (*path, "hooks"), spec["hooks"])


def stack_backend(loc: Located, top: Any) -> str:
    """Top-level `x-berth.backend`: which runtime drives the stack. Only the compose file
    (the operator's) chooses it; desired/ cannot (core/desired.py). A non-mapping x-berth
    is reported by proxy_spec; a bad value is reported here and reads as the default."""
    if not isinstance(top, dict) or top.get("backend") is None:
        return "local"
    path: Path = ("x-berth", "backend")
    value = top["backend"]
    if not isinstance(value, str):
        loc.error(path, f"must be a string, {' or '.join(BACKENDS)}; got {brief(value)}")
        return "local"
    if value not in BACKENDS:
        case = " (lower case)" if value.lower() in BACKENDS else ""
        loc.error(path, f"{brief(value)} is not one of {', '.join(BACKENDS)}{case}")
        return "local"
    return value


def proxy_spec(loc: Located, path: Path, value: Any, *, ctx: StackCtx) -> ProxySpec | None:
    """Berth writes the upstreams file, so it must resolve (symlinked folders followed)
    inside the compose root and outside desired/: a compose file cannot make Berth
    overwrite arbitrary host files, and desired/ cannot choose what nginx includes."""
    top = want_map(loc, path, value)
    if top is None:
        return None
    check_keys(loc, path, top, ("proxy", "backend"))
    if top.get("proxy") is None:
        return None
    here = (*path, "proxy")
    proxy = want_map(loc, here, top["proxy"])
    if proxy is None:
        return None
    check_keys(loc, here, proxy, _PROXY_KEYS)
    service = None
    if proxy.get("service") is not None:
        service = want_str(loc, (*here, "service"), proxy["service"])
    raw = want_str(loc, (*here, "upstreams_file"), proxy.get("upstreams_file"))
    if raw is None:
        return None
    full = posixpath.normpath(posixpath.join(ctx.project_dir, raw))
    if (problem := confine(ctx.files, full)) is not None:
        loc.error((*here, "upstreams_file"), f"{shown(full)} {problem} (security boundary)")
        return None
    full = ctx.files.resolve(full)  # written where it was checked, whatever links change
    if not full.endswith(".conf") or full in ctx.files_read:
        # Berth overwrites it: never a compose file, a .env, an env_file or a directory
        loc.error((*here, "upstreams_file"), f"{shown(full)} must be an nginx .conf file")
        return None
    test = want_command(loc, (*here, "test_command"), proxy.get("test_command"))
    reload = want_command(loc, (*here, "reload_command"), proxy.get("reload_command"))
    # (on the swarm backend compose/swarm_check.py asks for the service: no host nginx)
    if service is None and not (test and reload) and ctx.backend != "swarm":
        loc.error(
            here,
            "name the nginx service, or (nginx on the host) both test_command and reload_command",
        )
    switch = "auto"
    if proxy.get("switch") is not None:
        value = want_str(loc, (*here, "switch"), proxy["switch"])
        if value is not None and value not in SWITCHES:
            loc.error((*here, "switch"), f"{brief(value)} is not one of {', '.join(SWITCHES)}")
        elif value is not None:
            switch = value
    return ProxySpec(
        service=service,
        upstreams_file=full,
        test_command=test,
        reload_command=reload,
        switch=switch,
    )
