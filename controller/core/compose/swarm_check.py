"""The load-time check of a stack with `x-berth.backend: swarm` (tables: swarm_keys.py).

It runs after the ordinary translation, on the merged compose data, and refuses what a
Swarm service spec cannot carry, naming file, line and field; the one swarm-only key it
translates is `deploy.placement.constraints` (`swarm_constraints`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from controller.core.compose.context import StackCtx
from controller.core.compose.fields import check_keys, want_map, want_str_list
from controller.core.compose.swarm_keys import (
    SWARM_ATTACHMENT_REFUSED,
    SWARM_DEPLOY,
    SWARM_NETWORK_DRIVER,
    SWARM_PLACEMENT_REFUSED,
    SWARM_PORTS,
    SWARM_PROXY,
    SWARM_REFUSED_KEYS,
    SWARM_RESERVATIONS_REFUSED,
    SWARM_VOLUME,
    SWARM_XBERTH_REFUSED,
)
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

_ON_SWARM = "(x-berth.backend: swarm)"
# Swarm's constraint grammar: KEY==VALUE or KEY!=VALUE (swarmkit constraint.Parse)
_CONSTRAINT = re.compile(r"\s*[A-Za-z0-9_.\-]{1,256}\s*(==|!=)\s*[^\s=!][^\n]{0,1023}")
MAX_CONSTRAINTS = 64


def _refuse(loc: Located, path: Path, key: str, reason: str) -> None:
    loc.error(path, f"'{key}' {reason} {_ON_SWARM}")


def check_swarm(ctx: StackCtx, services: Iterable[str]) -> None:
    """Every enabled service, the top-level networks and the proxy."""
    loc = ctx.loc
    raw = loc.data.get("services")
    for name in services:
        svc = raw.get(name) if isinstance(raw, dict) else None
        if isinstance(svc, dict):
            _service(loc, ("services", name), svc)
    networks = loc.data.get("networks")
    for key, spec in networks.items() if isinstance(networks, dict) else ():
        driver = spec.get("driver") if isinstance(spec, dict) else None
        if driver not in (None, "overlay"):
            loc.error(
                ("networks", key, "driver"), f"{brief(driver)}: {SWARM_NETWORK_DRIVER} {_ON_SWARM}"
            )
        if isinstance(spec, dict) and spec.get("enable_ipv6"):
            why = f"IPv6 overlays are not supported {_ON_SWARM} yet (created IPv4 only)"
            loc.error(("networks", key, "enable_ipv6"), why)
    _proxy(loc, loc.data.get("x-berth"))


def _service(loc: Located, path: Path, svc: dict[str, Any]) -> None:
    for key in svc:
        if key in SWARM_REFUSED_KEYS:
            _refuse(loc, (*path, key), key, SWARM_REFUSED_KEYS[key])
    if isinstance(svc.get("deploy"), dict):
        _deploy(loc, (*path, "deploy"), svc["deploy"])
    if isinstance(svc.get("ports"), list):
        for i, item in enumerate(svc["ports"]):
            _port(loc, (*path, "ports", i), item)
    if isinstance(svc.get("networks"), dict):
        for net, opts in svc["networks"].items():
            for key in opts if isinstance(opts, dict) else ():
                if key in SWARM_ATTACHMENT_REFUSED:
                    here = (*path, "networks", net, key)
                    _refuse(loc, here, key, SWARM_ATTACHMENT_REFUSED[key])
    if isinstance(svc.get("volumes"), list):
        for i, item in enumerate(svc["volumes"]):
            _volume(loc, (*path, "volumes", i), item)
    berth = svc.get("x-berth")
    for key in berth if isinstance(berth, dict) else ():
        if key in SWARM_XBERTH_REFUSED:
            _refuse(loc, (*path, "x-berth", key), key, SWARM_XBERTH_REFUSED[key])


def _deploy(loc: Located, path: Path, deploy: dict[str, Any]) -> None:
    for key in ("update_config", "rollback_config", "labels"):
        if key in deploy:
            _refuse(loc, (*path, key), key, SWARM_DEPLOY[key])
    if deploy.get("mode", "replicated") != "replicated":
        loc.error((*path, "mode"), f"{brief(deploy['mode'])}: {SWARM_DEPLOY['mode']} {_ON_SWARM}")
    if deploy.get("endpoint_mode", "dnsrr") != "dnsrr":
        mode = brief(deploy["endpoint_mode"])
        loc.error((*path, "endpoint_mode"), f"{mode}: {SWARM_DEPLOY['endpoint_mode']} {_ON_SWARM}")
    placement = deploy.get("placement")
    if isinstance(placement, dict):
        for key in placement:
            if key in SWARM_PLACEMENT_REFUSED:
                _refuse(loc, (*path, "placement", key), key, SWARM_PLACEMENT_REFUSED[key])
    resources = deploy.get("resources")
    reservations = resources.get("reservations") if isinstance(resources, dict) else None
    for key in reservations if isinstance(reservations, dict) else ():
        if key in SWARM_RESERVATIONS_REFUSED:
            here = (*path, "resources", "reservations", key)
            _refuse(loc, here, key, SWARM_RESERVATIONS_REFUSED[key])


def swarm_constraints(loc: Located, path: Path, value: Any) -> tuple[str, ...]:
    """`deploy.placement` on the swarm backend: its constraints, each KEY==VALUE or
    KEY!=VALUE (the rest of placement is refused by `_deploy`)."""
    placement = want_map(loc, path, value)
    if placement is None:
        return ()
    check_keys(loc, path, placement, ("constraints", *SWARM_PLACEMENT_REFUSED))
    if placement.get("constraints") is None:
        return ()
    here = (*path, "constraints")
    items = want_str_list(loc, here, placement["constraints"], allow_str=False)
    if items is None:
        return ()
    if len(items) > MAX_CONSTRAINTS:
        loc.error(here, f"at most {MAX_CONSTRAINTS} constraints")
        return ()
    for i, item in enumerate(items):
        if not _CONSTRAINT.fullmatch(item):
            why = "is not a Swarm constraint (KEY==VALUE or KEY!=VALUE)"
            loc.error((*here, i), f"{brief(item)} {why}")
    return tuple(items)


def _port(loc: Located, path: Path, item: Any) -> None:
    if isinstance(item, dict):
        if item.get("mode") == "ingress":
            loc.error((*path, "mode"), f"'ingress': {SWARM_PORTS['ingress']} {_ON_SWARM}")
        if item.get("host_ip") not in (None, ""):
            loc.error((*path, "host_ip"), f"{SWARM_PORTS['host_ip']} {_ON_SWARM}")
        if "-" in str(item.get("published", "")):
            loc.error((*path, "published"), f"{SWARM_PORTS['range']} {_ON_SWARM}")
        return
    if not isinstance(item, str | int) or isinstance(item, bool):
        return  # the translator reports it
    spec = str(item).rsplit("/", 1)[0]
    if spec.startswith("[") or spec.count(":") >= 2:
        loc.error(path, f"{brief(item)}: {SWARM_PORTS['host_ip']} {_ON_SWARM}")
    elif "-" in spec:
        loc.error(path, f"{brief(item)}: {SWARM_PORTS['range']} {_ON_SWARM}")


def _volume(loc: Located, path: Path, item: Any) -> None:
    if isinstance(item, str):
        parts = item.split(":")
        if len(parts) == 3 and {"z", "Z"} & set(parts[2].split(",")):
            loc.error(path, f"{brief(item)}: {SWARM_VOLUME['selinux']} {_ON_SWARM}")
        return
    bind = item.get("bind") if isinstance(item, dict) else None
    if not isinstance(bind, dict):
        return
    if bind.get("selinux"):
        loc.error((*path, "bind", "selinux"), f"{SWARM_VOLUME['selinux']} {_ON_SWARM}")
    if bind.get("create_host_path") in (True, "true"):
        here = (*path, "bind", "create_host_path")
        loc.error(here, f"{SWARM_VOLUME['create_host_path']} {_ON_SWARM}")


def _proxy(loc: Located, top: Any) -> None:
    if not isinstance(top, dict):
        return  # x-berth.backend is in it, so it is a mapping unless reported already
    proxy = top.get("proxy")
    if proxy is None:
        loc.error(("x-berth",), f"{SWARM_PROXY['missing']} {_ON_SWARM}")
        return
    if not isinstance(proxy, dict):
        return  # proxy_spec reports it
    here: Path = ("x-berth", "proxy")
    if proxy.get("service") is None:
        loc.error(here, f"{SWARM_PROXY['service']} {_ON_SWARM}")
    for key in ("test_command", "reload_command"):
        if key in proxy:
            _refuse(loc, (*here, key), key, SWARM_PROXY[key])
    if proxy.get("switch", "auto") not in ("auto", "dynamic"):
        switch = brief(proxy["switch"])
        loc.error((*here, "switch"), f"{switch}: {SWARM_PROXY['switch']} {_ON_SWARM}")
