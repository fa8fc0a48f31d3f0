"""The SwarmRuntime adapter against a real swarm: a replica's life as a one-replica service.
(This is also the contract the runtime fakes stand for on the Swarm backend.)

Created (0 replicas: nothing runs), started (a task runs on some node and gets an overlay
IP), inspected through its task, stopped (scaled to 0 and down), removed; a crashing image
shows as restarts; an unknown tag is an ImagePullError before anything exists.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.adapters.swarm_runtime import SwarmRuntime
from controller.core.model import (
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    ContainerState,
    NetworkAttachment,
    NetworkDef,
)
from controller.errors import ContainerRuntimeError, ImagePullError
from tests.support.images import ensure_app_image, healthcheck
from tests.support.swarm import Swarm

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PROJECT = "rtcontract"
NET = f"{PROJECT}_backend"


@pytest.fixture(scope="module")
def rt(swarm: Swarm) -> Iterator[SwarmRuntime]:
    runtime = SwarmRuntime(f"tcp://{swarm.manager.ip}:2375")
    runtime.ensure_network(NetworkDef(name=NET, key="backend"), project=PROJECT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def images(swarm: Swarm, docker_client: Any) -> dict[str, str]:
    return {
        "good": swarm.push(ensure_app_image("1.0.0", client=docker_client)),
        "crash": swarm.push(ensure_app_image("3.0.0", mode="crash", client=docker_client)),
        "unhealthy": swarm.push(ensure_app_image("4.0.0", mode="unhealthy", client=docker_client)),
    }


def _body(check: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "StopTimeout": 2,
        "HostConfig": {"Init": True, "RestartPolicy": {"Name": "unless-stopped"}},
    }
    if check:
        body["Healthcheck"] = {
            "Test": healthcheck(),
            "Interval": 500_000_000,
            "Timeout": 2_000_000_000,
            "Retries": 2,
        }
    return body


def _labels(name: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_PROJECT: PROJECT,
        LABEL_SERVICE: "app",
        LABEL_REVISION: name,
    }


def _wait(pred: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_a_replica_lives_as_a_one_replica_service(rt: SwarmRuntime, images: dict[str, str]) -> None:
    rt.pull(images["good"])
    cid = rt.create(
        name=f"{PROJECT}-app-aaaa-1",
        image=images["good"],
        body=_body(),
        labels=_labels("aaaa"),
        networks=[NetworkAttachment(network=NET, aliases=("app",))],
        aliases=False,
    )
    try:
        (row,) = [c for c in rt.list_containers(project=PROJECT) if c.id == cid]
        assert row.state is ContainerState.CREATED and not row.ips
        assert "@sha256:" in row.image, "the service names the image by its registry digest"
        rt.start(cid)
        st = _wait(lambda: (s := rt.inspect(cid)).health == "healthy" and s)
        assert st.state is ContainerState.RUNNING and st.restart_count == 0
        assert st.ips.get(NET, "").count(".") == 3
        (row,) = [c for c in rt.list_containers(project=PROJECT) if c.id == cid]
        assert row.ready and row.ips == st.ips
        t0 = time.monotonic()
        rt.stop(cid, timeout=2)
        assert time.monotonic() - t0 < 15
        assert rt.inspect(cid).state is ContainerState.EXITED
    finally:
        rt.remove(cid)
    assert all(c.id != cid for c in rt.list_containers(project=PROJECT))
    rt.remove(cid)  # gone already: not an error


@pytest.mark.parametrize("kind", ["crash", "unhealthy"])
def test_a_crashing_or_unhealthy_image_shows_as_restarts(
    rt: SwarmRuntime, images: dict[str, str], kind: str
) -> None:
    """Swarm replaces the task (an unhealthy one is stopped and ends `complete`)."""
    rt.pull(images[kind])
    cid = rt.create(
        name=f"{PROJECT}-app-bbbb-{kind}",
        image=images[kind],
        body=_body(),
        labels=_labels("bbbb"),
        networks=[NetworkAttachment(network=NET, aliases=("app",))],
        aliases=False,
    )
    try:
        rt.start(cid)

        def restarted() -> bool:
            st = rt.inspect(cid)
            if kind == "unhealthy":  # replaced by Swarm: the next task is on its way
                return st.restart_count > 0
            return st.restart_count > 0 or st.state is ContainerState.EXITED

        assert _wait(restarted, timeout=40)
        if kind == "crash":
            logs = _wait(lambda: rt.logs(cid, tail=20), timeout=15)
            assert any("crash mode, exiting 1" in line for line in logs), logs
    finally:
        rt.remove(cid)


def test_retire_removes_a_running_replica_at_once(rt: SwarmRuntime, images: dict[str, str]) -> None:
    """Swarm stops the removed service's task with its grace period; Berth does not wait."""
    rt.pull(images["good"])
    cid = rt.create(
        name=f"{PROJECT}-app-dddd-1",
        image=images["good"],
        body=_body(check=False),
        labels=_labels("dddd"),
        networks=[NetworkAttachment(network=NET)],
        aliases=True,
    )
    rt.start(cid)
    _wait(lambda: rt.inspect(cid).state is ContainerState.RUNNING)
    rt.retire(cid)
    assert all(c.id != cid for c in rt.list_containers(project=PROJECT))
    rt.retire(cid)  # gone already: done


def test_an_unknown_tag_fails_the_pull_before_anything_exists(
    rt: SwarmRuntime, swarm: Swarm
) -> None:
    with pytest.raises(ImagePullError):
        rt.pull(f"{swarm.registry}/berth-test/app:9.9.9-none")


def test_node_local_operations_refuse_a_task_on_another_node(
    rt: SwarmRuntime, images: dict[str, str], swarm: Swarm
) -> None:
    """exec/kill reach only tasks on the node Berth talks to; a pinned service lands there."""
    pinned = SwarmRuntime(f"tcp://{swarm.manager.ip}:2375", pinned=[(PROJECT, "edge")])
    labels = {**_labels("cccc"), LABEL_SERVICE: "edge"}
    rt.pull(images["good"])
    pinned.pull(images["good"])
    cid = pinned.create(
        name=f"{PROJECT}-edge-cccc-1",
        image=images["good"],
        body=_body(check=False),
        labels=labels,
        networks=[NetworkAttachment(network=NET)],
        aliases=True,
    )
    try:
        pinned.start(cid)
        _wait(lambda: rt.inspect(cid).state is ContainerState.RUNNING)
        code, out = pinned.exec(cid, ["cat", "/www/version"])
        assert code == 0 and "1.0.0" in out
        assert any(pid > 0 for pid, _ in pinned.processes(cid))
    finally:
        pinned.remove(cid)
    with pytest.raises(ContainerRuntimeError):
        pinned.rename(cid, "x")
