"""A real multi-node Docker Swarm on one machine, for tests and benchmarks.

Each node is a docker-in-docker container of `berth-test/swarm-node:bookworm`
(tests/support/swarm_node.py) on one user-defined bridge network; its dockerd answers the
Engine API on `tcp://NODE_IP:2375`, which the host reaches directly, so the swarm is
driven exactly as an operator's tools drive a remote manager: with the Docker SDK.

Flags that work on this kernel (DESIGN §9): `--privileged` does not (the bounding set lacks
CAP_SYS_RESOURCE), so nodes get every other capability, unconfined seccomp, apparmor and
system paths, and all devices; `/var/lib/docker` is a named volume (overlay2 on the node's
own overlay root fails); `/run` is a tmpfs. The kernel has no IPVS, so services must use
endpoint mode `dnsrr` and `mode=host` published ports: VIPs and the routing mesh fail.

Images reach the nodes through a registry on the same network: Debian's docker-registry
running from the node image, plain HTTP, trusted by every node with `--insecure-registry`.
The host pushes to it through a port published on 127.0.0.1 (which the host engine treats
as insecure by default), the nodes pull it as `REGISTRY_IP:5000/REPO:TAG`.

Everything created carries the label `berth.test.swarm=<swarm id>` (containers, volumes,
the network) and `berth.test.swarm.owner=<host>:<pid>`, so `remove_swarm` removes a
half-created swarm and `remove_stale_swarms` what a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import docker.types

from tests.support.swarm_node import (
    DOCKER_PORT,
    NODE_IMAGE,
    REGISTRY_PORT,
    REGISTRY_STORAGE,
    ensure_node_image,
)

SWARM_LABEL = "berth.test.swarm"
OWNER_LABEL = "berth.test.swarm.owner"
ROLE_LABEL = "berth.test.swarm.role"
NODE_SECURITY = ["seccomp=unconfined", "apparmor=unconfined"]  # + systempaths, see _start_node
_T = TypeVar("_T")
# Each test swarm's bring-up ({module, shape, timings, rss}), printed in the terminal
# summary (tests/conftest.py); under pytest-xdist a worker hands its list to the controller.
BRING_UPS: list[dict[str, Any]] = []


def wait_for(
    check: Callable[[], _T | None], *, timeout: float, what: str, interval: float = 0.2
) -> _T:
    """Poll `check` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except (docker.errors.DockerException, OSError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"{what}: not within {timeout:.0f} s{detail}")
        time.sleep(interval)


