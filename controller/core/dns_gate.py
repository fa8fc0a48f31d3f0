"""Whether a rollout keeps a service's DNS name off containers that are not (or no longer)
meant to serve (DNS gating; the shell moves the aliases, see shell/rollout/dns.py).

Docker's embedded DNS answers a service name with every container that carries it as a
network alias, ready or not. Gating costs two alias swaps per container and a grace period
before an old one stops, so it is done only where someone could resolve the name.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from controller.core.model import Target
from controller.core.rollout_config import publishes_host_ports


def aliased_networks(target: Target | None, *, is_proxy: bool) -> tuple[str, ...]:
    """The networks whose members decide gating (what the shell inspects); none where the
    answer does not depend on them (see dns_gated)."""
    if target is None or is_proxy or publishes_host_ports(target.spec.create):
        return ()
    return tuple(n.network for n in target.spec.networks if n.aliases)


def dns_gated(
    target: Target | None,
    *,
    is_proxy: bool,
    members: Mapping[str, Collection[str]],
    own: Collection[str],
) -> bool:
    """Not for the proxy service, nor for a service that publishes host ports: they are
    reached through their ports, which carry traffic as soon as a container runs, and the
    reconnect that moves an alias would tear down their port mappings and, for nginx, its
    connections to the backends for a moment (seen: connection refused on the published
    port, and SYNs to the backends lost for 5 s). Otherwise only when a container other
    than the service's own and the proxy's (which routes by IP) is a member of a network on
    which the service has aliases: only such a client can resolve the name. The window left
    open: a client that joins the network during the rollout.

    `members`: network -> ids of the containers on it; `own`: ids of the service's and the
    proxy's containers."""
    mine = set(own)
    nets = aliased_networks(target, is_proxy=is_proxy)
    return any(set(members.get(net, ())) - mine for net in nets)
