"""Process-level service keys: command, environment, healthcheck, restart, logging, limits."""

from __future__ import annotations

import ipaddress
import math
import posixpath
import re
import shlex
from typing import Any

from controller.core.boundary import confine, exposure_problem, shown
from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import (
    check_keys,
    kv_pairs,
    want_bool,
    want_duration,
    want_int,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.compose.interpolate import DotenvError, parse_dotenv
from controller.core.yamlsrc import Path
from controller.errors import ConfigError, Problem, brief

_HEALTH_KEYS = (
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "disable",
    "start_interval",
)


def command_list(ctx: StackCtx, path: Path, value: Any) -> list[str] | None:
    """A string is split like a POSIX shell would, as compose does; a list is taken as is."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            ctx.loc.error(path, f"cannot split command: {exc}")
            return None
    return want_str_list(ctx.loc, path, value, allow_str=False)


def translate_command(ctx: StackCtx, svc: dict[str, Any], path: Path, body: Body) -> None:
    if svc.get("command") is not None:
        cmd = command_list(ctx, (*path, "command"), svc["command"])
        if cmd is not None:
            body.top["Cmd"] = cmd
    if svc.get("entrypoint") is not None:
        entry = command_list(ctx, (*path, "entrypoint"), svc["entrypoint"])
        if entry is not None:
            # An empty entrypoint clears the image's, which the API spells [""].
            body.top["Entrypoint"] = entry or [""]


def _env_files(ctx: StackCtx, path: Path, value: Any) -> dict[str, str]:
    entries: list[tuple[Path, str, bool, bool]] = []  # where, file, required, raw
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        here = (*path, i) if isinstance(value, list) else path
        if isinstance(item, dict):
            check_keys(ctx.loc, here, item, ("path", "required", "format"))
            file = want_str(ctx.loc, (*here, "path"), item.get("path"))
            required = want_bool(ctx.loc, (*here, "required"), item.get("required", True))
            fmt = item.get("format")
            if fmt is not None and fmt != "raw":
                ctx.loc.error((*here, "format"), f"unknown format {brief(fmt)}; only 'raw'")
                continue
            if file is not None:
                entries.append((here, file, required is not False, fmt == "raw"))
        elif (file := want_str(ctx.loc, here, item)) is not None:
            entries.append((here, file, True, False))
    result: dict[str, str] = {}
    for here, file, required, raw in entries:
        full = posixpath.normpath(posixpath.join(ctx.project_dir, file))
        ctx.files_read.append(full)
        if (problem := confine(ctx.files, full)) is not None:
            ctx.loc.error(here, f"env_file {shown(full)} {problem} (security boundary)")
            continue
        try:
            text = ctx.files.read_text(full)
        except FileNotFoundError:
            if required:
                ctx.loc.error(here, f"env_file {full} does not exist")
            continue
        except ConfigError as exc:
            why = "; ".join(p.message for p in exc.problems)
            ctx.loc.error(here, f"cannot read env_file {full}: {why}")
            continue
        if raw:
            result.update(_raw_env(ctx, full, text))
            continue
        try:
            result.update(parse_dotenv(text, environ=ctx.env))
        except DotenvError as exc:
            ctx.loc.problems.append(Problem(full, exc.line, "", str(exc)))
    return result


def _raw_env(ctx: StackCtx, file: str, text: str) -> dict[str, str]:
    """`format: raw`: KEY=VALUE lines taken as written (no quotes, no `$` substitution);
    blank lines and `#` comments skipped."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, eq, val = line.partition("=")
        if not eq or not key or not _ENV_NAME.fullmatch(key):
            ctx.loc.problems.append(Problem(file, n, "", "expected KEY=VALUE"))
            continue
        out[key] = val
    return out


_ENV_NAME = re.compile(r"[^=\s\x00]+")  # what a process environment allows as a name
MAX_ENV_ENTRY = 128 * 1024  # Linux MAX_ARG_STRLEN: execve refuses a longer KEY=VALUE
MAX_ENV_SERVICE = 1024 * 1024  # ARG_MAX is 2 MiB for environment and arguments together


def translate_environment(ctx: StackCtx, svc: dict[str, Any], path: Path, body: Body) -> None:
    """env_file first, then `environment` overrides; a bare KEY comes from the environment.

    Sizes are checked before any KEY=VALUE string is built: a value named by many services
    (a bare KEY, a shared env_file) is otherwise copied once per service, and a small
    `.env` that doubles a value could make gigabytes of copies (hostile input)."""
    env: dict[str, str] = {}
    where: Path = (*path, "environment")
    if svc.get("env_file") is not None:
        env.update(_env_files(ctx, (*path, "env_file"), svc["env_file"]))
        where = (*path, "env_file")
    if svc.get("environment") is not None:
        pairs = kv_pairs(ctx.loc, (*path, "environment"), svc["environment"])
        for key, val in (pairs or {}).items():
            if val is not None:
                env[key] = val
            elif key in ctx.env:
                env[key] = ctx.env[key]
        where = (*path, "environment")
    if env and _env_fits(ctx, where, env):
        body.top["Env"] = [f"{k}={v}" for k, v in env.items()]


def _env_fits(ctx: StackCtx, where: Path, env: dict[str, str]) -> bool:
    total = 0
    for key, val in env.items():
        if not _ENV_NAME.fullmatch(key):
            ctx.loc.error(where, f"invalid variable name {brief(key)}")
            return False
        size = len(key) + 1 + len(val)
        if size > MAX_ENV_ENTRY:
            why = f"{brief(key)} is {size} characters; a process cannot get more than 128 KiB"
            ctx.loc.error(where, why)
            return False
        if "\x00" in val:
            ctx.loc.error(where, f"the value of {brief(key)} contains a NUL character")
            return False
        total += size
    if total > MAX_ENV_SERVICE:
        ctx.loc.error(where, f"the environment is {total} characters; at most 1 MiB")
        return False
    return ctx.budget.spend(total, ctx.loc, where)


def _nanos(ctx: StackCtx, path: Path, value: Any) -> int | None:
    seconds = want_duration(ctx.loc, path, value)
    return None if seconds is None else round(seconds * 1e9)


def translate_healthcheck(ctx: StackCtx, path: Path, value: Any, body: Body) -> bool:
    """Returns whether the container has a healthcheck of its own to gate on."""
    hc = want_map(ctx.loc, path, value)
    if hc is None:
        return False
    check_keys(ctx.loc, path, hc, _HEALTH_KEYS)
    if "start_interval" in hc:
        ctx.loc.error((*path, "start_interval"), "needs Engine API 1.44; this engine has 1.41")
    disable = hc.get("disable")
    if disable is not None and want_bool(ctx.loc, (*path, "disable"), disable) is True:
        body.top["Healthcheck"] = {"Test": ["NONE"]}
        return False
    out: dict[str, Any] = {}
    test = hc.get("test")
    if isinstance(test, str):
        out["Test"] = ["CMD-SHELL", test]
    elif test is not None and (items := want_str_list(ctx.loc, (*path, "test"), test)):
        if items[0] not in ("CMD", "CMD-SHELL", "NONE"):
            ctx.loc.error((*path, "test"), "a list must start with CMD, CMD-SHELL or NONE")
        out["Test"] = items
    for key, api in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
    ):
        if hc.get(key) is not None:
            out[api] = _nanos(ctx, (*path, key), hc[key])
            if out[api] is not None and 0 < out[api] < 1_000_000:
                ctx.loc.error((*path, key), "must be 0 or at least 1ms (the engine's minimum)")
    if hc.get("retries") is not None:
        out["Retries"] = want_int(ctx.loc, (*path, "retries"), hc["retries"], minimum=0)
    body.top["Healthcheck"] = out
    return out.get("Test", ["x"])[0] != "NONE" and "Test" in out