@dataclass
class Node:
    """One docker-in-docker node. `client` talks to the dockerd inside it."""

    name: str
    role: str  # "manager" or "worker"
    container_id: str
    ip: str
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker.DockerClient(
                base_url=f"tcp://{self.ip}:{DOCKER_PORT}", timeout=60
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


@dataclass
class Swarm:
    """A running test swarm. `manager` is the first manager (the one that ran `init`)."""

    id: str
    host: Any  # the host engine's DockerClient
    network: str
    subnet: str
    nodes: list[Node]
    registry_ip: str = ""
    registry_host_port: int = 0
    shared: str = ""  # a host directory every node mounts at the same path ("" if none)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def managers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "manager"]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "worker"]

    @property
    def manager(self) -> Node:
        return self.managers[0]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def registry(self) -> str:
        """The registry as the nodes see it: `IP:5000`."""
        return f"{self.registry_ip}:{REGISTRY_PORT}"

    def push(self, local: str, repo: str | None = None, tag: str | None = None) -> str:
        """Push a host image into the swarm's registry; returns the ref the nodes pull."""
        name, _, local_tag = local.rpartition(":")
        repo = repo or name
        tag = tag or local_tag
        via = f"127.0.0.1:{self.registry_host_port}/{repo}"
        self.host.images.get(local).tag(via, tag=tag)
        try:
            for chunk in self.host.api.push(via, tag=tag, stream=True, decode=True):
                if chunk.get("error"):
                    raise RuntimeError(f"push of {local} failed: {chunk['error']}")
        finally:
            with contextlib.suppress(docker.errors.APIError):
                self.host.images.remove(f"{via}:{tag}", noprune=True)
        return f"{self.registry}/{repo}:{tag}"

    def node_states(self, via: Node | None = None) -> dict[str, str]:
        """hostname -> Swarm node state ("ready", "down", ...) as a manager sees it."""
        api = (via or self.manager).client
        return {
            n.attrs["Description"]["Hostname"]: n.attrs["Status"]["State"] for n in api.nodes.list()
        }

    def wait_states(
        self, want: dict[str, str], *, timeout: float = 60, via: Node | None = None
    ) -> None:
        """Wait until every named node has the wanted state."""

        def check() -> bool:
            states = self.node_states(via)
            return all(states.get(name) == state for name, state in want.items())

        wait_for(check, timeout=timeout, what=f"swarm nodes {want}", interval=0.25)

    # ------------------------------------------------------------------ faults

    def _container(self, node: Node) -> Any:
        return self.host.containers.get(node.container_id)

    def kill_node(self, node: Node) -> None:
        """SIGKILL the node's container: its dockerd and every task on it die at once."""
        node.close()
        self._container(node).kill()

    def pause_node(self, node: Node) -> None:
        """Freeze every process of the node (cgroup freezer): it stops answering."""
        self._container(node).pause()

    def unpause_node(self, node: Node) -> None:
        self._container(node).unpause()

    def disconnect_node(self, node: Node) -> None:
        """Cut the node off the network; its processes keep running."""
        self.host.networks.get(self.network).disconnect(node.container_id, force=True)

    def connect_node(self, node: Node) -> None:
        """Reattach a disconnected node with its old address (the swarm advertises it)."""
        self.host.networks.get(self.network).connect(node.container_id, ipv4_address=node.ip)

    # ------------------------------------------------------------------ costs

    def rss_bytes(self) -> int:
        """Resident memory of every process in the nodes and the registry, from /proc."""
        total = 0
        selector = {"label": f"{SWARM_LABEL}={self.id}", "status": "running"}
        for c in self.host.containers.list(filters=selector):
            procs = c.top(ps_args="-eo pid").get("Processes") or []
            for row in procs:
                total += _vm_rss(int(row[0]))
        return total

    def teardown(self) -> None:
        for n in self.nodes:
            n.close()
        remove_swarm(self.host, self.id)


def _vm_rss(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------- cleanup


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def remove_swarm(api: Any, swarm_id: str) -> None:
    """Force-remove the containers, network and volumes of one swarm. Idempotent."""
    selector = {"label": f"{SWARM_LABEL}={swarm_id}"}
    for c in api.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            if c.status == "paused":
                c.unpause()
            c.remove(force=True, v=True)
    for _ in range(20):
        nets = api.networks.list(filters=selector)
        if not nets:
            break
        for n in nets:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                n.remove()
        time.sleep(0.25)
    for v in api.volumes.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            v.remove(force=True)


def remove_stale_swarms(api: Any) -> list[str]:
    """Remove swarms whose creating process (on this host) is gone; returns their ids."""
    here = socket.gethostname()
    stale: set[str] = set()
    for c in api.containers.list(all=True, filters={"label": SWARM_LABEL}):
        host, _, pid = str(c.labels.get(OWNER_LABEL, "")).rpartition(":")
        if host == here and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.add(c.labels[SWARM_LABEL])
    for v in api.volumes.list(filters={"label": SWARM_LABEL}):
        labels = v.attrs.get("Labels") or {}
        host, _, pid = str(labels.get(OWNER_LABEL, "")).rpartition(":")
        if host == here and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.add(labels[SWARM_LABEL])
    for swarm_id in sorted(stale):
        remove_swarm(api, swarm_id)
    return sorted(stale)


# ---------------------------------------------------------------------- bring-up


def _random_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "bsw" + "".join(secrets.choice(alphabet) for _ in range(6))


def _create_network(api: Any, name: str, labels: dict[str, str]) -> tuple[Any, str]:
    """A bridge network with an explicit /24 (reconnecting a node keeps its address only
    on a network with a configured subnet); tries free subnets of 10.213.0.0/16."""
    taken: set[ipaddress.IPv4Network] = set()
    for net in api.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError):
                taken.add(ipaddress.IPv4Network(cfg["Subnet"]))
    candidates = list(ipaddress.IPv4Network("10.213.0.0/16").subnets(new_prefix=24))
    offset = secrets.randbelow(len(candidates))
    for i in range(len(candidates)):
        subnet = candidates[(offset + i) % len(candidates)]
        if any(subnet.overlaps(t) for t in taken):
            continue
        pool = docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))
        try:
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
            net = api.networks.create(name, driver="bridge", labels=labels, ipam=ipam)
        except docker.errors.APIError as exc:
            if "overlap" in str(exc).lower():
                continue
            raise
        return net, str(subnet)
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the test swarm's network")


