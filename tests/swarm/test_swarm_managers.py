"""The 3-manager variant: raft quorum of three; killing the leader elects another, and the
swarm keeps answering through a surviving manager."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.swarm import Node, Swarm, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def swarm_shape() -> tuple[int, int]:
    return (3, 0)


def _leader(via: Node) -> str | None:
    for n in via.client.nodes.list():
        status = n.attrs.get("ManagerStatus") or {}
        if status.get("Leader") and status.get("Reachability") == "reachable":
            return str(n.attrs["Description"]["Hostname"])
    return None


def test_three_managers_elect_a_new_leader_when_the_leader_is_killed(swarm: Swarm) -> None:
    assert len(swarm.managers) == 3
    assert swarm.node_states() == {n.name: "ready" for n in swarm.nodes}
    reach: dict[str, Any] = {
        n.attrs["Description"]["Hostname"]: n.attrs["ManagerStatus"]["Reachability"]
        for n in swarm.manager.client.nodes.list()
    }
    assert reach == {n.name: "reachable" for n in swarm.managers}
    old = _leader(swarm.manager)
    assert old == swarm.manager.name

    swarm.kill_node(swarm.node(old))
    survivor = next(n for n in swarm.managers if n.name != old)
    new = wait_for(
        lambda: (lambda name: name if name and name != old else None)(_leader(survivor)),
        timeout=60,
        what="a new raft leader",
    )
    assert new in {n.name for n in swarm.managers} - {old}
    swarm.wait_states({old: "down"}, timeout=90, via=survivor)
