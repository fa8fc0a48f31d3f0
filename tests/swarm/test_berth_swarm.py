"""Berth's Swarm backend on a real 3-node swarm (1 manager + 2 workers).

Berth runs on the host and talks to the manager's engine (`--docker-host`); every replica is
a one-replica Swarm service in dnsrr mode on an overlay; the edge nginx is a Swarm service on
the manager with a host-mode port, switched through its Lua upstreams; the gate probes task
IPs through the edge's control socket. Load: keep-alive clients that never retry, plus long
GETs and slow POSTs, then connection-per-request clients.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.daemon import free_port
from tests.support.images import ensure_app_image, ensure_nginx_image
from tests.support.load import Load
from tests.support.swarm import Swarm
from tests.swarm.berth_stack import SwarmStack, new_stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def pushed(swarm: Swarm, docker_client: Any) -> dict[str, str]:
    """The images of these tests in the swarm's registry."""
    out = {}
    for tag, mode in (
        ("1.0.0", "good"),
        ("2.0.0", "good"),
        ("3.0.0", "crash"),
        ("4.0.0-flaky", "flaky"),
    ):
        out[tag] = swarm.push(ensure_app_image(tag, mode=mode, client=docker_client))
    out["nginx"] = swarm.push(ensure_nginx_image(client=docker_client))
    return out


@pytest.fixture(scope="module")
def stack(swarm: Swarm, pushed: dict[str, str]) -> Iterator[SwarmStack]:
    s = new_stack(swarm, free_port())
    s.write("1.0.0")
    res = s.berth("apply")
    assert res.code == 0, res.out + res.err
    s.wait_serving("1.0.0")
    yield s


def _failures(load: Load) -> list[Any]:
    return [x for x in load.samples if not x.ok]


def test_first_apply_runs_every_replica_as_a_service_behind_the_edge(stack: SwarmStack) -> None:
    services = stack.services()
    apps = [
        s for s in services.values() if s["Spec"]["Labels"]["com.docker.compose.service"] == "app"
    ]
    assert len(apps) == 3
    for s in apps:
        assert s["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
        assert s["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
        assert "@sha256:" in s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    nodes = {t["NodeID"] for t in stack.app_tasks() if t["DesiredState"] == "running"}
    assert len(nodes) >= 2, "Swarm spread the replicas over the nodes"
    rows = {r["service"]: r for r in stack.status()}
    assert rows["app"]["running_tags"] == ["1.0.0"]
    assert rows["app"]["ready"] == 3
    assert len(rows["app"]["routes"]) == 3, rows["app"]["routes"]


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "per-request"])
def test_rollout_under_load_loses_no_request(stack: SwarmStack, keep_alive: bool) -> None:
    current = stack.get()
    target = "2.0.0" if "1.0.0" in current else "1.0.0"
    before = {n for n, s in stack.services().items() if "app" in n}
    load = Load(stack.url, keep_alive=keep_alive, get_threads=4, long_seconds=3.0)
    load.start()
    try:
        stack.write(target)
        res = stack.berth("apply")
    finally:
        load.stop()
    assert res.code == 0, res.out + res.err
    assert load.samples, "the load ran"
    assert _failures(load) == [], _failures(load)[:5]
    stack.wait_serving(target, timeout=5)
    after = {n for n in stack.services() if "app" in n}
    assert not (before & after), "every old replica service was removed"
    assert len(after) == 3


def _running_tasks(stack: SwarmStack) -> dict[str, str]:
    """service id -> task id of the app replicas' running tasks."""
    return {
        t["ServiceID"]: t["ID"]
        for t in stack.app_tasks()
        if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
    }


def test_a_crashing_image_is_rolled_back_without_touching_the_healthy_tasks(
    stack: SwarmStack,
) -> None:
    """The old replicas' services are never updated, so their tasks never restart (the
    complaint of moby#43081 about start-first rollbacks); the tag is quarantined."""
    serving = stack.get()
    before = _running_tasks(stack)
    assert len(before) == 3
    load = Load(stack.url, keep_alive=True, get_threads=4, long_seconds=3.0)
    load.start()
    try:
        stack.write("3.0.0")
        res = stack.berth("apply")
    finally:
        load.stop()
    assert res.code != 0, res.out + res.err
    assert _failures(load) == [], _failures(load)[:5]
    assert _running_tasks(stack) == before, "the same tasks run: none was restarted"
    assert stack.get() == serving
    rows = {r["service"]: r for r in stack.status()}
    assert rows["app"]["quarantined"] is True
    assert rows["app"]["last_outcome"] == "rolled_back", rows["app"]
    again = stack.berth("apply")
    assert "quarantine" in (again.out + again.err).lower()
    assert _running_tasks(stack) == before
    stack.write(serving.split()[0])  # back to what runs: nothing to do
    assert stack.berth("apply").code == 0


def test_a_canary_judged_by_its_own_traffic_is_withdrawn_on_swarm_too(stack: SwarmStack) -> None:
    """The same canary and analysis as on one host: 20 % of requests to a build that fails
    one request in five; the analysis fails the step, weight 0, the old version serves."""
    serving = stack.get().split()[0]
    load = Load(
        stack.url,
        keep_alive=True,
        get_threads=4,
        extras=False,
        get_rate=100,
        get_path="/cgi-bin/try",  # the flaky build fails every 5th request there
    )
    load.start()
    try:
        time.sleep(1)
        stack.write(
            "4.0.0-flaky",
            canary={
                "steps": [20],
                "interval": "4s",
                "analysis": {"min_requests": 20, "success_rate": 95},
            },
        )
        res = stack.berth("apply")
        time.sleep(1)
    finally:
        load.stop()
    assert res.code == 3, res.out + res.err
    assert "weight 0" in res.err and "success_rate" in res.err, res.err
    answered = {x.body.split()[0] for x in load.samples if x.ok}
    assert {serving, "4.0.0-flaky"} <= answered, "both versions took traffic"
    bad = [x for x in load.samples if not x.ok]
    assert bad and all(x.status is not None and not x.error for x in bad), bad[:3]
    assert all("4.0.0-flaky" in x.body for x in bad if x.body), "only the canary failed"
    assert stack.get().split()[0] == serving
    history = stack.berth("history", "app", "--json")
    assert "4.0.0-flaky" in history.out and serving in history.out
    stack.write(serving)
    assert stack.berth("apply").code == 0
