"""Host options (issue 12): CPU and memory tuning, block IO, cgroups, namespaces, links.

Each key goes to its HostConfig field as compose v2 sends it (create.go's getCreateConfigs,
getDeployResources, setBlkio; compose-go reads cpu_period, cpu_quota, cpu_rt_period and
cpu_rt_runtime as integers of microseconds, mem_swappiness and blkio rates as byte units).
Values the engine (API 1.41) would refuse at create are refused here, at the key. What
depends on the host (a device path, the CPUs present, the storage driver, the cgroup
version or driver) is left to the engine.

`pid`/`ipc: service:NAME` are refused: Berth resolves `service:` references to a running
container only for network_mode and volumes_from. `links` resolve by DNS on a shared
network (a link is compose's dependency plus a name; Berth's container names change at
every rollout, so only the service's own name can be linked); `external_links` name
containers and work on the default bridge (`network_mode: bridge`) only, where the engine
honours HostConfig.Links.
"""

from __future__ import annotations

import re
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import (
    check_keys,
    kv_pairs,
    want_bool,
    want_bytes,
    want_int,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.compose.identity import CONTAINER_NAME  # a name or an id
from controller.core.model import DependsOn
from controller.core.yamlsrc import Path
from controller.errors import brief

_CPUSET = re.compile(r"[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?){0,255}")
_CGROUP_RULE = re.compile(r"[acb] ([0-9]{1,10}|\*):([0-9]{1,10}|\*) [rwm]{1,3}")  # the engine's
_BLKIO_RATES = {
    "device_read_bps": "BlkioDeviceReadBps",
    "device_write_bps": "BlkioDeviceWriteBps",
    "device_read_iops": "BlkioDeviceReadIOps",
    "device_write_iops": "BlkioDeviceWriteIOps",
}
_NAMESPACES = {  # key -> (HostConfig field, modes the engine takes besides container:NAME)
    "pid": ("PidMode", ("host",)),
    "ipc": ("IpcMode", ("host", "private", "shareable", "none")),
    "uts": ("UTSMode", ("host",)),
}


def translate_host_options(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body
) -> tuple[DependsOn, ...]:
    """Returns the dependencies `links` imply (compose-go adds them to depends_on)."""
    _cpu(ctx, path, svc, body)
    _cgroups(ctx, path, svc, body)
    if svc.get("blkio_config") is not None:
        _blkio(ctx, (*path, "blkio_config"), svc["blkio_config"], body)
    for key in _NAMESPACES:
        if svc.get(key) is not None:
            _namespace(ctx, (*path, key), key, svc[key], body)
    if svc.get("external_links") is not None:
        _external_links(ctx, path, svc, body)
    if svc.get("links") is None:
        return ()
    return _links(ctx, path, svc)


def _cpu(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> None:
    if "cpu_period" in svc:  # the engine: 0 (unset) or 1ms to 1s
        here = (*path, "cpu_period")
        period = want_int(ctx.loc, here, svc["cpu_period"], minimum=0, maximum=1_000_000)
        if period is not None and 0 < period < 1000:
            ctx.loc.error(here, f"must be 0 or 1000 to 1000000 microseconds, got {period}")
            period = None
        body.set_host(ctx, here, "CpuPeriod", period)
    if "cpu_quota" in svc:  # -1 unlimited, 0 unset, else at least 1ms
        here = (*path, "cpu_quota")
        quota = want_int(ctx.loc, here, svc["cpu_quota"], minimum=-1)
        if quota is not None and 0 < quota < 1000:
            ctx.loc.error(here, f"must be -1, 0 or at least 1000 microseconds, got {quota}")
            quota = None
        body.set_host(ctx, here, "CpuQuota", quota)
    for key, api, low in (
        ("cpu_rt_period", "CpuRealtimePeriod", 0),
        ("cpu_rt_runtime", "CpuRealtimeRuntime", -1),
    ):
        if key in svc:
            value = want_int(ctx.loc, (*path, key), svc[key], minimum=low)
            body.set_host(ctx, (*path, key), api, value)
    if "cpuset" in svc:
        here = (*path, "cpuset")
        text = want_str(ctx.loc, here, svc["cpuset"])
        if text is not None and not _cpuset_ok(text):
            ctx.loc.error(here, f"{brief(text)} is not a CPU list such as 0-3 or 0,2")
            text = None
        body.set_host(ctx, here, "CpusetCpus", text)
    if "mem_swappiness" in svc:
        here = (*path, "mem_swappiness")
        swappiness = want_int(ctx.loc, here, svc["mem_swappiness"], minimum=0, maximum=100)
        body.set_host(ctx, here, "MemorySwappiness", swappiness)
    if "oom_kill_disable" in svc:
        here = (*path, "oom_kill_disable")
        body.set_host(
            ctx, here, "OomKillDisable", want_bool(ctx.loc, here, svc["oom_kill_disable"])
        )


def _cpuset_ok(text: str) -> bool:
    if not _CPUSET.fullmatch(text):
        return False
    for part in text.split(","):
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            return False
    return True


def _cgroups(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> None:
    if "cgroup" in svc:
        here = (*path, "cgroup")
        if svc["cgroup"] not in ("host", "private"):
            ctx.loc.error(here, "must be host or private")
        else:
            body.set_host(ctx, here, "CgroupnsMode", svc["cgroup"])
    if "cgroup_parent" in svc:
        here = (*path, "cgroup_parent")
        parent = want_str(ctx.loc, here, svc["cgroup_parent"])
        if parent is not None and ("\x00" in parent or len(parent) > 4096):
            ctx.loc.error(here, "is not a cgroup path")
            parent = None
        body.set_host(ctx, here, "CgroupParent", parent)
    if "userns_mode" in svc:  # the engine's UsernsMode.Valid: "host" (or unset)
        here = (*path, "userns_mode")
        if svc["userns_mode"] != "host":
            ctx.loc.error(here, "must be host (the only user namespace mode a container takes)")
        else:
            body.set_host(ctx, here, "UsernsMode", "host")
    if "device_cgroup_rules" in svc:
        here = (*path, "device_cgroup_rules")
        rules = want_str_list(ctx.loc, here, svc["device_cgroup_rules"], allow_str=False)
        for i, rule in enumerate(rules or []):
            if not _CGROUP_RULE.fullmatch(rule):
                why = "is not a device cgroup rule such as 'c 1:3 mr' or 'b *:* rwm'"
                ctx.loc.error((*here, i), f"{brief(rule)} {why}")
                rules = None
        body.set_host(ctx, here, "DeviceCgroupRules", rules)
    if "storage_opt" in svc:
        here = (*path, "storage_opt")
        opts = want_map(ctx.loc, here, svc["storage_opt"])
        pairs = None if opts is None else kv_pairs(ctx.loc, here, opts)
        if pairs is not None:
            body.set_host(ctx, here, "StorageOpt", {k: v or "" for k, v in pairs.items()})


def _blkio(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    """compose's setBlkio: weights 10 to 1000 (0: unset), rates in bytes (or IO) per second."""
    blkio = want_map(ctx.loc, path, value)
    if blkio is None:
        return
    check_keys(ctx.loc, path, blkio, ("weight", "weight_device", *_BLKIO_RATES))
    if "weight" in blkio:
        body.set_host(ctx, (*path, "weight"), "BlkioWeight", _weight(ctx, path, blkio, "weight"))
    lists: dict[str, str] = {"weight_device": "BlkioWeightDevice", **_BLKIO_RATES}
    for key, api in lists.items():
        if key not in blkio:
            continue
        if not isinstance(blkio[key], list):
            ctx.loc.error((*path, key), "must be a list of mappings with path and a value")
            continue
        out = [_device(ctx, (*path, key, i), key, item) for i, item in enumerate(blkio[key])]
        if all(d is not None for d in out):
            body.set_host(ctx, (*path, key), api, out)


def _weight(ctx: StackCtx, path: Path, spec: dict[str, Any], key: str) -> int | None:
    weight = want_int(ctx.loc, (*path, key), spec[key], minimum=0, maximum=1000)
    if weight is not None and 0 < weight < 10:
        ctx.loc.error((*path, key), f"must be 10 to 1000 (or 0: unset), got {weight}")
        return None
    return weight


def _device(ctx: StackCtx, here: Path, key: str, item: Any) -> dict[str, Any] | None:
    spec = want_map(ctx.loc, here, item)
    if spec is None:
        return None
    field = "weight" if key == "weight_device" else "rate"
    check_keys(ctx.loc, here, spec, ("path", field))
    device = want_str(ctx.loc, (*here, "path"), spec.get("path"))
    if device is not None and not (device.startswith("/") and "\x00" not in device):
        ctx.loc.error((*here, "path"), f"{brief(device)} must be an absolute device path")
        device = None
    if field not in spec:
        ctx.loc.error(here, f"needs '{field}'")
        return None
    if field == "weight":
        amount = _weight(ctx, here, spec, "weight")
    else:
        amount = want_bytes(ctx.loc, (*here, "rate"), spec["rate"])
    if device is None or amount is None:
        return None
    return {"Path": device, "Weight" if field == "weight" else "Rate": amount}


def _namespace(ctx: StackCtx, here: Path, key: str, value: Any, body: Body) -> None:
    api, modes = _NAMESPACES[key]
    mode = want_str(ctx.loc, here, value)
    if mode is None or mode == "":  # compose sends "" for unset: the engine's default
        return
    if mode.startswith("service:"):
        why = (
            f"{brief(mode)} is not supported: Berth resolves service: references to a running "
            "container only for network_mode and volumes_from; join a container by name "
            "with container:NAME"
        )
        ctx.loc.error(here, why)
        return
    name = mode.removeprefix("container:")
    if key == "uts" or mode == name:  # the engine takes container:NAME for pid and ipc
        if mode not in modes:
            also = () if key == "uts" else ("container:NAME",)
            ctx.loc.error(here, f"must be {' or '.join((*modes, *also))}")
            return
    elif not CONTAINER_NAME.fullmatch(name):
        ctx.loc.error(here, f"{brief(name)} is not a container name or id")
        return
    body.set_host(ctx, here, api, mode)


def _networks(svc: Any) -> set[str] | None:
    """The network keys a raw service joins; None when it has a network_mode."""
    if not isinstance(svc, dict) or svc.get("network_mode") is not None:
        return None
    nets = svc.get("networks")
    if nets is None:
        return {"default"}
    return {str(n) for n in nets} if isinstance(nets, list | dict) else set()


def _links(ctx: StackCtx, path: Path, svc: dict[str, Any]) -> tuple[DependsOn, ...]:
    here = (*path, "links")
    items = want_str_list(ctx.loc, here, svc["links"], allow_str=False)
    services = ctx.loc.data.get("services") or {}
    mine = _networks(svc)
    declared = svc.get("depends_on") or ()
    out: list[DependsOn] = []
    for i, item in enumerate(items or []):
        name, _, alias = item.partition(":")  # a usable alias became a network alias
        if alias and alias != name and alias in services:  # (compose/link_aliases.py)
            why = f"the alias {brief(alias)} is the name of another service of this stack"
            ctx.loc.error((*here, i), why)
            continue
        if name not in services or name == path[-1]:
            ctx.loc.error((*here, i), f"{brief(name)} is not another service of this stack")
            continue
        theirs = _networks(services[name])
        if mine is None or theirs is None or not mine & theirs:
            why = "a link resolves by DNS on a network both services join; "
            why += "this one has a network_mode" if mine is None else f"{brief(name)} shares none"
            ctx.loc.error((*here, i), why)
            continue
        if name not in declared:  # compose-go: condition service_started, restart true
            out.append(DependsOn(name, "service_started", True))
    return tuple(out)


def _external_links(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> None:
    here = (*path, "external_links")
    items = want_str_list(ctx.loc, here, svc["external_links"], allow_str=False)
    if items is None:
        return
    if svc.get("network_mode") != "bridge":
        why = (
            "work on the default bridge only (network_mode: bridge), where the engine honours "
            "HostConfig.Links; on a user-defined network, attach the container to an "
            "external network this service joins and use its name"
        )
        ctx.loc.error(here, why)
        return
    links: list[str] = []
    for i, item in enumerate(items):
        name, _, alias = item.partition(":")
        if not CONTAINER_NAME.fullmatch(name) or (alias and not CONTAINER_NAME.fullmatch(alias)):
            ctx.loc.error((*here, i), f"{brief(item)} must be CONTAINER or CONTAINER:ALIAS")
            continue
        links.append(f"{name}:{alias or name}")  # compose's getLinks format
    body.set_host(ctx, here, "Links", links)
