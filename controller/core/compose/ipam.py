"""A compose network's `ipam:` block -> validated pools.

Only what Berth passes on to the engine: `driver`, and per `config` entry `subnet`,
`ip_range` and `gateway`; IPv6 pools only on a network with `enable_ipv6: true`, as the
engine requires (compose's `aux_addresses` and `options` are rejected, not ignored).
Addresses are checked here,
so a typo is reported with its file and line instead of as an engine error in the middle
of a rollout.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

from controller.core.compose.fields import check_keys, want_map, want_str
from controller.core.model import IpamPool
from controller.core.yamlsrc import Located, Path

IPAM_KEYS = frozenset({"driver", "config"})
POOL_KEYS = frozenset({"subnet", "ip_range", "gateway"})


def parse_ipam(
    loc: Located, path: Path, value: Any, *, ipv6: bool = False
) -> tuple[str | None, tuple[IpamPool, ...]]:
    spec = want_map(loc, path, value if value is not None else {}) or {}
    check_keys(loc, path, spec, IPAM_KEYS)
    driver = want_str(loc, (*path, "driver"), spec["driver"]) if spec.get("driver") else None
    raw = spec.get("config") or []
    if not isinstance(raw, list):
        loc.error((*path, "config"), "must be a list of {subnet, ip_range, gateway}")
        return driver, ()
    pools = [_pool(loc, (*path, "config", i), item, ipv6) for i, item in enumerate(raw)]
    return driver, tuple(p for p in pools if p is not None)


def _pool(loc: Located, path: Path, item: Any, ipv6: bool) -> IpamPool | None:
    spec = want_map(loc, path, item)
    if spec is None:
        return None
    check_keys(loc, path, spec, POOL_KEYS)
    if "subnet" not in spec:
        loc.error(path, "an ipam config entry needs a subnet")
        return None
    subnet = _network(loc, (*path, "subnet"), spec["subnet"])
    ip_range = _network(loc, (*path, "ip_range"), spec["ip_range"]) if "ip_range" in spec else None
    gateway = _address(loc, (*path, "gateway"), spec["gateway"]) if "gateway" in spec else None
    if subnet is None:
        return None
    if subnet.version == 6 and not ipv6:
        loc.error((*path, "subnet"), "an IPv6 pool needs enable_ipv6: true on the network")
        return None
    if ip_range is not None and not _inside(ip_range, subnet):
        loc.error((*path, "ip_range"), f"{ip_range} is not inside the subnet {subnet}")
    if gateway is not None and gateway not in subnet:
        loc.error((*path, "gateway"), f"{gateway} is not inside the subnet {subnet}")
    return IpamPool(
        subnet=str(subnet),
        ip_range=str(ip_range) if ip_range is not None else None,
        gateway=str(gateway) if gateway is not None else None,
    )


def _inside(
    inner: ipaddress.IPv4Network | ipaddress.IPv6Network,
    outer: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> bool:
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


_T = TypeVar("_T")


def _parsed(
    loc: Located, path: Path, value: Any, parse: Callable[[str], _T], expected: str
) -> _T | None:
    text = want_str(loc, path, value)
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        loc.error(path, f"not {expected}: {exc}")
        return None


def _network(
    loc: Located, path: Path, value: Any
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    return _parsed(loc, path, value, ipaddress.ip_network, "a CIDR network such as 172.28.0.0/16")


def _address(
    loc: Located, path: Path, value: Any
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    return _parsed(loc, path, value, ipaddress.ip_address, "an IP address")
