"""ContainerRuntime on a Docker Swarm manager: each Berth replica is a one-replica service.

Swarm places each replica's task, restarts it, and reschedules it when its node is lost;
Berth creates, gates, routes and retires replicas exactly as on one host (docs/swarm.md).
The mapping, operation by operation:

- create: a service with 0 replicas (nothing runs yet), endpoint mode dnsrr, its networks'
  aliases set (Swarm lists a task in DNS once it runs, i.e. after its own healthcheck);
  start: scale it to 1; stop: scale it to 0 with the grace period asked, and wait until
  the task is down; remove: remove the service.
- pull: the manager resolves the tag at the registry (`GET /distribution/NAME/json`, the
  check `docker service create` makes), and the service then names the image by digest, so
  every node runs the same bits; the nodes pull when their task starts. A registry that
  is down or refuses is an ImagePullError before anything is touched, as on one host.
- exec, kill, processes: through the engine of the node that runs the task, which must be
  the engine Berth talks to (`--docker-host`). Only the edge nginx needs them, and the
  wiring pins it there. logs: the service logs API, from any node.
- networks are attachable overlays; volumes are created by Swarm on the node a task lands
  on, so ensure_volume creates nothing.
- aliases cannot change on a running task (a service update restarts it): add_aliases and
  drop_aliases do nothing; a replica leaves DNS when its task stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import docker
import docker.auth

from controller.adapters._docker_errors import translated
from controller.adapters._swarm_networks import ensure_overlay, overlay_members
from controller.adapters._swarm_rows import (
    observed_from_service,
    status_from_service,
    task_view,
)
from controller.adapters.docker_runtime import DockerRuntime
from controller.core.model import (
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_SERVICE,
    InjectedFile,
    NetworkAttachment,
    NetworkDef,
    ObservedContainer,
    VolumeDef,
)
from controller.core.swarm_spec import SwarmSpecError, service_spec
from controller.errors import ContainerRuntimeError, ImagePullError, NotFound, TemporaryError
from controller.ports import ContainerStatus, PullProgress

log = logging.getLogger("berth.swarm")
SWARM_API = "1.41"
_POLL = 0.1
LEADERLESS_S = 60.0  # how long calls are tried again while the swarm has no leader
_BUSY = (
    "deadline exceeded",
    "does not have a leader",
    "no leader",
    "rpc error: code = unavailable",
)
RESOLVED_TTL = 60.0  # seconds a registry's confirmation of a tag counts as "present"


def _manager_busy(exc: Exception) -> bool:
    """The manager could not answer now (no connection, or no raft leader), as opposed to
    refusing the request."""
    if isinstance(exc, TemporaryError):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _BUSY)


class SwarmRuntime:
    """Thread-safe as DockerRuntime is (the executor shares it between rollout threads)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        pinned: Collection[tuple[str, str]] = (),
    ) -> None:
        """`pinned`: (project, service) pairs whose replicas must run on the node Berth
        talks to (the edge nginx: Berth signals it and shares its upstreams directory)."""
        self.local = DockerRuntime(base_url, timeout=timeout)
        self._pinned = frozenset(pinned)
        self._digests: dict[str, str] = {}  # tag reference -> digest the registry gave
        self._resolved_at: dict[str, float] = {}  # reference -> when the registry confirmed it
        self._lock = threading.Lock()
        self._node_id: str | None = None

    @property
    def _api(self) -> Any:
        return self.local.client

    @property
    def client(self) -> Any:
        return self._api

    @property
    def api_version(self) -> str:
        return self.local.api_version

    def close(self) -> None:
        self.local.close()

    def node_id(self) -> str:
        """The id of the node whose engine Berth talks to; it must be a manager."""
        with self._lock:
            if self._node_id is None:
                with translated("info"):
                    info = self._api.info()
                swarm = info.get("Swarm") or {}
                if not swarm.get("ControlAvailable"):
                    raise ContainerRuntimeError(
                        f"the Docker engine at {self.local.base_url} is not a Swarm manager "
                        f"(swarm state {swarm.get('LocalNodeState') or 'inactive'}): the "
                        "swarm backend needs --docker-host to name a manager"
                    )
                self._node_id = str(swarm.get("NodeID", ""))
            return self._node_id

    # -- observation ----------------------------------------------------------------------

    def _read(self, what: str, call: Callable[[], Any]) -> Any:
        """A call that is safe to repeat (a read, a versioned update, a removal), tried again
        while the manager cannot answer: a dropped pooled connection, or no raft leader
        for a moment (an election takes seconds: "context deadline exceeded", "does not
        have a leader"). Other errors, and one that outlasts LEADERLESS_S, propagate."""
        deadline = time.monotonic() + LEADERLESS_S
        attempt = 0
        while True:
            try:
                with translated(what):
                    return call()
            except (TemporaryError, ContainerRuntimeError) as exc:
                if isinstance(exc, NotFound) or not _manager_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
                attempt += 1
                log.warning("%s: the manager did not answer (%s); again", what, exc)
                time.sleep(min(0.2 * attempt, 2.0))

    def _services(self, project: str | None) -> list[dict[str, Any]]:
        wanted = [f"{LABEL_MANAGED}=true"]
        if project is not None:
            wanted.append(f"{LABEL_PROJECT}={project}")
        rows = self._read("list services", lambda: self._api.services(filters={"label": wanted}))
        return list(rows)

    def _tasks(self, service_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {sid: [] for sid in service_ids}
        if not service_ids:
            return out
        rows = self._read(
            "list tasks", lambda: self._api.tasks(filters={"service": list(service_ids)})
        )
        for t in rows:
            sid = str(t.get("ServiceID", ""))
            if sid in out:
                out[sid].append(t)
        return out

    def list_containers(self, *, project: str | None = None) -> list[ObservedContainer]:
        """Two calls: the services, then every task of them."""
        services = self._services(project)
        tasks = self._tasks([str(s["ID"]) for s in services])
        return [observed_from_service(s, tasks[str(s["ID"])]) for s in services]

    def _service(self, cid: str) -> dict[str, Any]:
        return dict(
            self._read(f"inspect service {cid[:12]}", lambda: self._api.inspect_service(cid))
        )

    def inspect(self, cid: str) -> ContainerStatus:
        svc = self._service(cid)
        return status_from_service(svc, self._tasks([str(svc["ID"])])[str(svc["ID"])])

    def image_present(self, ref: str) -> bool:
        """Images live on the nodes, which pull when a task starts: "present" means the
        registry confirmed the tag within the last RESOLVED_TTL seconds (so a registry
        that lost it is an ImagePullError before a rollout, not a failed gate)."""
        with self._lock:
            at = self._resolved_at.get(ref)
        return at is not None and time.monotonic() - at < RESOLVED_TTL

    def image_digests(self, ref: str) -> tuple[str, ...] | None:
        return None

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """The manager asks the registry for the tag's digest (with the docker config's
        credentials); the nodes pull when their tasks start."""
        try:
            with translated(f"resolve {ref} at its registry"):
                doc = self._api.inspect_distribution(ref, auth_config=self._auth(ref))
        except ContainerRuntimeError as exc:
            raise ImagePullError(f"pull {ref}: {exc}", retry=exc.retry) from exc
        digest = str((doc.get("Descriptor") or {}).get("digest", ""))
        with self._lock:
            self._resolved_at[ref] = time.monotonic()
            if digest:
                self._digests[ref] = digest

    def _auth(self, ref: str) -> dict[str, Any] | None:
        repo, _ = docker.auth.split_repo_name(ref.split("@")[0].rsplit(":", 1)[0])
        cfg = docker.auth.load_config()
        found = docker.auth.resolve_authconfig(cfg, repo)
        return dict(found) if found else None

    def _pinned_ref(self, ref: str) -> str:
        if "@" in ref:
            return ref
        with self._lock:
            digest = self._digests.get(ref)
        return f"{ref}@{digest}" if digest else ref

    def ensure_network(self, net: NetworkDef, *, project: str) -> None:
        """An attachable overlay with compose's labels; an existing one is left as it is."""
        ensure_overlay(self._api, net, project=project)

    def ensure_volume(self, vol: VolumeDef, *, project: str) -> None:
        """Swarm creates a named volume on the node a task lands on (volumes are per node)."""

    # -- lifecycle --------------------------------------------------------------------------

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
        pin = (labels.get(LABEL_PROJECT, ""), labels.get(LABEL_SERVICE, "")) in self._pinned
        constraints = [*constraints, *([f"node.id=={self.node_id()}"] if pin else [])]
        try:
            spec = service_spec(
                name=name,
                image=self._pinned_ref(image),
                body=body,
                labels=labels,
                networks=networks,
                replicas=0,
                constraints=constraints,
                platform=platform,
            )
        except SwarmSpecError as exc:
            raise ContainerRuntimeError(f"create {name}: {exc}", retry=None) from exc
        headers: dict[str, str] = {}
        auth = self._auth(image)
        if auth:
            headers = {"X-Registry-Auth": docker.auth.encode_header(auth).decode()}
        with translated(f"create service {spec['Name']}"):
            res = self._api._post_json(
                self._api._url("/services/create"), data=spec, headers=headers
            )
            out = self._api._result(res, True)
        return str(out["ID"])

    def put_files(self, cid: str, files: Sequence[InjectedFile]) -> None:
        if files:
            raise ContainerRuntimeError(
                "secrets and configs without a host file are not supported on the swarm backend"
            )

    def rename(self, cid: str, name: str) -> None:
        raise ContainerRuntimeError("a Swarm service cannot be renamed (container_name)")

    def _scale(self, cid: str, replicas: int, *, grace: float | None = None) -> None:
        for _ in range(5):  # an update races with Swarm's own writes: retry on a stale version
            svc = self._service(cid)
            spec = dict(svc["Spec"])
            spec["Mode"] = {"Replicated": {"Replicas": replicas}}
            if grace is not None:
                task = dict(spec.get("TaskTemplate") or {})
                container = dict(task.get("ContainerSpec") or {})
                container["StopGracePeriod"] = int(grace * 1e9)
                task["ContainerSpec"] = container
                spec["TaskTemplate"] = task
            version = int(svc["Version"]["Index"])

            def update(spec: dict[str, Any] = spec, version: int = version) -> None:
                res = self._api._post_json(
                    self._api._url("/services/{0}/update", cid),
                    data=spec,
                    params={"version": version},
                )
                self._api._raise_for_status(res)

            try:
                self._read(f"scale service {cid[:12]} to {replicas}", update)
                return
            except NotFound:
                raise
            except ContainerRuntimeError as exc:
                if "update out of sequence" not in str(exc):
                    raise
        raise ContainerRuntimeError(f"scale service {cid[:12]}: kept losing the update race")

    def start(self, cid: str) -> None:
        self._scale(cid, 1)

    def stop(self, cid: str, *, timeout: float | None = None) -> None:
        """Scale to 0 (with `timeout` as the task's grace period when given) and wait until
        the task is down: the grace period plus 10 s at most."""
        svc = self._service(cid)
        own = ((svc["Spec"].get("TaskTemplate") or {}).get("ContainerSpec") or {}).get(
            "StopGracePeriod"
        )
        grace = timeout if timeout is not None else (own / 1e9 if own else 10.0)
        self._scale(cid, 0, grace=timeout)
        deadline = time.monotonic() + grace + 10.0
        while time.monotonic() < deadline:
            tasks = self._tasks([cid])[cid]
            up = [
                t
                for t in tasks
                if (t.get("Status") or {}).get("State") in ("running", "starting", "preparing")
            ]
            if not up or not (self._ready_nodes() & {str(t.get("NodeID", "")) for t in up}):
                return  # down, or on a node the manager lost (it cannot confirm a stop there)
            time.sleep(_POLL)
        log.warning("service %s: its task was still up %.0fs after the stop", cid[:12], grace + 10)

    def retire(self, cid: str) -> None:
        """Remove the service: Swarm stops its task with the stop signal and the grace
        period of its spec, as `docker service rm` does, without Berth waiting for it (the
        replica is out of nginx and drained already). A stop first would only add the wait
        for the manager to see the task down (1-4 s a replica, measured)."""
        self.remove(cid)

    def _ready_nodes(self) -> set[str]:
        nodes = self._read("list nodes", lambda: self._api.nodes())
        return {str(n["ID"]) for n in nodes if (n.get("Status") or {}).get("State") == "ready"}

    def remove(self, cid: str) -> None:
        try:
            self._read(f"remove service {cid[:12]}", lambda: self._api.remove_service(cid))
        except NotFound:
            return

    # -- the task's container, through the engine Berth talks to -----------------------------

    def _container(self, cid: str) -> str:
        svc = self._service(cid)
        view = task_view(svc, self._tasks([str(svc["ID"])])[str(svc["ID"])])
        if not view.container_id:
            raise NotFound(f"service {cid[:12]} has no running task")
        if view.node_id != self.node_id():
            raise ContainerRuntimeError(
                f"service {svc['Spec'].get('Name', cid[:12])} runs on node {view.node_id[:12]}; "
                "Berth reaches only the containers of the node it talks to (--docker-host)"
            )
        return view.container_id

    def kill(self, cid: str, signal: str) -> None:
        self.local.kill(self._container(cid), signal)

    def processes(self, cid: str) -> list[tuple[int, str]]:
        return self.local.processes(self._container(cid))

    def exec(self, cid: str, cmd: Sequence[str]) -> tuple[int, str]:
        return self.local.exec(self._container(cid), cmd)

    def logs(self, cid: str, *, tail: int) -> list[str]:
        """The service's logs (any node's task), newest `tail` lines, oldest first."""
        with translated(f"logs of service {cid[:12]}"):
            raw = self._api.service_logs(cid, stdout=True, stderr=True, tail=tail, follow=False)
            data = b"".join(raw) if not isinstance(raw, bytes) else raw
        lines = data.decode(errors="replace").splitlines()
        return lines[-tail:] if tail > 0 else []

    # -- DNS ----------------------------------------------------------------------------------

    def add_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        """Set at create (see the module's docstring)."""

    def drop_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        """A replica leaves DNS when its task stops."""

    def network_members(self, network: str) -> list[str]:
        """The services attached to an overlay (the DNS gate's question)."""
        return overlay_members(self._api, network)
