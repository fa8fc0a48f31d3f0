"""How many containers a service runs, under which name, and in whose namespaces:
`scale`, `container_name`, `network_mode`, `volumes_from` (the last two: namespaces.py).

compose's rules: `scale` and `deploy.replicas` are the same count (both given and unequal is
an error); a `container_name` can be held by one container, so more than one replica is an
error; `network_mode` excludes `networks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import want_int, want_str
from controller.core.compose.namespaces import (
    has_own_endpoint,
    translate_network_mode,
    translate_volumes_from,
)
from controller.core.model import MAX_REPLICAS, BerthOptions, DependsOn
from controller.core.yamlsrc import Path
from controller.errors import brief

CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")  # the engine's name rule


@dataclass(frozen=True)
class Identity:
    replicas: int | None
    container_name: str | None
    peers: tuple[str, ...]


def translate_identity(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body, replicas: int | None
) -> Identity:
    replicas = _scale(ctx, path, svc, replicas)
    name = None
    if svc.get("container_name") is not None:
        here = (*path, "container_name")
        name = want_str(ctx.loc, here, svc["container_name"])
        if name is not None and not CONTAINER_NAME.fullmatch(name):
            ctx.loc.error(
                here, f"{brief(name)} is not a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
            )
            name = None
        if name is not None and replicas is not None and replicas > 1:
            ctx.loc.error(here, f"a container_name is held by one container, not {replicas}")
    peers: tuple[str, ...] = ()
    if svc.get("network_mode") is not None:
        peers += translate_network_mode(ctx, path, svc, body)
    if svc.get("volumes_from") is not None:
        peers += translate_volumes_from(ctx, path, svc["volumes_from"], body)
    return Identity(replicas, name, tuple(dict.fromkeys(peers)))


def _scale(ctx: StackCtx, path: Path, svc: dict[str, Any], replicas: int | None) -> int | None:
    if svc.get("scale") is None:
        return replicas
    here = (*path, "scale")
    scale = want_int(ctx.loc, here, svc["scale"])
    if scale is None:
        return replicas
    if not 0 <= scale <= MAX_REPLICAS:
        ctx.loc.error(here, f"must be 0 to {MAX_REPLICAS}")
        return replicas
    if replicas is not None and replicas != scale:
        ctx.loc.error(here, f"scale {scale} and deploy.replicas {replicas} disagree")
    return scale


def check_peers(
    ctx: StackCtx, path: Path, create: dict[str, Any], berth: BerthOptions, peers: tuple[str, ...]
) -> tuple[DependsOn, ...]:
    """What a shared namespace rules out, and the dependencies it implies (as compose)."""
    if not has_own_endpoint(create):
        for key, on in (("health", berth.health), ("upstream", berth.upstream)):
            if on is not None:
                ctx.loc.error(
                    (*path, "x-berth", key),
                    "the container has no network endpoint of its own (network_mode): Berth "
                    "cannot probe or route to it; use a compose healthcheck",
                )
    for peer in peers:
        if peer not in ctx.loc.data.get("services", {}):
            ctx.loc.error(path, f"{brief(peer)} (network_mode / volumes_from) is not a service")
    return tuple(DependsOn(service=p) for p in peers)
