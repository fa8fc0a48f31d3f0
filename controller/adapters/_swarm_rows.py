"""Parsing of Swarm service and task documents into Berth's value types (pure, no Docker).

A Berth replica on the Swarm backend is a one-replica service; what Berth calls its
container is the service's current task. Task states map onto container states so the gate,
status and route healing read them unchanged:

| task state | container state | health (with a healthcheck) |
|---|---|---|
| new, pending, assigned, accepted, ready, preparing | created | None |
| the same, after an earlier task (Swarm rescheduling or restarting it) | running | starting |
| starting (Swarm waits for a healthcheck to pass) | running | starting |
| running | running | healthy |
| complete, shutdown, failed, rejected, orphaned, remove | exited | None |

A replica Swarm is bringing back reads as running but starting: the planner leaves it to
Swarm (no replacement of its own), and nothing routes to it until it is healthy and its
probe passes. A service with no task meant to run (scaled to 0 by `stop`) reads as exited.
Tasks that ended before the current one (failed, rejected, or replaced for an unhealthy
check) count as restarts: Swarm restarting a task is what a restart is on one host, and the
gate fails a new replica on it at once. A task Swarm moved off a lost node does not count,
neither while the node is away (it keeps its last state) nor once it is back and reports
the task `shutdown`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.adapters._docker_rows import parse_docker_time
from controller.core.model import (
    LABEL_DIGEST,
    LABEL_MANAGED,
    LABEL_NUMBER,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_TAG,
    ContainerState,
    ObservedContainer,
)
from controller.ports import ContainerStatus

_WAITING = frozenset({"new", "pending", "assigned", "accepted", "ready", "preparing"})
# A task that ended while its service was meant to run: it crashed, could not start, or
# Swarm replaced it for failing its healthcheck (that one exits 0 on the SIGTERM and ends
# `complete`, with no error). Not one of these: a task left behind on a lost node, which
# keeps its last state (`running`), nor the `shutdown` it reports once its node is back
# (Swarm shut it down by its own decision, having rescheduled it; as it does for an
# operator's `service update --force`): the revision did nothing wrong.
_ENDED = frozenset({"failed", "rejected", "complete"})


@dataclass(frozen=True)
class TaskView:
    """The current task of a one-replica service, as Berth reads it."""

    task_id: str
    state: ContainerState
    health: str | None
    exit_code: int | None
    restarts: int
    ips: Mapping[str, str]
    node_id: str
    container_id: str
    started_at: float | None
    error: str


def _current(tasks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The task meant to run (the newest such), else the newest task of all."""

    def key(t: Mapping[str, Any]) -> tuple[int, str]:
        return (int((t.get("Version") or {}).get("Index", 0)), str(t.get("CreatedAt", "")))

    live = [t for t in tasks if t.get("DesiredState") == "running"]
    pool = live or list(tasks)
    return max(pool, key=key) if pool else None


def task_ips(task: Mapping[str, Any]) -> dict[str, str]:
    """Overlay addresses by network name ("10.0.1.5/24" -> "10.0.1.5")."""
    out: dict[str, str] = {}
    for att in task.get("NetworksAttachments") or []:
        name = str(((att.get("Network") or {}).get("Spec") or {}).get("Name", ""))
        for addr in att.get("Addresses") or []:
            if name and name not in out:
                out[name] = str(addr).split("/")[0]
    return out


def _stopped(cur: Mapping[str, Any] | None, restarts: int) -> TaskView:
    """Scaled to 0 (its last task, if any, ended) or never started (no task yet)."""
    status = (cur or {}).get("Status") or {}
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    return TaskView(
        task_id=str((cur or {}).get("ID", "")),
        state=ContainerState.EXITED if cur is not None else ContainerState.CREATED,
        health=None,
        exit_code=int(code) if code is not None else (None if cur is None else 0),
        restarts=restarts,
        ips={},
        node_id=str((cur or {}).get("NodeID", "")),
        container_id=str((status.get("ContainerStatus") or {}).get("ContainerID", "")),
        started_at=None,
        error=str(status.get("Err") or ""),
    )


def task_view(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> TaskView:
    spec = service.get("Spec") or {}
    replicas = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0) or 0)
    has_check = bool(
        (
            ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Healthcheck") or {}
        ).get("Test")
    )
    cur = _current(tasks)
    restarts = sum(
        1 for t in tasks if t is not cur and ((t.get("Status") or {}).get("State") in _ENDED)
    )
    if cur is None or (replicas == 0 and cur.get("DesiredState") != "running"):
        return _stopped(cur, restarts)
    status = cur.get("Status") or {}
    raw = str(status.get("State", ""))
    cstatus = status.get("ContainerStatus") or {}
    health: str | None = None
    if (raw in _WAITING or raw == "starting") and any(t is not cur for t in tasks):
        # Swarm is bringing the replica back (its node was lost, or its task failed): it
        # runs again soon, so it is not drift to replace, and it serves nothing until then
        state, health = ContainerState.RUNNING, "starting"
    elif raw in _WAITING:
        state = ContainerState.CREATED
    elif raw == "starting":
        state, health = ContainerState.RUNNING, ("starting" if has_check else None)
        if not has_check:
            state = ContainerState.CREATED
    elif raw == "running":
        state, health = ContainerState.RUNNING, ("healthy" if has_check else None)
    else:
        state = ContainerState.EXITED
    exit_code = cstatus.get("ExitCode")
    return TaskView(
        task_id=str(cur.get("ID", "")),
        state=state,
        health=health,
        exit_code=int(exit_code)
        if state is ContainerState.EXITED and exit_code is not None
        else (-1 if state is ContainerState.EXITED else None),
        restarts=restarts,
        ips=task_ips(cur) if state is ContainerState.RUNNING else {},
        node_id=str(cur.get("NodeID", "")),
        container_id=str(cstatus.get("ContainerID", "")),
        started_at=parse_docker_time(str(status.get("Timestamp", "")))
        if raw == "running"
        else None,
        error=str(status.get("Err") or ""),
    )


def _number(labels: Mapping[str, str]) -> int:
    try:
        return int(labels.get(LABEL_NUMBER, "0"))
    except ValueError:
        return 0


def observed_from_service(
    service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]
) -> ObservedContainer:
    spec = service.get("Spec") or {}
    labels: Mapping[str, str] = spec.get("Labels") or {}
    image = str(((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", ""))
    view = task_view(service, tasks)
    return ObservedContainer(
        id=str(service.get("ID", "")),
        name=str(spec.get("Name", "")),
        project=labels.get(LABEL_PROJECT, ""),
        service=labels.get(LABEL_SERVICE, ""),
        number=_number(labels),
        revision=labels.get(LABEL_REVISION, ""),
        tag=labels.get(LABEL_TAG, ""),
        image=image,
        state=view.state,
        health=view.health,  # type: ignore[arg-type]
        created=parse_docker_time(str(service.get("CreatedAt", ""))) or 0.0,
        managed=labels.get(LABEL_MANAGED) == "true",
        exit_code=view.exit_code,
        ips=view.ips,
        digest=labels.get(LABEL_DIGEST) or None,
    )


def status_from_service(
    service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]
) -> ContainerStatus:
    view = task_view(service, tasks)
    return ContainerStatus(
        id=str(service.get("ID", "")),
        state=view.state,
        health=view.health,  # type: ignore[arg-type]
        exit_code=view.exit_code,
        restart_count=view.restarts,
        ips=view.ips,
        started_at=view.started_at,
        error=view.error,
    )
