"""Process-level service keys: command, healthcheck, restart, logging, ulimits, hosts, devices."""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any

from controller.core.boundary import exposure_problem, shown
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
from controller.core.yamlsrc import Path
from controller.errors import brief

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


def _nanos(ctx: StackCtx, path: Path, value: Any) -> int | None:
    seconds = want_duration(ctx.loc, path, value)
    return None if seconds is None else round(seconds * 1e9)


def translate_healthcheck(ctx: StackCtx, path: Path, value: Any, body: Body) -> bool:
    """Returns whether the container has a healthcheck of its own to gate on."""
    hc = want_map(ctx.loc, path, value)
    if hc is None:
        return False
    check_keys(ctx.loc, path, hc, _HEALTH_KEYS)
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
    if hc.get("start_interval") is not None and hc.get("start_period") is None:
        # compose's rule (moby#48874: the engine would not use it without a start period)
        ctx.loc.error((*path, "start_interval"), "needs healthcheck.start_period too")
    for key, api in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
        ("start_interval", "StartInterval"),  # API 1.44+: see api_versions.CREATE_MIN_API
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
        body.top["StopTimeout"] = int(seconds)  # whole seconds, cut as compose's ToSeconds
    return seconds


def translate_logging(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    log = want_map(ctx.loc, path, value)
    if log is None:
        return
    check_keys(ctx.loc, path, log, ("driver", "options"))
    # No driver: Type "" is the daemon's default log driver, as compose sends it.
    driver = want_str(ctx.loc, (*path, "driver"), log.get("driver") or "")
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


_PERMS = re.compile(r"[rwm]{1,3}")


def _device(ctx: StackCtx, here: Path, item: Any) -> dict[str, str] | None:
    """HOST[:CONTAINER[:PERMS]] or {source, target, permissions}."""
    if isinstance(item, dict):
        check_keys(ctx.loc, here, item, ("source", "target", "permissions"))
        host = want_str(ctx.loc, (*here, "source"), item.get("source"))
        inside = want_str(ctx.loc, (*here, "target"), item.get("target", host))
        perms = want_str(ctx.loc, (*here, "permissions"), item.get("permissions", "rwm"))
        if host is None or inside is None or perms is None:
            return None
    elif (text := want_str(ctx.loc, here, item)) is not None:
        parts = text.split(":")
        if len(parts) > 3:
            why = f"expected HOST_PATH[:CONTAINER_PATH[:PERMS]], got {brief(text)}"
            ctx.loc.error(here, why)
            return None
        host = parts[0]
        inside = parts[1] if len(parts) > 1 else host
        perms = parts[2] if len(parts) > 2 else "rwm"
    else:
        return None
    if not host.startswith("/"):
        why = f"device {brief(host)} must be an absolute host path (CDI names need API 1.44)"
        ctx.loc.error(here, why)
        return None
    if not inside.startswith("/"):
        ctx.loc.error(here, f"container path {brief(inside)} must be absolute")
        return None
    if not _PERMS.fullmatch(perms):
        ctx.loc.error(here, f"permissions {brief(perms)}: some of r, w, m")
        return None
    problem = exposure_problem(ctx.files, host)
    if problem is not None:
        ctx.loc.error(here, f"device {shown(host)} {problem} (security boundary)")
        return None
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}


def translate_devices(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return
    out = [d for i, item in enumerate(value) if (d := _device(ctx, (*path, i), item))]
    body.host["Devices"] = out
