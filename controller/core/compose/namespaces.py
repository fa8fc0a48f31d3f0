"""`network_mode` and `volumes_from`: a container that joins another's network namespace or
mounts another's volumes.

Compose's values: network_mode `host`, `none`, `bridge`, `service:NAME`, `container:NAME`
(or a network name); volumes_from `NAME` / `service:NAME` / `container:NAME`, each with an
optional `:ro` or `:rw`. A `service:` reference names a container that only exists at run
time (and changes at every rollout of that service), so it stays in the create body as
written (`service:NAME`) and the shell puts the id of that service's running container in
its place when it creates the container (`controller/shell/rollout/peers.py`). The
referenced services are returned: they become dependencies (started first, as compose
does) and part of the revision (replacing NAME replaces its dependents, whose namespace or
volumes came from NAME's old container).

What it means for the gate and traffic: a container without its own network endpoint
(`host`, `none`, `service:`, `container:`) has no address Berth can probe or route to, so
`x-berth.health` and `x-berth.upstream` are refused there (the compose healthcheck, which
runs inside the container's namespace, gates it), it gets no service alias, and it is
replaced stop-first (the new container would share ports with the old one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import want_str, want_str_list
from controller.core.yamlsrc import Path
from controller.errors import brief

SHARED_MODES = ("host", "none")
_PREFIXES = ("service:", "container:")


def translate_network_mode(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body
) -> tuple[str, ...]:
    """HostConfig.NetworkMode; returns the service it joins (`service:NAME`), if any."""
    here = (*path, "network_mode")
    mode = want_str(ctx.loc, here, svc["network_mode"])
    if mode is None:
        return ()
    if svc.get("networks") is not None:
        ctx.loc.error(here, "network_mode and networks cannot both be set (compose refuses it)")
        return ()
    peer = mode.split(":", 1)[1] if mode.startswith(_PREFIXES) else None
    if mode.startswith(_PREFIXES) and not peer:
        ctx.loc.error(here, f"{brief(mode)} names no service or container")
        return ()
    if mode.startswith("service:") and peer == path[-1]:
        ctx.loc.error(here, "a service cannot join its own network namespace")
        return ()
    if mode == "disabled":  # compose: no networking at all (Config.NetworkDisabled)
        body.top["NetworkDisabled"] = True
        mode = "none"
    body.host["NetworkMode"] = mode
    return (str(peer),) if mode.startswith("service:") else ()


def translate_volumes_from(ctx: StackCtx, path: Path, value: Any, body: Body) -> tuple[str, ...]:
    """HostConfig.VolumesFrom; returns the services whose volumes it mounts."""
    here = (*path, "volumes_from")
    items = want_str_list(ctx.loc, here, value)
    if items is None:
        return ()
    out: list[str] = []
    peers: list[str] = []
    for i, item in enumerate(items):
        kind, _, rest = item.partition(":") if item.startswith(_PREFIXES) else ("service", "", item)
        name, _, access = rest.partition(":")
        if not name or access not in ("", "ro", "rw"):
            ctx.loc.error(
                (*here, i),
                f"{brief(item)} must be NAME, service:NAME or "
                "container:NAME, optionally with :ro or :rw",
            )
            continue
        if kind == "service":
            if name == path[-1]:
                ctx.loc.error((*here, i), "a service cannot mount its own volumes")
                continue
            peers.append(name)
            out.append(f"service:{name}" + (f":{access}" if access else ""))
        else:
            out.append(name + (f":{access}" if access else ""))
    body.host["VolumesFrom"] = out
    return tuple(peers)


def shares_a_namespace(create: Mapping[str, Any]) -> bool:
    """True when a new container would share ports with the old one (host, or another
    container's namespace): it must be replaced stop-first."""
    mode = str((create.get("HostConfig") or {}).get("NetworkMode") or "")
    return mode == "host" or mode.startswith(_PREFIXES)


def has_own_endpoint(create: Mapping[str, Any]) -> bool:
    """False when the container has no network endpoint of its own to probe or route to."""
    mode = str((create.get("HostConfig") or {}).get("NetworkMode") or "")
    return not (mode in SHARED_MODES or mode.startswith(_PREFIXES))
