"""A service's `networks` (and `mac_address`) -> NetworkAttachments and NetworkMode.

As in compose (ServiceConfig.NetworksByPriority), the primary network, the one the
container is created on (HostConfig.NetworkMode), is the one with the highest `priority`,
then the first compose key in name order; the attachments are kept in that order.

Engine API 1.41 knows a MAC address only for the whole container (Config.MacAddress, on
the primary network); compose before API 1.44 puts the service's or the primary network's
`mac_address` there and refuses two. A `mac_address` on another network cannot be
honoured by this engine and is refused (compose would drop it without a word).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import (
    check_keys,
    kv_pairs,
    want_int,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.model import NetworkAttachment, NetworkDef
from controller.core.yamlsrc import Path
from controller.errors import brief

_NO_ALIASES = ("host", "none", "bridge")  # the engine's own networks: no user aliases
_OPTION_KEYS = (
    "aliases",
    "ipv4_address",
    "ipv6_address",
    "link_local_ips",
    "mac_address",
    "driver_opts",
    "priority",
    "gw_priority",
    "interface_name",
)
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")
INT32 = 2**31 - 1


def fixed_address(
    ctx: StackCtx, path: Path, text: str | None, net: NetworkDef, *, version: int = 4
) -> str | None:
    """An address of the given IP version, a host address of the network's configured
    subnet of that version when it has one (the engine refuses anything else at create)."""
    if text is None:
        return None
    kind = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    try:
        addr = kind(text)
    except ValueError:
        ctx.loc.error(path, f"{brief(text)} is not an IPv{version} address")
        return None
    subnets = [ipaddress.ip_network(p.subnet) for p in net.ipam]
    subnets = [s for s in subnets if s.version == version]
    if subnets and not any(
        addr in s and addr not in (s.network_address, s.broadcast_address) for s in subnets
    ):
        ctx.loc.error(path, f"{text} is not a host address of {net.key}'s subnet")
        return None
    return str(addr)


def mac_address(ctx: StackCtx, path: Path, value: Any) -> str | None:
    text = want_str(ctx.loc, path, value)
    if text is not None and not _MAC.fullmatch(text):
        ctx.loc.error(path, f"{brief(text)} is not a MAC address such as 02:42:ac:11:00:02")
        return None
    return None if text is None else text.replace("-", ":").lower()


def _link_local(ctx: StackCtx, path: Path, value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for i, text in enumerate(want_str_list(ctx.loc, path, value) or []):
        try:
            out.append(str(ipaddress.ip_address(text)))
        except ValueError:
            ctx.loc.error((*path, i), f"{brief(text)} is not an IP address")
    return tuple(out)


def _attachment(
    ctx: StackCtx, here: Path, name: str, net: NetworkDef, opts: Any
) -> tuple[NetworkAttachment, str | None]:
    """One attachment and its `mac_address` (placed by the caller)."""
    aliases: list[str] = [name]
    kw: dict[str, Any] = {}
    mac = None
    spec = want_map(ctx.loc, here, opts) if opts is not None else None
    if spec is not None:
        spec = {k: v for k, v in spec.items() if not str(k).startswith("x-")}
        check_keys(ctx.loc, here, spec, _OPTION_KEYS)
        if "interface_name" in spec:
            why = "needs Engine API 1.49 (Docker 28.1); this engine speaks 1.41"
            ctx.loc.error((*here, "interface_name"), why)
        extra = want_str_list(ctx.loc, (*here, "aliases"), spec.get("aliases", []))
        aliases += [a for a in extra or [] if a not in aliases]
        for key, version in (("ipv4_address", 4), ("ipv6_address", 6)):
            if spec.get(key) is not None:
                text = want_str(ctx.loc, (*here, key), spec[key])
                kw[key] = fixed_address(ctx, (*here, key), text, net, version=version)
        if spec.get("link_local_ips") is not None:
            ips = spec["link_local_ips"]
            kw["link_local_ips"] = _link_local(ctx, (*here, "link_local_ips"), ips)
        if spec.get("driver_opts") is not None:
            opts_map = kv_pairs(ctx.loc, (*here, "driver_opts"), spec["driver_opts"]) or {}
            kw["driver_opts"] = tuple((k, v or "") for k, v in opts_map.items())
        for key in ("priority", "gw_priority"):
            if spec.get(key) is not None:
                number = want_int(ctx.loc, (*here, key), spec[key], minimum=-INT32, maximum=INT32)
                kw[key] = number or 0
        if spec.get("mac_address") is not None:
            mac = mac_address(ctx, (*here, "mac_address"), spec["mac_address"])
    return NetworkAttachment(network=net.name, aliases=tuple(aliases), **kw), mac


def translate_networks(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body
) -> tuple[NetworkAttachment, ...]:
    """The service name is always an alias, as in compose; Berth connects aliases only once
    a container passed its gate."""
    name = str(path[-1])
    here_nets: Path = (*path, "networks")
    value = svc.get("networks")
    if value is None:
        value = ["default"]
    if isinstance(value, list):
        value = {str(k): None for k in value}
    found: list[tuple[int, str, NetworkAttachment, str | None]] = []
    for key, opts in (want_map(ctx.loc, here_nets, value) or {}).items():
        here = (*here_nets, key)
        net = ctx.networks.get(key)
        if net is None:
            ctx.loc.error(here, f"network {brief(key)} is not declared under top-level 'networks'")
            continue
        if net.name in _NO_ALIASES:
            ctx.loc.error(here, f"network {net.name!r} takes no service aliases; use network_mode")
            continue
        att, mac = _attachment(ctx, here, name, net, opts)
        found.append((-att.priority, key, att, mac))
    found.sort(key=lambda f: (f[0], f[1]))
    if found:
        body.host["NetworkMode"] = found[0][2].network
    _place_mac(ctx, path, svc, found, body)
    return tuple(f[2] for f in found)


def _place_mac(
    ctx: StackCtx,
    path: Path,
    svc: dict[str, Any],
    found: list[tuple[int, str, NetworkAttachment, str | None]],
    body: Body,
) -> None:
    """Config.MacAddress: the service's mac_address or the primary network's (API 1.41)."""
    mac = None
    if svc.get("mac_address") is not None:
        mac = mac_address(ctx, (*path, "mac_address"), svc["mac_address"])
    for i, (_, key, _att, net_mac) in enumerate(found):
        if net_mac is None:
            continue
        here = (*path, "networks", key, "mac_address")
        if i > 0:
            why = "a MAC address on a network other than the primary needs Engine API 1.44"
            ctx.loc.error(here, f"{why}; set it on {found[0][1]} or as the service's mac_address")
        elif mac is not None and mac != net_mac:
            ctx.loc.error(here, f"differs from the service-level mac_address {mac}")
        else:
            mac = net_mac
    if mac is not None:
        body.top["MacAddress"] = mac
