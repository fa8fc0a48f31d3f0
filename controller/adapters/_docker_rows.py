"""Parsing of Docker Engine API documents into Berth's value types.

Kept apart from the adapter so the parsing (the part most likely to meet surprising input:
status texts, zero timestamps, half-attached networks) is pure and testable without Docker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

from docker.utils import parse_repository_tag

from controller.adapters._docker_errors import translated
from controller.core.model import (
    LABEL_DIGEST,
    LABEL_MANAGED,
    LABEL_NUMBER,
    LABEL_ONEOFF,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_TAG,
    ContainerState,
    ObservedContainer,
)
from controller.ports import ContainerStatus

Health = Literal["starting", "healthy", "unhealthy"]

_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_IN_STATUS = re.compile(r"^Exited \((-?\d+)\)")
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def health_from_status(status: str) -> Health | None:
    """The list endpoint only reports health inside the human `Status` text."""
    m = _HEALTH_IN_STATUS.search(status)
    if m is None:
        return None
    word = m.group(1)
    if word == "health: starting":
        return "starting"
    return "healthy" if word == "healthy" else "unhealthy"


def exit_code_from_status(status: str) -> int | None:
    """`Exited (137) 3 seconds ago` is the only place a list row carries the exit code."""
    m = _EXIT_IN_STATUS.match(status)
    return int(m.group(1)) if m else None


def parse_state(raw: str) -> ContainerState:
    """Unknown future states read as DEAD so the planner replaces rather than trusts them."""
    try:
        return ContainerState(raw.lower())
    except ValueError:
        return ContainerState.DEAD


def parse_docker_time(raw: str | None) -> float | None:
    """Docker writes nanosecond RFC 3339 and `0001-01-01T00:00:00Z` for "never"."""
    if not raw or raw.startswith("0001-01-01"):
        return None
    m = _RFC3339.match(raw)
    if m is None:
        return None
    base, frac, zone = m.groups()
    zone = "+00:00" if zone == "Z" else zone
    stamp = datetime.fromisoformat(base + zone).timestamp()
    if frac:
        stamp += float("0." + frac)
    return stamp


def ips_of(networks: Mapping[str, Any] | None) -> dict[str, str]:
    """A stopped or created container has endpoints with an empty IP: those are not addresses."""
    out: dict[str, str] = {}
    for name, ep in (networks or {}).items():
        ip = (ep or {}).get("IPAddress") or ""
        if ip:
            out[name] = ip
    return out


def _number(labels: Mapping[str, str]) -> int:
    try:
        return int(labels.get(LABEL_NUMBER, "0"))
    except ValueError:
        return 0


def _image_tag(image: str) -> str:
    """The tag of a container Berth did not create (it carries no berth.tag label)."""
    if image.startswith("sha256:"):
        return ""
    return parse_repository_tag(image)[1] or "latest"


def compose_started(row: Mapping[str, Any]) -> bool:
    """A service container that `docker compose up` started (not Berth, not `run`)."""
    labels: Mapping[str, str] = row.get("Labels") or {}
    return labels.get(LABEL_MANAGED) != "true" and labels.get(LABEL_ONEOFF, "False") != "True"


def container_rows(api: Any, project: str | None, adopt: frozenset[str]) -> list[dict[str, Any]]:
    """`GET /containers/json` rows of Berth's containers (of one project when given), plus
    those `docker compose up` started in the projects being adopted (`berth adopt`)."""
    wanted = [f"{LABEL_MANAGED}=true"]
    if project is not None:
        wanted.append(f"{LABEL_PROJECT}={project}")
    with translated("list containers"):
        rows: list[dict[str, Any]] = api.containers(all=True, filters={"label": wanted})
    for name in sorted(adopt if project is None else adopt & {project}):
        with translated(f"list containers of compose project {name}"):
            theirs = api.containers(
                all=True, filters={"label": [f"{LABEL_PROJECT}={name}", LABEL_SERVICE]}
            )
        rows += [r for r in theirs if compose_started(r)]
    return rows


def observed_from_row(row: Mapping[str, Any]) -> ObservedContainer:
    """One `GET /containers/json` row; no inspect, so a full observation is a single call."""
    labels: Mapping[str, str] = row.get("Labels") or {}
    names: list[str] = row.get("Names") or []
    state = parse_state(str(row.get("State", "")))
    status = str(row.get("Status", ""))
    running = state in (ContainerState.RUNNING, ContainerState.RESTARTING)
    exited = state in (ContainerState.EXITED, ContainerState.DEAD)
    return ObservedContainer(
        id=str(row["Id"]),
        name=names[0].lstrip("/") if names else "",
        project=labels.get(LABEL_PROJECT, ""),
        service=labels.get(LABEL_SERVICE, ""),
        number=_number(labels),
        revision=labels.get(LABEL_REVISION, ""),
        tag=labels.get(LABEL_TAG) or _image_tag(str(row.get("Image", ""))),
        image=str(row.get("Image", "")),
        state=state,
        health=health_from_status(status) if running else None,
        created=float(row.get("Created", 0)),
        managed=labels.get(LABEL_MANAGED) == "true",
        exit_code=exit_code_from_status(status) if exited else None,
        ips=ips_of((row.get("NetworkSettings") or {}).get("Networks")),
        digest=labels.get(LABEL_DIGEST) or None,
    )


def status_from_inspect(doc: Mapping[str, Any]) -> ContainerStatus:
    """`GET /containers/{id}/json`: the gate's view, with an exit code only once it exited."""
    st: Mapping[str, Any] = doc.get("State") or {}
    state = parse_state(str(st.get("Status", "")))
    raw_health = (st.get("Health") or {}).get("Status")
    health: Health | None = None
    if raw_health in ("starting", "healthy", "unhealthy"):
        health = raw_health
    exited = state in (ContainerState.EXITED, ContainerState.DEAD)
    return ContainerStatus(
        id=str(doc.get("Id", "")),
        state=state,
        health=health,
        exit_code=int(st.get("ExitCode", 0)) if exited else None,
        restart_count=int(doc.get("RestartCount", 0) or 0),
        ips=ips_of((doc.get("NetworkSettings") or {}).get("Networks")),
        started_at=parse_docker_time(st.get("StartedAt")),
        error=str(st.get("Error") or ""),
    )


