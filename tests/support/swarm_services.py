"""Swarm services of the test app on a test swarm (tests/support/swarm.py), and a probe.

Services use endpoint mode `dnsrr` (this kernel has no IPVS, so a VIP never answers) on an
attachable overlay network. A task's overlay IP is reachable only from inside that overlay,
so `OverlayProbe` is a small container of the app image (busybox) on a manager, attached to
the overlay, that runs `wget` against task IPs: busybox wget cannot resolve names (static
NSS), hence IPs. It is the shape issue 14's gate can take: a probe agent on the overlay.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker.errors
import docker.types

from tests.support.swarm import wait_for

APP_PORT = 8000


def create_overlay(client: Any, name: str, labels: Mapping[str, str] | None = None) -> Any:
    """An attachable overlay, so plain containers (the probe) can join it."""
    return client.networks.create(
        name, driver="overlay", attachable=True, scope="swarm", labels=dict(labels or {})
    )


def app_healthcheck(interval_s: float = 1.0) -> docker.types.Healthcheck:
    ns = int(interval_s * 1e9)
    return docker.types.Healthcheck(
        test=["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{APP_PORT}/health"],
        interval=ns,
        timeout=ns,
        retries=2,
        start_period=0,
    )


def start_first(
    monitor_s: float,
) -> tuple[docker.types.UpdateConfig, docker.types.RollbackConfig]:
    """What `docker service update --update-order start-first --update-parallelism 1
    --update-delay 0 --update-monitor Ns --update-failure-action rollback` sets, and the
    matching start-first rollback: the native baseline of the benchmarks."""
    monitor = int(monitor_s * 10**9)
    update = docker.types.UpdateConfig(
        parallelism=1,
        delay=0,
        order="start-first",
        monitor=monitor,
        failure_action="rollback",
        max_failure_ratio=0,
    )
    rollback = docker.types.RollbackConfig(
        parallelism=1, delay=0, order="start-first", monitor=monitor
    )
    return update, rollback


def create_app_service(
    client: Any,
    name: str,
    image: str,
    *,
    network: str,
    replicas: int = 3,
    update_config: docker.types.UpdateConfig | None = None,
    rollback_config: docker.types.RollbackConfig | None = None,
    healthcheck: docker.types.Healthcheck | None = None,
    host_port: int | None = None,
    stop_grace_s: float = 2.0,
) -> Any:
    """A replicated dnsrr service of the app image on `network`; with `host_port`, the app
    port is also published in host mode on every node that runs a task (no routing mesh).
    `stop_grace_s`: seconds a stopping task gets before SIGKILL (in-flight requests)."""
    ports = {host_port: (APP_PORT, "tcp", "host")} if host_port else None
    return client.services.create(
        image,
        name=name,
        mode=docker.types.ServiceMode("replicated", replicas=replicas),
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr", ports=ports),
        networks=[docker.types.NetworkAttachmentConfig(target=network)],
        healthcheck=healthcheck,
        update_config=update_config,
        rollback_config=rollback_config,
        init=True,
        stop_grace_period=int(stop_grace_s * 10**9),
    )


@dataclass(frozen=True)
class TaskInfo:
    id: str
    node_id: str
    state: str
    desired_state: str
    image: str
    ip: str  # on the service's first network; "" when the task has none yet


def tasks(service: Any) -> list[TaskInfo]:
    """Every task the managers still know for `service` (history included)."""
    out = []
    for t in service.tasks():
        ip = ""
        for att in t.get("NetworksAttachments") or []:
            for addr in att.get("Addresses") or []:
                ip = ip or addr.split("/")[0]
        out.append(
            TaskInfo(
                id=t["ID"],
                node_id=t.get("NodeID", ""),
                state=t["Status"]["State"],
                desired_state=t["DesiredState"],
                image=t["Spec"]["ContainerSpec"]["Image"],
                ip=ip,
            )
        )
    return out


def running_tasks(service: Any) -> list[TaskInfo]:
    return [t for t in tasks(service) if t.state == "running" and t.desired_state == "running"]


def wait_running(service: Any, replicas: int, *, timeout: float = 90) -> list[TaskInfo]:
    """Wait until exactly `replicas` tasks run (and are meant to); returns them."""

    def check() -> list[TaskInfo] | None:
        running = running_tasks(service)
        return running if len(running) == replicas else None

    try:
        return wait_for(check, timeout=timeout, what=f"{replicas} running tasks of {service.name}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; tasks: {task_errors(service)}") from None


def task_errors(service: Any, limit: int = 6) -> list[str]:
    """The newest tasks' state and error, for a failure message."""
    rows = sorted(service.tasks(), key=lambda t: str(t.get("UpdatedAt", "")), reverse=True)
    return [
        f"{t['Status']['State']}: {t['Status'].get('Err') or t['Status'].get('Message', '')}"
        for t in rows[:limit]
    ]


def update_status(service: Any) -> dict[str, Any]:
    """Swarm's UpdateStatus of the service, read again (State, StartedAt, CompletedAt...)."""
    service.reload()
    return dict(service.attrs.get("UpdateStatus") or {})


def update_state(service: Any) -> str:
    """Swarm's UpdateStatus.State ("updating", "completed", "rollback_completed", ...)."""
    return str(update_status(service).get("State", ""))


def docker_time(value: str) -> float:
    """Docker's RFC 3339 with nanoseconds -> epoch seconds."""
    head, _, frac = value.rstrip("Z").partition(".")
    base = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return base.timestamp() + (float(f"0.{frac}") if frac else 0.0)


class OverlayProbe:
    """A busybox container on a manager, attached to an overlay, that GETs task IPs."""

    def __init__(self, client: Any, *, network: str, image: str, name: str) -> None:
        self._client = client
        client.images.pull(image)
        self.container = client.containers.run(
            image,
            command=["/bin/sleep", "86400"],
            name=name,
            network=network,
            init=True,
            detach=True,
        )

    def get(self, ip: str, path: str = "/health", *, port: int = APP_PORT) -> tuple[int, str]:
        """(exit code, body) of one GET, stopped after 2 s. Debian's static busybox wget
        segfaults (exit 139) with `-T`, so the busybox `timeout` applet bounds it."""
        result = self.container.exec_run(
            ["timeout", "2", "wget", "-q", "-O", "-", f"http://{ip}:{port}{path}"]
        )
        return int(result.exit_code), result.output.decode(errors="replace")

    def close(self) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            self.container.remove(force=True)
