"""The ContainerRuntime port on the Docker Engine API (docker SDK, low-level APIClient).

Every docker/requests exception is translated here, at the edge, so the shell only ever sees
controller.errors types: NotFound, ImagePullError, ContainerRuntimeError, and TemporaryError
for an engine that cannot be reached (the reconciler backs off and retries those).

Engine API 1.41 (Docker 20.10) shapes this module: a container can be created with one
network endpoint only, and endpoint aliases cannot be changed on a live endpoint, so
`add_aliases` has to disconnect and reconnect (see its docstring for the measured cost).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import docker
import docker.errors

from controller.adapters import _docker_api
from controller.adapters._address_lock import NetworkLocks
from controller.adapters._docker_errors import explain, translated
from controller.adapters._docker_files import archive
from controller.adapters._docker_logs import read_tail
from controller.adapters._docker_networks import ensure_network, ensure_volume
from controller.adapters._docker_pull import stream_pull
from controller.adapters._docker_rows import (
    container_rows,
    managed_events,
    observed_from_row,
    processes_from_top,
    service_aliases,
    status_from_inspect,
)
from controller.core.model import (
    InjectedFile,
    NetworkAttachment,
    NetworkDef,
    ObservedContainer,
    VolumeDef,
)
from controller.errors import (
    ContainerRuntimeError,
    ImagePullError,
    NotFound,
)
from controller.ports import ContainerStatus, PullProgress

log = logging.getLogger("berth.docker")

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# Connections kept for reuse (SDK default 10): parallel rollouts call from many threads at
# once, and past the pool's size urllib3 drops each extra one with a warning in Berth's log.
POOL_SIZE = 64
_ADDRESSES = NetworkLocks()  # per network: allocations together, a swap alone
_ATTACHED = ("host", "none", "bridge", "default")


class DockerRuntime:
    """ContainerRuntime on one Docker engine. Thread-safe: the executor shares it between
    rollout threads, and the APIClient's connection pool is thread-safe."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        adopt: frozenset[str] = frozenset(),
    ) -> None:
        """`adopt`: projects whose containers started by `docker compose up` (compose's
        labels, not Berth's) are listed too, as containers of an unknown revision, so the
        next rollout replaces them (`berth adopt`)."""
        self._adopt = adopt
        self._base_url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        self._timeout = timeout
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._net_lock = threading.Lock()
        self._no_fixed_ip: set[str] = set()  # networks that refuse a requested address
        self._nets_of: dict[str, list[str]] = {}  # created, not yet started: its networks

    @property
    def _api(self) -> Any:
        """Connected lazily, so a daemon that starts before Docker does not crash: it gets a
        TemporaryError on first use and retries."""
        with self._lock:
            if self._client is None:
                with translated(f"connect {self._base_url}"):
                    url, timeout = self._base_url, int(self._timeout)
                    self._client = docker.APIClient(
                        base_url=url, version="auto", timeout=timeout, max_pool_size=POOL_SIZE
                    )
            return self._client

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def client(self) -> Any:
        """The APIClient, for the other adapters on the same engine (the image builder)."""
        return self._api

    @property
    def api_version(self) -> str:
        """The Engine API version negotiated with the engine (version="auto")."""
        return str(self._api.api_version)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- observation ----------------------------------------------------------------------

    def list_containers(self, *, project: str | None = None) -> list[ObservedContainer]:
        """All Berth-managed containers (of one project when given), in one list call
        (one more per adopted project)."""
        return [observed_from_row(r) for r in container_rows(self._api, project, self._adopt)]

    def inspect(self, cid: str) -> ContainerStatus:
        with translated(f"inspect {cid}"):
            return status_from_inspect(self._api.inspect_container(cid))

    def aliases_of(self, cid: str) -> dict[str, tuple[str, ...]]:
        """Service aliases per network, as Docker's DNS will answer them (for checks/status)."""
        with translated(f"inspect {cid}"):
            doc = self._api.inspect_container(cid)
        nets = (doc.get("NetworkSettings") or {}).get("Networks") or {}
        return {n: service_aliases(doc, n) for n in nets}

    def image_present(self, ref: str) -> bool:
        try:
            with translated(f"inspect image {ref}"):
                self._api.inspect_image(ref)
        except NotFound:
            return False
        return True

    def events(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Container events of Berth-managed containers. Without `until` this blocks for new
        events; the daemon treats them only as a hint to reconcile (the stream can drop)."""
        return managed_events(self._api, since=since, until=until)

    # -- images, networks, volumes ------------------------------------------------------

    def image_digests(self, ref: str) -> tuple[str, ...] | None:
        try:
            with translated(f"inspect image {ref}"):
                doc = self._api.inspect_image(ref)
        except NotFound:
            return None
        return tuple(str(d) for d in doc.get("RepoDigests") or ())

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """Pulls with an explicit tag (the SDK would otherwise pull every tag of a bare repo).
        Docker reports most pull failures inside the 200 stream, not as an HTTP status.
        Credentials: the docker config is read again first (a `docker login` since start
        counts); its credential helpers run as the SDK resolves the registry's entry."""
        stream_pull(self._api, ref, platform=platform, progress=progress)
        if not self.image_present(ref):
            raise ImagePullError(f"pull {ref}: finished but the image is not present")

    def ensure_network(self, net: NetworkDef, *, project: str) -> None:
        """Creates a missing network with compose's labels (so `docker compose` adopts it);
        an existing one is left as it is, an external one must already exist."""
        with self._net_lock:  # Docker's duplicate-name check is best-effort: serialise
            if ensure_network(self._api, net, project=project):
                self._no_fixed_ip.discard(net.name)  # a new network: ask for addresses again

    def ensure_volume(self, vol: VolumeDef, *, project: str) -> None:
        ensure_volume(self._api, vol, project=project)

    # -- container lifecycle --------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        image: str,
        body: Mapping[str, Any],
        labels: Mapping[str, str],
        networks: Sequence[NetworkAttachment],
        aliases: bool,
        platform: str | None = None,
        constraints: Sequence[str] = (),
    ) -> str:
        """Creates with the first network (API 1.41 takes one endpoint), connects the rest
        before start. Without `aliases` no endpoint carries a service alias, so Docker's DNS
        does not hand the unproven container to clients of the service name. A half-made
        container is removed again so a failed create leaves no orphan. Fields the engine's
        API version does not know are left out (and logged once, see _docker_api)."""
        if constraints:  # the load refuses deploy.placement on the local backend
            raise ContainerRuntimeError(f"create {name}: placement constraints need Swarm")
        config = _docker_api.create_config(
            body,
            image=image,
            labels=labels,
            networks=networks,
            aliases=aliases,
            api_version=self.api_version,
        )
        with translated(f"create {name}"):
            created = self._api.create_container_from_config(config, name=name, platform=platform)
            cid = str(created["Id"])
        try:
            for att in networks[1:]:
                with _ADDRESSES.allocating([att.network]):
                    self._connect(cid, att, aliases=aliases)
        except Exception:
            self.remove(cid)
            raise
        self._nets_of[cid] = [att.network for att in networks]
        return cid

    def _connect(
        self, cid: str, att: NetworkAttachment, *, aliases: bool, ip: str | None = None
    ) -> None:
        ep = _docker_api.endpoint(att, aliases=aliases, api_version=self.api_version, ipv4=ip)
        with translated(f"connect {cid[:12]} to {att.network}"):
            _docker_api.connect(self._api, cid, att.network, ep)

    def _reconnect_keeping_ip(
        self, cid: str, att: NetworkAttachment, old_ip: str, *, aliases: bool = True
    ) -> None:
        """Asks for the old address (only networks with a user-configured subnet allow it,
        which every bridge network Berth creates has, see _docker_networks); elsewhere the
        IPAM's lowest-free allocation hands the same address back unless a lower one is
        free. If the address cannot be had (no such subnet, or another process took it in
        the moment it was free), the container is reconnected anyway, on whatever address
        it gets, and a changed address is logged: connections in flight to it were cut."""
        if att.ipv4_address or not old_ip:
            self._connect(cid, att, aliases=aliases)
            return
        why = "the network has no user-configured subnet (recreate it with an `ipam` subnet)"
        if att.network not in self._no_fixed_ip:
            try:
                self._connect(cid, att, aliases=aliases, ip=old_ip)
                return
            except NotFound:
                raise
            except ContainerRuntimeError as exc:
                if "user configured subnets" in str(exc):
                    self._no_fixed_ip.add(att.network)  # don't ask again (~50 ms each)
                else:
                    why = f"its address could not be had again: {exc}"
        self._connect(cid, att, aliases=aliases)
        with translated(f"inspect {cid[:12]}"):
            new_ip = status_from_inspect(self._api.inspect_container(cid)).ips.get(att.network)
        if new_ip != old_ip:
            log.warning(
                "container %s came back on network %s as %s (was %s): connections in flight "
                "to it were cut; %s (see docs/operations.md, known limitations)",
                cid[:12],
                att.network,
                new_ip,
                old_ip,
                why,
            )

    def put_files(self, cid: str, files: Sequence[InjectedFile]) -> None:
        """One `PUT /containers/{id}/archive` at `/` with every file (see _docker_files).
        The error names the container and the targets, never a file's content."""
        if not files:
            return
        data = archive(files)
        targets = ", ".join(f.target for f in files)
        with translated(f"write {targets} into {cid[:12]}"):
            self._api.put_archive(cid, "/", data)

    def rename(self, cid: str, name: str) -> None:
        with translated(f"rename {cid[:12]} to {name}"):
            self._api.rename(cid, name)

    def start(self, cid: str) -> None:
        nets = self._nets_of.pop(cid, None)
        if nets is None:  # not created by this process (a stop-first rollback restarts one)
            with translated(f"inspect {cid[:12]}"):
                doc = self._api.inspect_container(cid)
            nets = list((doc.get("NetworkSettings") or {}).get("Networks") or {})
        with _ADDRESSES.allocating(nets), translated(f"start {cid[:12]}"):
            self._api.start(cid)

    def stop(self, cid: str, *, timeout: float | None = None) -> None:
        """The engine sends the container's own StopSignal, then SIGKILL after `timeout`
        (whole seconds in API 1.41, rounded up so a grace period is never shortened).
        Without `timeout`, the container's own StopTimeout (the stop_grace_period of the
        revision that created it), passed explicitly so the HTTP timeout covers it."""
        with translated(f"stop {cid[:12]}"):
            if timeout is None:
                own = self._api.inspect_container(cid).get("Config", {}).get("StopTimeout")
                timeout = float(own) if own is not None else 10.0
            self._api.stop(cid, timeout=max(0, math.ceil(timeout)))

    def remove(self, cid: str) -> None:
        """Force-remove; gone (or already being removed) counts as done, so retries after a
        crash are harmless."""
        try:
            with translated(f"remove {cid[:12]}"):
                self._api.remove_container(cid, force=True)
        except NotFound:
            return
        except ContainerRuntimeError as exc:
            if "already in progress" not in str(exc):
                raise

    def retire(self, cid: str) -> None:
        try:
            self.stop(cid)  # its own grace period (the revision that created it)
        except NotFound:
            return
        self.remove(cid)

    def kill(self, cid: str, signal: str) -> None:
        with translated(f"kill -{signal} {cid[:12]}"):
            self._api.kill(cid, signal=signal)

    def processes(self, cid: str) -> list[tuple[int, str]]:
        """`docker top` (host PIDs): lets the proxy adapter see nginx's old workers exit."""
        with translated(f"top {cid[:12]}"):
            return processes_from_top(self._api.top(cid, ps_args="-eo pid,args"))

    def logs(self, cid: str, *, tail: int) -> list[str]:
        """The last `tail` lines of the container's output (bounded: _docker_logs.py)."""
        with translated(f"logs of {cid[:12]}"):
            return read_tail(self._api, cid, tail)

    def exec(self, cid: str, cmd: Sequence[str]) -> tuple[int, str]:
        with translated(f"exec in {cid[:12]}"):
            ex = self._api.exec_create(cid, list(cmd), stdout=True, stderr=True)
            out = self._api.exec_start(ex["Id"], demux=False)
            code = self._api.exec_inspect(ex["Id"]).get("ExitCode")
        text = out.decode(errors="replace") if isinstance(out, bytes) else str(out or "")
        return (int(code) if code is not None else -1), text

    def add_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        """Engine API 1.41 cannot change aliases of a live endpoint, so each network with
        aliases is disconnected and reconnected with them. The container keeps its IP when
        the network lets Berth ask for it (user-configured subnet) or the IPAM hands the
        freed address back; it is briefly off that network either way (see the report in
        tests/integration/test_contract_runtime.py), so call this before the cut-over, and
        re-read IPs with `inspect` afterwards."""
        for att in networks:
            if not att.aliases or att.network in _ATTACHED:
                continue
            with translated(f"inspect {cid[:12]}"):
                doc = self._api.inspect_container(cid)
            if set(att.aliases) <= set(service_aliases(doc, att.network)):
                continue  # already done (e.g. the controller restarted mid-way)
            old_ip = status_from_inspect(doc).ips.get(att.network, "")
            self._swap_endpoint(cid, att, old_ip, aliases=True)

    def network_members(self, network: str) -> list[str]:
        try:
            with translated(f"inspect network {network}"):
                doc = self._api.inspect_network(network)
        except NotFound:
            return []
        return sorted((doc.get("Containers") or {}).keys())

    def drop_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        """The reverse of add_aliases, before a container is retired: once it stops being
        resolvable under the service name, internal clients stop picking it; it keeps its
        network access (reconnected without aliases) for a graceful shutdown."""
        for att in networks:
            if not att.aliases or att.network in _ATTACHED:
                continue
            with translated(f"inspect {cid[:12]}"):
                doc = self._api.inspect_container(cid)
            if not set(att.aliases) & set(service_aliases(doc, att.network)):
                continue
            old_ip = status_from_inspect(doc).ips.get(att.network, "")
            self._swap_endpoint(cid, att, old_ip, aliases=False)

    def _swap_endpoint(
        self, cid: str, att: NetworkAttachment, old_ip: str, *, aliases: bool
    ) -> None:
        """Disconnect and reconnect one endpoint, alone on its network: no start or connect
        there can take the freed address (see _address_lock)."""
        with _ADDRESSES.exclusive(att.network):
            with translated(f"disconnect {cid[:12]} from {att.network}"):
                try:
                    self._api.disconnect_container_from_network(cid, att.network)
                except docker.errors.APIError as exc:
                    if "is not connected" not in explain(exc):
                        raise
            self._reconnect_keeping_ip(cid, att, old_ip, aliases=aliases)
