"""Faults under `berth run` on the Swarm backend (real 3-node swarm, keep-alive load).

A node lost, frozen or cut off: its tasks stop answering at once, but the manager reports
them running until the node misses its heartbeats (~15 s). Berth's route check probes every
replica through the edge each probe interval, so nginx stops routing to them first, never
empties the peer set, and routes the tasks Swarm reschedules once their probe passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.daemon import free_port
from tests.support.images import ensure_app_image, ensure_nginx_image
from tests.support.load import Load
from tests.support.swarm import Node, Swarm, wait_for
from tests.swarm.berth_stack import SwarmStack, new_stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def daemon(swarm: Swarm, docker_client: Any) -> Iterator[SwarmStack]:
    for tag in ("1.0.0", "2.0.0"):
        swarm.push(ensure_app_image(tag, client=docker_client))
    swarm.push(ensure_nginx_image(client=docker_client))
    s = new_stack(swarm, free_port())
    s.write("1.0.0", probe_timeout="500ms", deadline="40s")
    proc = s.popen("run", "--listen", f"127.0.0.1:{free_port()}")
    try:
        s.wait_serving("1.0.0", timeout=90)
        wait_for(lambda: len(s.peers()) == 3, timeout=30, what="3 peers routed")
        yield s
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except Exception:
            proc.kill()


def _tasks_by_node(stack: SwarmStack) -> dict[str, set[str]]:
    """node hostname -> overlay addresses (IP:8000) of the app's running tasks there."""
    api = stack.swarm.manager.client.api
    names = {n["ID"]: n["Description"]["Hostname"] for n in api.nodes()}
    out: dict[str, set[str]] = {}
    for t in stack.app_tasks():
        if t["DesiredState"] != "running" or t["Status"]["State"] != "running":
            continue
        for att in t.get("NetworksAttachments") or []:
            for addr in att.get("Addresses") or []:
                out.setdefault(names[t["NodeID"]], set()).add(addr.split("/")[0] + ":8000")
    return out


def _victim(stack: SwarmStack) -> tuple[Node, set[str]]:
    by_node = _tasks_by_node(stack)
    for node in stack.swarm.workers:
        if by_node.get(node.name):
            return node, by_node[node.name]
    raise AssertionError(f"no worker runs an app task: {by_node}")


def test_a_killed_worker_leaves_the_peers_before_swarm_notices_and_its_tasks_rejoin(
    daemon: SwarmStack,
) -> None:
    stack = daemon
    victim, lost = _victim(stack)
    assert lost <= stack.peers()
    load = Load(stack.url, keep_alive=True, get_threads=4, extras=False, get_rate=200)
    load.start()
    try:
        time.sleep(1)
        killed = time.monotonic()
        stack.swarm.kill_node(victim)
        wait_for(lambda: not (lost & stack.peers()), timeout=30, what="lost peers dropped")
        dropped = time.monotonic() - killed
        states = stack.swarm.node_states()
        assert states.get(victim.name) != "down", (
            f"Berth dropped the lost peers after {dropped:.1f} s, only once Swarm had marked "
            f"the node down: {states}"
        )
        assert stack.peers(), "never 0 peers while healthy tasks exist"
        stack.swarm.wait_states({victim.name: "down"}, timeout=90)
        wait_for(
            lambda: len(stack.peers()) == 3 and not (lost & stack.peers()),
            timeout=90,
            what="3 peers again, the rescheduled ones included",
        )
        rejoined = time.monotonic() - killed
        time.sleep(1)
    finally:
        load.stop()
    live = set().union(*(v for k, v in _tasks_by_node(stack).items() if k != victim.name))
    assert stack.peers() == live
    after = [x for x in load.samples if x.start > killed + dropped + 1.0]
    assert after and all(x.ok for x in after), [x for x in after if not x.ok][:5]
    lost_requests = [x for x in load.samples if not x.ok]
    print(
        f"\nkilled {victim.name}: peers dropped after {dropped:.2f} s, "
        f"3 peers again after {rejoined:.1f} s; failed requests: {len(lost_requests)} "
        f"of {len(load.samples)} (all in flight on, or sent to, the lost node before the drop)"
    )
