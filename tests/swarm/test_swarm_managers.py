"""Three managers (raft quorum of three): the leader is killed in the middle of a Berth
rollout. Berth talks to another manager (where its edge runs); the survivors elect a new
leader, Berth's calls that fail while there is none are retried, and the rollout completes
or rolls back with one version routed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.load import Load
from tests.support.swarm import Node, Swarm, wait_for
from tests.swarm.berth_stack import (
    Daemon,
    SwarmStack,
    daemon_on,
    new_revision_running,
    settled,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def swarm_shape() -> tuple[int, int]:
    return (3, 0)


@pytest.fixture(scope="module")
def swarm_heartbeat() -> float:
    """A 1 s dispatcher heartbeat, as in test_berth_swarm_faults.py: the new leader declares
    the killed manager down, and Swarm replaces the tasks it ran, after ~3 s instead of
    ~15 s (the suite's time budget). With the default, the rollout took 56 s."""
    return 1.0


def _leader(via: Node) -> str | None:
    for n in via.client.nodes.list():
        status = n.attrs.get("ManagerStatus") or {}
        if status.get("Leader") and status.get("Reachability") == "reachable":
            return str(n.attrs["Description"]["Hostname"])
    return None


@pytest.fixture(scope="module")
def running(swarm: Swarm, docker_client: Any) -> Iterator[Daemon]:
    with daemon_on(swarm, docker_client, via=swarm.managers[1], deadline="60s") as d:
        yield d


def test_the_leader_killed_mid_rollout_leaves_one_version_routed(
    swarm: Swarm, running: Daemon
) -> None:
    stack: SwarmStack = running.stack
    assert len(swarm.managers) == 3
    old = _leader(stack.node)
    assert old == swarm.manager.name and stack.node.name != old
    load = Load(stack.url, keep_alive=True, get_threads=4, extras=False, get_rate=100)
    load.start()
    try:
        stack.write("2.0.0", probe_timeout="500ms", deadline="60s")
        wait_for(lambda: new_revision_running(stack, "2.0.0"), timeout=60, what="a new replica")
        swarm.kill_node(swarm.node(old))
        new = wait_for(
            lambda: (lambda name: name if name and name != old else None)(_leader(stack.node)),
            timeout=60,
            what="a new raft leader",
        )
        version = wait_for(lambda: settled(stack), timeout=180, what="one version routed")
    finally:
        load.stop()
    assert new in {n.name for n in swarm.managers} - {old}
    rows = {r["service"]: r for r in stack.status()}
    print(
        f"\nleader {old} killed mid-rollout, {new} elected; ended on {version} "
        f"({rows['app']['last_outcome']}: {rows['app']['last_reason']}); failed requests: "
        f"{sum(not x.ok for x in load.samples)} of {len(load.samples)}"
    )
    assert version in ("1.0.0", "2.0.0")
    stack.wait_serving(version, timeout=10)
    swarm.wait_states({old: "down"}, timeout=90, via=stack.node)
