"""`deploy` and the resource keys -> replicas and HostConfig limits.

Berth runs containers on one engine, so of `deploy` only what a single host can honour is
translated (replicas, resources, restart_policy as compose maps it without swarm; `mode:
global` is one container, one per host, as compose runs it); swarm
scheduling keys are refused rather than ignored, and `update_config`/`rollback_config` are
replaced by `x-berth` (strategy, deadlines, bake). `reservations.cpus` is accepted and has
no effect, as in compose: one engine has no CPU reservation (compose's setReservations).
On the swarm backend compose/swarm_check.py judges the swarm keys instead.
"""

from __future__ import annotations

from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import (
    check_keys,
    kv_pairs,
    want_bytes,
    want_float,
    want_int,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.compose.swarm_keys import SWARM_DEPLOY
from controller.core.model import MAX_REPLICAS
from controller.core.yamlsrc import Path

MAX_CPUS = 4096.0  # more than any host has; keeps NanoCpus inside int64

_DEPLOY_REJECTED = {
    "placement": "placement is a swarm feature; Berth runs on this one host",
    "endpoint_mode": "endpoint_mode is a swarm feature",
    "update_config": "use x-berth (strategy, progress_deadline, bake) to control rollouts",
    "rollback_config": "Berth rolls back by itself; tune it with x-berth",
    "labels": "deploy.labels are swarm service labels; use the service's `labels:`",
}


def translate_deploy(ctx: StackCtx, path: Path, value: Any, body: Body) -> int | None:
    """Returns deploy.replicas when set."""
    deploy = want_map(ctx.loc, path, value)
    if deploy is None:
        return None
    swarm = ctx.backend == "swarm"  # the swarm keys are judged by compose/swarm_check.py
    for key in deploy:
        if key in _DEPLOY_REJECTED and not (swarm and key in SWARM_DEPLOY):
            ctx.loc.error((*path, key), f"not supported: {_DEPLOY_REJECTED[key]}")
    check_keys(
        ctx.loc,
        path,
        {k: v for k, v in deploy.items() if k not in _DEPLOY_REJECTED},
        ("replicas", "mode", "resources", "restart_policy"),
    )
    mode = deploy.get("mode", "replicated")
    if mode not in ("replicated", "global") and not swarm:
        ctx.loc.error((*path, "mode"), "must be replicated or global")
    if deploy.get("resources") is not None:
        _resources(ctx, (*path, "resources"), deploy["resources"], body)
    if deploy.get("restart_policy") is not None:
        _restart_policy(ctx, (*path, "restart_policy"), deploy["restart_policy"], body)
    if deploy.get("replicas") is None:
        return 1 if mode == "global" and not swarm else None
    replicas = want_int(
        ctx.loc, (*path, "replicas"), deploy["replicas"], minimum=0, maximum=MAX_REPLICAS
    )
    if mode == "global" and not swarm and replicas not in (None, 1):
        ctx.loc.error((*path, "replicas"), GLOBAL_ONE)
    return replicas


GLOBAL_ONE = "deploy.mode: global runs one container per host (this one host): not more"


def one_per_host(ctx: StackCtx, svc: dict[str, Any]) -> bool:
    """compose `deploy.mode: global` on one engine: a container per node is one container
    (compose itself runs it once); desired/ cannot scale it."""
    deploy = svc.get("deploy")
    return ctx.backend != "swarm" and isinstance(deploy, dict) and deploy.get("mode") == "global"


_CONDITIONS = {"": "", "none": "no", "no": "no", "on-failure": "on-failure", "any": "always"}
_CONDITIONS |= {"always": "always", "unless-stopped": "unless-stopped"}  # compose maps these too


def _restart_policy(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    """compose's getRestartPolicy without swarm: condition none/on-failure/any (and the
    engine's names) -> RestartPolicy.Name, max_attempts -> MaximumRetryCount. `delay` and
    `window` have no engine equivalent (swarm's task scheduler does them): refused."""
    spec = want_map(ctx.loc, path, value)
    if spec is None:
        return
    for key in ("delay", "window"):
        if key in spec:
            ctx.loc.error((*path, key), f"not supported: the engine's restart policy has no {key}")
    check_keys(ctx.loc, path, spec, ("condition", "max_attempts", "delay", "window"))
    # compose maps a missing condition to "" (the engine's "no restart"), not swarm's `any`
    condition = want_str(ctx.loc, (*path, "condition"), spec.get("condition", ""))
    if condition is None:
        return
    if condition not in _CONDITIONS:
        ctx.loc.error((*path, "condition"), "must be none, on-failure or any")
        return
    attempts = 0
    if spec.get("max_attempts") is not None:
        attempts = (
            want_int(
                ctx.loc, (*path, "max_attempts"), spec["max_attempts"], minimum=0, maximum=2**31 - 1
            )
            or 0
        )
        if attempts and _CONDITIONS[condition] != "on-failure":
            # the engine refuses a retry count with any other policy at create
            ctx.loc.error((*path, "max_attempts"), "only applies to condition: on-failure")
    policy = {"Name": _CONDITIONS[condition], "MaximumRetryCount": attempts}
    body.set_host(ctx, path, "RestartPolicy", policy)


def nano_cpus(ctx: StackCtx, path: Path, value: Any) -> int | None:
    cpus = want_float(ctx.loc, path, value, minimum=0, maximum=MAX_CPUS)
    return None if cpus is None else round(cpus * 1e9)


def _resources(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    res = want_map(ctx.loc, path, value)
    if res is None:
        return
    check_keys(ctx.loc, path, res, ("limits", "reservations"))
    limits = want_map(ctx.loc, (*path, "limits"), res["limits"]) if res.get("limits") else None
    if limits is not None:
        here = (*path, "limits")
        check_keys(ctx.loc, here, limits, ("cpus", "memory", "pids"))
        if "cpus" in limits:
            body.set_host(
                ctx, (*here, "cpus"), "NanoCpus", nano_cpus(ctx, (*here, "cpus"), limits["cpus"])
            )
        if "memory" in limits:
            body.set_host(
                ctx,
                (*here, "memory"),
                "Memory",
                want_bytes(ctx.loc, (*here, "memory"), limits["memory"]),
            )
        if "pids" in limits:
            body.set_host(
                ctx,
                (*here, "pids"),
                "PidsLimit",
                want_int(ctx.loc, (*here, "pids"), limits["pids"]),
            )
    if res.get("reservations"):
        _reservations(ctx, (*path, "reservations"), res["reservations"], body)


def _reservations(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    res = want_map(ctx.loc, path, value)
    if res is None:
        return
    if "generic_resources" in res and ctx.backend != "swarm":  # swarm: compose/swarm_check.py
        ctx.loc.error((*path, "generic_resources"), "not supported: a swarm feature")
    check_keys(
        ctx.loc,
        path,
        {k: v for k, v in res.items() if k != "generic_resources"},
        ("cpus", "memory", "devices"),
    )
    if "memory" in res:
        body.set_host(
            ctx,
            (*path, "memory"),
            "MemoryReservation",
            want_bytes(ctx.loc, (*path, "memory"), res["memory"]),
        )
    if "cpus" in res:  # checked, then without effect: compose ignores it without swarm
        want_float(ctx.loc, (*path, "cpus"), res["cpus"], minimum=0, maximum=MAX_CPUS)
    if "devices" in res:
        _devices(ctx, (*path, "devices"), res["devices"], body)


def _options(ctx: StackCtx, path: Path, value: Any) -> dict[str, str | None] | None:
    """Device options are a mapping in compose-spec (no list form)."""
    if value is None:
        return {}
    opts = want_map(ctx.loc, path, value)
    return None if opts is None else kv_pairs(ctx.loc, path, opts)


def device_request(
    ctx: StackCtx, here: Path, item: Any, *, gpu: bool = False
) -> dict[str, Any] | None:
    """One DeviceRequest as compose builds it; `gpus:` items add the "gpu" capability.
    Neither count nor device_ids means all devices (Count -1), as compose-go defaults."""
    dev = want_map(ctx.loc, here, item)
    if dev is None:
        return None
    check_keys(ctx.loc, here, dev, ("capabilities", "driver", "count", "device_ids", "options"))
    caps = want_str_list(
        ctx.loc, (*here, "capabilities"), dev.get("capabilities", []), allow_str=False
    )
    if caps is None or (not gpu and not caps):
        if caps is not None:
            ctx.loc.error((*here, "capabilities"), "must list at least one capability")
        return None
    if "count" in dev and "device_ids" in dev:
        ctx.loc.error(here, "count and device_ids are mutually exclusive")
    count = -1
    if str(dev.get("count", "all")).lower() != "all":
        count = want_int(ctx.loc, (*here, "count"), dev["count"], minimum=1) or -1
    ids = want_str_list(ctx.loc, (*here, "device_ids"), dev.get("device_ids", []), allow_str=False)
    options = _options(ctx, (*here, "options"), dev.get("options")) or {}
    return {
        "Driver": want_str(ctx.loc, (*here, "driver"), dev.get("driver", "")) or "",
        "Count": 0 if ids else count,
        "DeviceIDs": ids or [],
        "Capabilities": [[*caps, "gpu"] if gpu else caps],
        "Options": {k: v or "" for k, v in options.items()},
    }


def _devices(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return
    found = [device_request(ctx, (*path, i), item) for i, item in enumerate(value)]
    body.host.setdefault("DeviceRequests", []).extend(r for r in found if r is not None)


def translate_gpus(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    """`gpus: all` or a list of device requests (compose-go's transformGpus)."""
    if value == "all":
        value = [{}]
    elif not isinstance(value, list):
        ctx.loc.error(path, "must be 'all' or a list of device requests")
        return
    found = [device_request(ctx, (*path, i), item, gpu=True) for i, item in enumerate(value)]
    body.host.setdefault("DeviceRequests", []).extend(r for r in found if r is not None)


def translate_simple_limits(ctx: StackCtx, svc: dict[str, Any], path: Path, body: Body) -> None:
    """The legacy top-level resource keys; conflicts with deploy.resources are reported."""
    if "cpus" in svc:
        body.set_host(
            ctx, (*path, "cpus"), "NanoCpus", nano_cpus(ctx, (*path, "cpus"), svc["cpus"])
        )
    for key, api in (
        ("mem_limit", "Memory"),
        ("mem_reservation", "MemoryReservation"),
        ("shm_size", "ShmSize"),
    ):
        if key in svc:
            body.set_host(ctx, (*path, key), api, want_bytes(ctx.loc, (*path, key), svc[key]))
    if "memswap_limit" in svc:
        raw = svc["memswap_limit"]
        swap = -1 if raw in (-1, "-1") else want_bytes(ctx.loc, (*path, "memswap_limit"), raw)
        body.set_host(ctx, (*path, "memswap_limit"), "MemorySwap", swap)
    for key, api in (("pids_limit", "PidsLimit"), ("cpu_shares", "CpuShares")):
        if key in svc:
            body.set_host(ctx, (*path, key), api, want_int(ctx.loc, (*path, key), svc[key]))
    if "oom_score_adj" in svc:  # the kernel's range; the engine refuses anything else
        adj = want_int(
            ctx.loc, (*path, "oom_score_adj"), svc["oom_score_adj"], minimum=-1000, maximum=1000
        )
        body.set_host(ctx, (*path, "oom_score_adj"), "OomScoreAdj", adj)