def _ip_of(api: Any, container_id: str, network: str) -> str:
    c = api.containers.get(container_id)
    return str(c.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def _start_registry(
    api: Any, swarm: Swarm, labels: dict[str, str], storage: str | None = None
) -> None:
    volumes = {storage: {"bind": REGISTRY_STORAGE, "mode": "rw"}} if storage else None
    c = api.containers.run(
        NODE_IMAGE,
        entrypoint=["/usr/local/bin/docker-registry"],
        command=["serve", "/etc/docker/registry/config.yml"],
        name=f"{swarm.id}-registry",
        hostname="registry",
        network=swarm.network,
        ports={f"{REGISTRY_PORT}/tcp": ("127.0.0.1", None)},
        labels={**labels, ROLE_LABEL: "registry"},
        volumes=volumes,
        detach=True,
    )
    c.reload()
    swarm.registry_ip = _ip_of(api, c.id, swarm.network)
    bound = c.attrs["NetworkSettings"]["Ports"][f"{REGISTRY_PORT}/tcp"][0]
    swarm.registry_host_port = int(bound["HostPort"])


def _start_node(
    api: Any,
    swarm: Swarm,
    name: str,
    role: str,
    labels: dict[str, str],
    shared: str | None = None,
) -> Node:
    node_labels = {**labels, ROLE_LABEL: role}
    volume = api.volumes.create(name=f"{name}-docker", labels=node_labels)
    low = api.api
    binds = {volume.name: {"bind": "/var/lib/docker", "mode": "rw"}}
    if shared:  # the same path on the host and on the node (a "node's host" directory)
        binds[shared] = {"bind": shared, "mode": "rw"}
    host_config = low.create_host_config(
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=NODE_SECURITY,
        device_cgroup_rules=["a *:* rwm"],
        binds=binds,
        tmpfs={"/run": ""},
        network_mode=swarm.network,
    )
    # The CLI's `--security-opt systempaths=unconfined` is these two empty lists in the API.
    host_config["MaskedPaths"] = []
    host_config["ReadonlyPaths"] = []
    created = low.create_container(
        NODE_IMAGE,
        command=["--insecure-registry", swarm.registry],
        name=name,
        hostname=name,
        labels=node_labels,
        host_config=host_config,
    )
    low.start(created["Id"])
    c = api.containers.get(created["Id"])
    node = Node(name=name, role=role, container_id=c.id, ip=_ip_of(api, c.id, swarm.network))
    swarm.nodes.append(node)
    return node


def _wait_engine(api: Any, node: Node, timeout: float) -> None:
    def check() -> bool:
        c = api.containers.get(node.container_id)
        if c.status == "exited":
            logs = c.logs(tail=30).decode(errors="replace")
            raise RuntimeError(f"swarm node {node.name} exited:\n{logs}")
        return bool(node.client.ping())

    wait_for(check, timeout=timeout, what=f"dockerd of {node.name}", interval=0.1)


def _form_swarm(swarm: Swarm, *, timeout: float, heartbeat: float | None = None) -> None:
    """`swarm init` on the first manager, `join` on the others, until all are Ready.
    `heartbeat`: the dispatcher heartbeat period in seconds (Swarm's default 5 s declares a
    lost node down after ~15 s; `docker swarm update --dispatcher-heartbeat` sets it)."""
    first = swarm.manager
    extra = {} if heartbeat is None else {"dispatcher_heartbeat_period": int(heartbeat * 1e9)}
    first.client.swarm.init(advertise_addr=first.ip, listen_addr="0.0.0.0:2377", **extra)
    first.client.swarm.reload()
    tokens = first.client.swarm.attrs["JoinTokens"]
    for node in swarm.nodes[1:]:
        node.client.swarm.join(
            remote_addrs=[f"{first.ip}:2377"],
            join_token=tokens["Manager" if node.role == "manager" else "Worker"],
            advertise_addr=node.ip,
            listen_addr="0.0.0.0:2377",
        )
    swarm.wait_states({n.name: "ready" for n in swarm.nodes}, timeout=timeout)


def start_swarm(
    *,
    managers: int = 1,
    workers: int = 2,
    client: Any | None = None,
    timeout: float = 90,
    shared: str | None = None,
    heartbeat: float | None = None,
    registry_storage: str | None = None,
) -> Swarm:
    """Bring up a swarm of `managers` + `workers` nodes and its registry. `shared`: a host
    directory every node sees at the same path (Berth's upstreams directory, which the edge
    nginx on a node mounts, lives there in the tests). `registry_storage`: a host directory
    for the registry's blobs, kept by the caller; a later swarm given the same directory
    already holds what an earlier one was pushed, so pushing it again only checks the
    layers (the nginx image's 195 MB took ~20 s to push, most of it compressing).

    On any failure everything created so far is removed before the error propagates.
    `timings` records seconds spent on the node image check/build and on the bring-up.
    """
    if managers < 1 or workers < 0:
        raise ValueError("a swarm needs at least one manager")
    api = client if client is not None else docker.from_env(timeout=300)
    t0 = time.monotonic()
    ensure_node_image(client=api)
    t1 = time.monotonic()
    swarm_id = _random_id()
    labels = {SWARM_LABEL: swarm_id, OWNER_LABEL: _owner()}
    _, subnet = _create_network(api, swarm_id, labels)
    swarm = Swarm(id=swarm_id, host=api, network=swarm_id, subnet=subnet, nodes=[])
    try:
        _start_registry(api, swarm, labels, registry_storage)
        roles = ["manager"] * managers + ["worker"] * workers
        counters = {"manager": 0, "worker": 0}
        for role in roles:
            counters[role] += 1
            _start_node(api, swarm, f"{swarm_id}-{role[0]}{counters[role]}", role, labels, shared)
        for node in swarm.nodes:
            _wait_engine(api, node, timeout)
        t2 = time.monotonic()
        _form_swarm(swarm, timeout=timeout, heartbeat=heartbeat)
    except BaseException:
        swarm.teardown()
        raise
    swarm.timings = {
        "node_image": t1 - t0,
        "engines": t2 - t1,
        "swarm": time.monotonic() - t2,
        "bring_up": time.monotonic() - t1,
    }
    return swarm