def processes_from_top(top: Mapping[str, Any]) -> list[tuple[int, str]]:
    """`GET /containers/{id}/top` -> (pid, command line); the columns found by title."""
    titles = [str(t).upper() for t in top.get("Titles") or []]
    pid_col = titles.index("PID") if "PID" in titles else 0
    cmd_col = next((i for i, t in enumerate(titles) if t in ("COMMAND", "CMD", "ARGS")), -1)
    return [
        (int(row[pid_col]), str(row[cmd_col]))
        for row in top.get("Processes") or []
        if str(row[pid_col]).isdigit()
    ]


def service_aliases(doc: Mapping[str, Any], network: str) -> tuple[str, ...]:
    """Aliases of one endpoint minus the short id Docker adds to every user-defined network,
    which makes no container resolvable under a *service* name and would only confuse checks."""
    ep = ((doc.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
    short = str(doc.get("Id", ""))[:12]
    return tuple(a for a in (ep.get("Aliases") or []) if a != short)


def managed_events(
    api: Any, *, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    """Container events of Berth-managed containers (DockerRuntime.events)."""
    filters = {"type": ["container"], "label": [f"{LABEL_MANAGED}=true"]}
    with translated("events"):
        stream = api.events(
            since=None if since is None else f"{since:.9f}",
            until=None if until is None else f"{until:.9f}",
            filters=filters,
            decode=True,
        )
    try:
        while True:
            with translated("events"):
                event = next(stream, None)
            if event is None:
                return
            yield event
    finally:
        stream.close()
