"""DNS gating, the shell's half: gather who is on the service's networks; core/dns_gate.py
decides. Engine API 1.41 moves an alias only by a disconnect + reconnect (~120 ms)."""

from __future__ import annotations

from controller.core.dns_gate import aliased_networks
from controller.core.dns_gate import dns_gated as decide
from controller.core.plan import ServiceAction
from controller.ports import ContainerRuntime

DNS_GRACE = 1.5  # seconds a retired container keeps running after leaving the service DNS


def dns_gated(rt: ContainerRuntime, a: ServiceAction, proxy_service: str | None) -> bool:
    """Whether this rollout keeps the service name off its new containers until they pass
    the gate, and takes it off old ones before they stop (see core.dns_gate)."""
    is_proxy = a.service == proxy_service
    nets = aliased_networks(a.target, is_proxy=is_proxy)
    if not nets:
        return False
    listed = rt.list_containers(project=a.project)
    own = {c.id for c in listed if c.service in (a.service, proxy_service)}
    members = {net: rt.network_members(net) for net in nets}
    return decide(a.target, is_proxy=is_proxy, members=members, own=own)
