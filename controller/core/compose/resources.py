"""`deploy` and the resource keys -> replicas and HostConfig limits.

Berth runs containers on one engine, so of `deploy` only what a single host can honour is
translated (replicas, resources); swarm scheduling keys are refused rather than ignored, and
`update_config`/`rollback_config` are replaced by `x-berth` (strategy, deadlines, bake).
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
from controller.core.model import MAX_REPLICAS
from controller.core.yamlsrc import Path

MAX_CPUS = 4096.0  # more than any host has; keeps NanoCpus inside int64

_DEPLOY_REJECTED = {
    "placement": "placement is a swarm feature; Berth runs on this one host",
    "endpoint_mode": "endpoint_mode is a swarm feature",
    "update_config": "use x-berth (strategy, progress_deadline, bake) to control rollouts",
    "rollback_config": "Berth rolls back by itself; tune it with x-berth",
    "restart_policy": "use the service's `restart:` key",
    "labels": "deploy.labels are swarm service labels; use the service's `labels:`",
}


def translate_deploy(ctx: StackCtx, path: Path, value: Any, body: Body) -> int | None:
    """Returns deploy.replicas when set."""
    deploy = want_map(ctx.loc, path, value)
    if deploy is None:
        return None
    for key in deploy:
        if key in _DEPLOY_REJECTED:
            ctx.loc.error((*path, key), f"not supported: {_DEPLOY_REJECTED[key]}")
    check_keys(
        ctx.loc,
        path,
        {k: v for k, v in deploy.items() if k not in _DEPLOY_REJECTED},
        ("replicas", "mode", "resources"),
    )
    if deploy.get("mode", "replicated") != "replicated":
        ctx.loc.error((*path, "mode"), "only mode: replicated is supported")
    if deploy.get("resources") is not None:
        _resources(ctx, (*path, "resources"), deploy["resources"], body)
    if deploy.get("replicas") is None:
        return None
    return want_int(
        ctx.loc, (*path, "replicas"), deploy["replicas"], minimum=0, maximum=MAX_REPLICAS
    )


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
    if "generic_resources" in res:
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
    if "cpus" in res:
        cpus = want_float(ctx.loc, (*path, "cpus"), res["cpus"], minimum=0, maximum=MAX_CPUS)
        if cpus is not None:
            # No hard reservation exists on one engine; a relative weight is the closest.
            body.set_host(ctx, (*path, "cpus"), "CpuShares", int(cpus * 1024))
    if "devices" in res:
        _devices(ctx, (*path, "devices"), res["devices"], body)


def _options(ctx: StackCtx, path: Path, value: Any) -> dict[str, str | None] | None:
    """Device options are a mapping in compose-spec (no list form)."""
    if value is None:
        return {}
    opts = want_map(ctx.loc, path, value)
    return None if opts is None else kv_pairs(ctx.loc, path, opts)


def _devices(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return
    requests: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        here = (*path, i)
        dev = want_map(ctx.loc, here, item)
        if dev is None:
            continue
        check_keys(ctx.loc, here, dev, ("capabilities", "driver", "count", "device_ids", "options"))
        caps = want_str_list(
            ctx.loc, (*here, "capabilities"), dev.get("capabilities"), allow_str=False
        )
        if "count" in dev and "device_ids" in dev:
            ctx.loc.error(here, "count and device_ids are mutually exclusive")
        count = -1
        if dev.get("count") not in (None, "all"):
            count = want_int(ctx.loc, (*here, "count"), dev["count"], minimum=1) or -1
        ids = want_str_list(
            ctx.loc, (*here, "device_ids"), dev.get("device_ids", []), allow_str=False
        )
        request: dict[str, Any] = {
            "Driver": want_str(ctx.loc, (*here, "driver"), dev.get("driver", "")) or "",
            "Count": 0 if ids else count,
            "DeviceIDs": ids or [],
            "Capabilities": [caps or []],
            "Options": {
                k: v or ""
                for k, v in (
                    _options(ctx, (*here, "options"), dev.get("options")) or {}
                ).items()
            },
        }
        requests.append(request)
    body.host["DeviceRequests"] = requests


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
