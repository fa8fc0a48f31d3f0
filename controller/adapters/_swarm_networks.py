"""Overlay networks of the Swarm backend: created attachable, with compose's labels."""

from __future__ import annotations

from typing import Any

import docker.types

from controller.adapters._docker_errors import translated
from controller.core.model import NetworkDef
from controller.errors import ContainerRuntimeError, NotFound


def ensure_overlay(api: Any, net: NetworkDef, *, project: str) -> None:
    """Create the overlay unless it exists; an external one must exist. Two rollouts of one
    stack may ask at once: the loser's "already exists" is the network being there."""
    with translated(f"inspect network {net.name}"):
        found = api.networks(names=[net.name])
    if any(n.get("Name") == net.name for n in found):
        return
    if net.external:
        raise NotFound(f"external network {net.name} does not exist on the swarm")
    ipam = None
    if net.ipam:
        pools = [
            docker.types.IPAMPool(subnet=p.subnet, gateway=p.gateway, iprange=p.ip_range)
            for p in net.ipam
        ]
        ipam = docker.types.IPAMConfig(driver=net.ipam_driver or "default", pool_configs=pools)
    labels = {"com.docker.compose.project": project, "com.docker.compose.network": net.key}
    labels.update(dict(net.labels))
    try:
        with translated(f"create overlay network {net.name}"):
            api.create_network(
                net.name,
                driver="overlay",
                scope="swarm",
                attachable=True,
                internal=net.internal,
                options=dict(net.driver_opts) or None,
                labels=labels,
                ipam=ipam,
                check_duplicate=True,
            )
    except ContainerRuntimeError as exc:
        if "already exists" not in str(exc) and "name conflicts" not in str(exc):
            raise


def overlay_members(api: Any, network: str) -> list[str]:
    """Ids of the services attached to an overlay (the DNS gate's question)."""
    with translated("list services"):
        services = api.services()
    with translated(f"inspect network {network}"):
        nets = api.networks(names=[network])
    ids = {str(n.get("Id", "")) for n in nets if n.get("Name") == network}
    out = []
    for s in services:
        targets = ((s.get("Spec") or {}).get("TaskTemplate") or {}).get("Networks") or []
        if any(t.get("Target") in ids or t.get("Target") == network for t in targets):
            out.append(str(s["ID"]))
    return out