def translate_restart(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    text = want_str(ctx.loc, path, value)
    if text is None:
        return
    match = re.fullmatch(r"(no|always|unless-stopped|on-failure)(?::([0-9]{1,9}))?", text)
    if match is None or (match.group(2) and match.group(1) != "on-failure"):
        ctx.loc.error(path, "must be no, always, unless-stopped or on-failure[:N]")
        return
    body.host["RestartPolicy"] = {
        "Name": match.group(1),
        "MaximumRetryCount": int(match.group(2) or 0),
    }


def translate_stop_grace(ctx: StackCtx, path: Path, value: Any, body: Body) -> float | None:
    seconds = want_duration(ctx.loc, path, value)
    if seconds is not None:
        body.top["StopTimeout"] = math.ceil(seconds)  # the API counts whole seconds
    return seconds


def translate_logging(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    log = want_map(ctx.loc, path, value)
    if log is None:
        return
    check_keys(ctx.loc, path, log, ("driver", "options"))
    driver = want_str(ctx.loc, (*path, "driver"), log.get("driver", "json-file"))
    options = kv_pairs(ctx.loc, (*path, "options"), log.get("options") or {})
    if driver is not None and options is not None:
        config = {k: v or "" for k, v in options.items()}
        body.host["LogConfig"] = {"Type": driver, "Config": config}


def translate_ulimits(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    limits = want_map(ctx.loc, path, value)
    if limits is None:
        return
    out: list[dict[str, Any]] = []
    for name, spec in limits.items():
        here = (*path, name)
        if isinstance(spec, dict):
            check_keys(ctx.loc, here, spec, ("soft", "hard"))
            soft = want_int(ctx.loc, (*here, "soft"), spec.get("soft"))
            hard = want_int(ctx.loc, (*here, "hard"), spec.get("hard"))
        else:
            soft = hard = want_int(ctx.loc, here, spec)
        if soft is not None and hard is not None:
            out.append({"Name": name, "Soft": soft, "Hard": hard})
    body.host["Ulimits"] = out


# one line of /etc/hosts each: a name, and an address (or compose's host-gateway)
_HOST_RE = re.compile(r"[A-Za-z0-9_.-]{1,253}")


def _host_ip(text: str) -> str | None:
    """The address as the engine wants it (IPv6 without brackets); None if it is none."""
    if text == "host-gateway":
        return text
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def translate_extra_hosts(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    hosts: list[str] = []
    if isinstance(value, dict):
        for host, ips in value.items():
            for ip in want_str_list(ctx.loc, (*path, host), ips) or []:
                addr = _host_ip(ip)
                if not _HOST_RE.fullmatch(host) or addr is None:
                    ctx.loc.error((*path, host), f"expected HOST: IP, got {brief(host)}")
                hosts.append(f"{host}:{addr}")
    else:
        for i, item in enumerate(want_str_list(ctx.loc, path, value, allow_str=False) or []):
            host, sep, ip = item.partition("=") if "=" in item else item.partition(":")
            addr = _host_ip(ip) if sep else None
            if not (_HOST_RE.fullmatch(host) and addr):
                ctx.loc.error((*path, i), f"expected HOST:IP or HOST=IP, got {brief(item)}")
            hosts.append(f"{host}:{addr}")
    body.host["ExtraHosts"] = hosts


def translate_devices(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    out: list[dict[str, str]] = []
    for i, item in enumerate(want_str_list(ctx.loc, path, value, allow_str=False) or []):
        parts = item.split(":")
        if len(parts) > 3 or not parts[0].startswith("/"):
            why = f"expected HOST_PATH[:CONTAINER_PATH[:PERMS]], got {brief(item)}"
            ctx.loc.error((*path, i), why)
            continue
        host = parts[0]
        if len(parts) > 1 and not parts[1].startswith("/"):
            ctx.loc.error((*path, i), f"container path {brief(parts[1])} must be absolute")
            continue
        if len(parts) > 2 and not re.fullmatch(r"[rwm]{1,3}", parts[2]):
            ctx.loc.error((*path, i), f"permissions {brief(parts[2])}: some of r, w, m")
            continue
        problem = exposure_problem(ctx.files, host)
        if problem is not None:
            ctx.loc.error((*path, i), f"device {shown(host)} {problem} (security boundary)")
            continue
        inside = parts[1] if len(parts) > 1 else host
        perms = parts[2] if len(parts) > 2 else "rwm"
        out.append({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms})
    body.host["Devices"] = out
