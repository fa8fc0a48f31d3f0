"""Fault helpers on a real 3-node swarm: a killed worker is marked Down and its task is
rescheduled on the nodes left; the new task answers on its overlay IP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.swarm import Swarm, wait_for
from tests.support.swarm_services import (
    OverlayProbe,
    app_healthcheck,
    create_app_service,
    create_overlay,
    running_tasks,
    wait_running,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_killed_worker_is_marked_down_and_its_tasks_are_rescheduled(
    swarm: Swarm, swarm_app: str
) -> None:
    api: Any = swarm.manager.client
    create_overlay(api, "apps")
    service = create_app_service(
        api, "web", swarm_app, network="apps", healthcheck=app_healthcheck()
    )
    before = wait_running(service, 3)
    ids = {n.id: n.attrs["Description"]["Hostname"] for n in api.nodes.list()}
    victim = swarm.workers[0]
    lost = [t for t in before if ids[t.node_id] == victim.name]
    assert len(lost) == 1

    swarm.kill_node(victim)
    swarm.wait_states({victim.name: "down"}, timeout=90)

    def rescheduled() -> list[Any] | None:
        now = running_tasks(service)
        on_live = [t for t in now if ids[t.node_id] != victim.name]
        return on_live if len(on_live) == 3 else None

    after = wait_for(rescheduled, timeout=90, what="3 tasks on the live nodes")
    new = [t for t in after if t.id not in {b.id for b in before}]
    assert len(new) == 1 and ids[new[0].node_id] != victim.name
    probe = OverlayProbe(api, network="apps", image=swarm_app, name="probe")
    try:
        for t in after:
            assert probe.get(t.ip) == (0, "ok\n")
    finally:
        probe.close()
