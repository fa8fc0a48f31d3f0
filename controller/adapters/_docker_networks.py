"""Networks and volumes a stack declares: created when missing, with compose's labels.

A bridge network Berth creates always ends up with a *user-configured* subnet: the one
the compose file gives in `ipam.config`, or else the one the engine picks itself, fixed
by creating the network once to learn it and again with it. Only on such a network can
a container ask for an address when it is (re)connected, and Berth's alias swaps (a
disconnect and a reconnect, see DockerRuntime.add_aliases) rely on that to keep the
container's address. On a network without one, the engine hands out the lowest free
address, and a container with a free address below its own comes back on that one:
connections in flight to it, from other containers, are then cut (measured on Docker
20.10: a 4 s request over the old address never completes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import docker.types

from controller.adapters._docker_errors import translated
from controller.core.model import LABEL_MANAGED, IpamPool, NetworkDef, VolumeDef
from controller.errors import ContainerRuntimeError, NotFound

log = logging.getLogger("berth.docker")


def ensure_network(api: Any, net: NetworkDef, *, project: str) -> bool:
    """Whether it was created. An existing network is left as it is (its `ipam` is not
    compared with the file's); an external one must already exist."""
    try:
        with translated(f"inspect network {net.name}"):
            api.inspect_network(net.name)
        return False
    except NotFound:
        if net.external:
            raise ContainerRuntimeError(
                f"external network {net.name!r} does not exist; create it first"
            ) from None
    labels = {
        **dict(net.labels),
        "com.docker.compose.project": project,
        "com.docker.compose.network": net.key,
        LABEL_MANAGED: "true",
    }
    try:
        if fixable(net):
            _create_fixed(api, net, labels)
        else:
            _create(api, net, labels, net.ipam)
    except ContainerRuntimeError as exc:
        # Lost a race with a concurrent creator: fine if the network now exists.
        try:
            with translated(f"inspect network {net.name}"):
                api.inspect_network(net.name)
        except NotFound:
            raise exc from None  # the create's error says why, not the inspect's
    return True


def fixable(net: NetworkDef) -> bool:
    """A bridge network with no pool in the file and the engine's own IPAM driver (a plugin
    may manage its pools elsewhere, or refuse an explicit subnet)."""
    return not net.ipam and net.driver in (None, "bridge") and net.ipam_driver in (None, "default")


def _create_fixed(api: Any, net: NetworkDef, labels: Mapping[str, str]) -> None:
    """Created once for the engine to choose a free subnet (it avoids the host's routes and
    the other networks), then again with that subnet given explicitly. Another process
    that looks the network up in between may see it gone for a moment (one Berth per
    host; `docker compose up` at the same moment is not covered)."""
    _create(api, net, labels, ())
    with translated(f"inspect network {net.name}"):
        doc = api.inspect_network(net.name)
    pools = engine_pools(doc)
    if not pools or doc.get("Containers"):
        return
    try:
        with translated(f"remove network {net.name}"):
            api.remove_network(doc["Id"])
    except ContainerRuntimeError as exc:  # e.g. a socket proxy that denies DELETE
        log.warning("network %s keeps an unfixed subnet: %s", net.name, exc)
        return
    try:
        _create(api, net, labels, pools)
    except ContainerRuntimeError as exc:
        log.warning("network %s: creating it with subnet fixed failed: %s", net.name, exc)
        _create(api, net, labels, ())  # never leave the stack without its network


def engine_pools(doc: Mapping[str, Any]) -> tuple[IpamPool, ...]:
    """The IPv4 pools of an inspected network, as an `ipam.config` would give them."""
    out = []
    for entry in (doc.get("IPAM") or {}).get("Config") or []:
        subnet = entry.get("Subnet") or ""
        if subnet and ":" not in subnet:
            out.append(
                IpamPool(
                    subnet=subnet,
                    ip_range=entry.get("IPRange") or None,
                    gateway=entry.get("Gateway") or None,
                )
            )
    return tuple(out)


def _create(
    api: Any, net: NetworkDef, labels: Mapping[str, str], pools: Sequence[IpamPool]
) -> None:
    ipam = None
    if pools or net.ipam_driver:
        ipam = docker.types.IPAMConfig(
            driver=net.ipam_driver or "default",
            pool_configs=[
                docker.types.IPAMPool(subnet=p.subnet, iprange=p.ip_range, gateway=p.gateway)
                for p in pools
            ],
        )
    with translated(f"create network {net.name}"):
        api.create_network(
            net.name,
            driver=net.driver,
            options=dict(net.driver_opts) or None,
            ipam=ipam,
            internal=net.internal,
            attachable=net.attachable or None,
            labels=dict(labels),
            enable_ipv6=net.enable_ipv6,
            check_duplicate=True,
        )


def ensure_volume(api: Any, vol: VolumeDef, *, project: str) -> None:
    """Like ensure_network; Docker's volume create is idempotent, the inspect is for
    external volumes, which Berth must never create."""
    try:
        with translated(f"inspect volume {vol.name}"):
            api.inspect_volume(vol.name)
        return
    except NotFound:
        if vol.external:
            raise ContainerRuntimeError(
                f"external volume {vol.name!r} does not exist; create it first"
            ) from None
    labels = {
        **dict(vol.labels),
        "com.docker.compose.project": project,
        "com.docker.compose.volume": vol.key,
        LABEL_MANAGED: "true",
    }
    with translated(f"create volume {vol.name}"):
        api.create_volume(
            vol.name,
            driver=vol.driver or "local",
            driver_opts=dict(vol.driver_opts) or None,
            labels=labels,
        )
