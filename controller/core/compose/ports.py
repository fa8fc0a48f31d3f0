"""`ports` and `expose` -> ExposedPorts and HostConfig.PortBindings."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import check_keys, want_int, want_str
from controller.core.yamlsrc import Path
from controller.errors import brief

_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")
MAX_BINDINGS = 4096  # ports per service: a range like 1-65535 would start 65,535 proxies
_PROTOCOLS = ("tcp", "udp", "sctp")
_LONG_KEYS = ("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol")


def _range(text: str) -> list[int] | None:
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        return None
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 0 < low <= high <= 65535:
        return None
    return list(range(low, high + 1))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _bind(
    ctx: StackCtx,
    path: Path,
    body: Body,
    *,
    container: str,
    published: str,
    host_ip: str,
    proto: str,
) -> set[int]:
    """Record one port mapping; returns the container ports it exposes."""
    if host_ip and not _is_ip(host_ip):
        # the engine would publish on every interface: a typo of 127.0.0.1 made public
        ctx.loc.error(path, f"host IP {brief(host_ip)} is not an IP address")
        return set()
    if proto not in _PROTOCOLS:
        ctx.loc.error(path, f"unknown protocol {brief(proto)}; use tcp, udp or sctp")
        return set()
    targets = _range(container)
    if targets is None:
        ctx.loc.error(path, f"invalid container port {brief(container)}")
        return set()
    hosts = _range(published) if published else None
    if published and hosts is None:
        ctx.loc.error(path, f"invalid published port {brief(published)}")
        return set()
    if hosts is not None and len(targets) > 1 and len(hosts) != len(targets):
        ctx.loc.error(path, "published and container port ranges differ in size")
        return set()
    exposed = body.top.setdefault("ExposedPorts", {})
    bindings = body.host.setdefault("PortBindings", {})
    total = sum(len(b) for b in bindings.values()) + len(exposed) + len(targets)
    if total > MAX_BINDINGS:
        ctx.loc.error(path, f"more than {MAX_BINDINGS} ports for one service")
        return set()
    for i, port in enumerate(targets):
        key = f"{port}/{proto}"
        exposed[key] = {}
        if hosts is None:
            host_port = ""
        elif len(targets) == 1:
            host_port = published.strip()
        else:
            host_port = str(hosts[i])
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return set(targets)


def _short(ctx: StackCtx, path: Path, body: Body, spec: str) -> set[int]:
    proto = "tcp"
    if "/" in spec:
        spec, proto = spec.rsplit("/", 1)
    host_ip = ""
    if spec.startswith("["):
        end = spec.find("]:")
        if end < 0:
            ctx.loc.error(path, f"invalid port mapping {brief(spec)}")
            return set()
        host_ip, spec = spec[1:end], spec[end + 2 :]
    parts = spec.split(":")
    if len(parts) == 3 and not host_ip:
        host_ip, parts = parts[0], parts[1:]
    if len(parts) == 1:
        published, container = "", parts[0]
    elif len(parts) == 2:
        published, container = parts
    else:
        why = f"invalid port mapping {brief(spec)}; expected [HOST_IP:][HOST:]CONTAINER"
        ctx.loc.error(path, why)
        return set()
    return _bind(
        ctx, path, body, container=container, published=published, host_ip=host_ip, proto=proto
    )


def _long(ctx: StackCtx, path: Path, body: Body, item: dict[str, Any]) -> set[int]:
    check_keys(ctx.loc, path, item, _LONG_KEYS)
    if "target" not in item:
        ctx.loc.error(path, "long port syntax needs 'target'")
        return set()
    target = want_int(ctx.loc, (*path, "target"), item["target"], minimum=1)
    # Without swarm compose publishes on this host whatever the mode says: `ingress` (swarm's
    # routing mesh) has no effect, as in compose; `name` and `app_protocol` are labels for
    # tools, with no Engine API field (compose's buildContainerPortBindingOptions).
    mode = item.get("mode", "host")
    if mode not in ("host", "ingress"):
        ctx.loc.error((*path, "mode"), "must be host or ingress")
    for key in ("name", "app_protocol"):
        if key in item:
            want_str(ctx.loc, (*path, key), item[key])
    published = item.get("published")
    pub = "" if published is None else want_str(ctx.loc, (*path, "published"), published)
    host_ip = want_str(ctx.loc, (*path, "host_ip"), item.get("host_ip", ""))
    proto = want_str(ctx.loc, (*path, "protocol"), item.get("protocol", "tcp"))
    if target is None or pub is None or host_ip is None or proto is None:
        return set()
    return _bind(
        ctx, path, body, container=str(target), published=pub, host_ip=host_ip, proto=proto
    )


def translate_ports(ctx: StackCtx, path: Path, value: Any, body: Body) -> set[int]:
    """Returns the container ports, which `x-berth.upstream.port` must be one of."""
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return set()
    found: set[int] = set()
    for i, item in enumerate(value):
        here = (*path, i)
        if isinstance(item, dict):
            found |= _long(ctx, here, body, item)
        elif isinstance(item, int | str) and not isinstance(item, bool):
            found |= _short(ctx, here, body, str(item))
        else:
            ctx.loc.error(here, "must be a port string, a number or a mapping")
    return found


def translate_expose(ctx: StackCtx, path: Path, value: Any, body: Body) -> set[int]:
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return set()
    found: set[int] = set()
    exposed = body.top.setdefault("ExposedPorts", {})
    for i, item in enumerate(value):
        text = want_str(ctx.loc, (*path, i), item)
        if text is None:
            continue
        port, _, proto = text.partition("/")
        ports = _range(port)
        if ports is None or (proto or "tcp") not in _PROTOCOLS:
            why = f"invalid port {brief(text)}; expected PORT[-PORT][/PROTOCOL]"
            ctx.loc.error((*path, i), why)
            continue
        for p in ports:
            exposed[f"{p}/{proto or 'tcp'}"] = {}
        found |= set(ports)
    return found
