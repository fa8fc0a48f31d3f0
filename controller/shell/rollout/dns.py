"""DNS gating: when a rollout keeps a service's DNS name off containers that are not (or no
longer) meant to serve.

Docker's embedded DNS answers a service name with every container that carries it as a
network alias, ready or not. Berth creates new containers without the alias and adds it
after the gate, and takes it off old containers (then waits DNS_GRACE) before stopping
them. Engine API 1.41 moves an alias only by a disconnect + reconnect, so this costs
~170 ms per container and is done only where someone could resolve the name.
"""

from __future__ import annotations

from controller.core.plan import ServiceAction
from controller.core.rollout import publishes_host_ports
from controller.ports import ContainerRuntime

DNS_GRACE = 1.5  # seconds a retired container keeps running after leaving the service DNS


def dns_gated(rt: ContainerRuntime, a: ServiceAction, proxy_service: str | None) -> bool:
    """Whether this rollout keeps the service name off its new containers until they
    pass the gate, and takes it off old ones before they stop.

    Not for the proxy service, nor for a service that publishes host ports: they are
    reached through their ports, which carry traffic as soon as a container runs, and
    the reconnect that moves an alias would tear down their port mappings and, for
    nginx, its connections to the backends for a moment (seen: connection refused on
    the published port, and SYNs to the backends lost for 5 s). Otherwise only when a
    container but the service's own and the proxy's (which routes by IP) shares a
    network on which the service has aliases: only such a client can resolve the name.
    The window left open: a client that joins the network during the rollout."""
    if a.target is None or a.service == proxy_service:
        return False
    if publishes_host_ports(a.target.spec.create):
        return False
    nets = [n for n in a.target.spec.networks if n.aliases]
    if not nets:
        return False
    listed = rt.list_containers(project=a.project)
    ours = {c.id for c in listed if c.service in (a.service, proxy_service)}
    return any(set(rt.network_members(n.network)) - ours for n in nets)
