"""A real 3-node swarm (1 manager + 2 workers): nodes Ready, and a dnsrr service pulled
from the swarm's registry, spread over the nodes, each task answering on its overlay IP."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from tests.support.swarm import Swarm
from tests.support.swarm_services import (
    OverlayProbe,
    app_healthcheck,
    create_app_service,
    create_overlay,
    wait_running,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HOST_PORT = 18080


def test_every_node_is_ready_with_its_role(swarm: Swarm) -> None:
    assert swarm.node_states() == {n.name: "ready" for n in swarm.nodes}
    roles = {}
    for n in swarm.manager.client.nodes.list():
        spec = n.attrs["Spec"]
        roles[n.attrs["Description"]["Hostname"]] = spec["Role"]
        assert spec["Availability"] == "active"
    assert roles == {n.name: n.role for n in swarm.nodes}
    leaders = [
        n.attrs["Description"]["Hostname"]
        for n in swarm.manager.client.nodes.list()
        if (n.attrs.get("ManagerStatus") or {}).get("Leader")
    ]
    assert leaders == [swarm.manager.name]
    for node in swarm.nodes:
        info = node.client.info()
        assert info["Swarm"]["LocalNodeState"] == "active"
        assert info["Driver"] == "overlay2"
        assert info["RegistryConfig"]["IndexConfigs"][swarm.registry]["Secure"] is False


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def test_dnsrr_service_runs_spread_from_the_registry_and_each_task_answers(
    swarm: Swarm, swarm_app: str
) -> None:
    api: Any = swarm.manager.client
    create_overlay(api, "apps")
    service = create_app_service(
        api, "web", swarm_app, network="apps", healthcheck=app_healthcheck(), host_port=HOST_PORT
    )
    running = wait_running(service, 3)
    service.reload()
    assert service.attrs["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
    assert service.attrs["Endpoint"].get("VirtualIPs") in (None, [])
    node_ids = {n.id: n.attrs["Description"]["Hostname"] for n in api.nodes.list()}
    assert sorted(node_ids[t.node_id] for t in running) == sorted(n.name for n in swarm.nodes)
    for node in swarm.nodes:  # every node pulled the image from the swarm's registry
        assert swarm_app in [tag for img in node.client.images.list() for tag in img.tags]
    probe = OverlayProbe(api, network="apps", image=swarm_app, name="probe")
    try:
        for t in running:
            assert t.ip, t
            assert probe.get(t.ip) == (0, "ok\n")
            assert probe.get(t.ip, "/version") == (0, "1.0.0\n")
        code, _ = probe.get(_unused_ip(running), "/health")
        assert code != 0  # the probe can fail: nothing listens there
    finally:
        probe.close()
    for node in swarm.nodes:  # host-mode publish: each node's own task, no routing mesh
        assert _get(f"http://{node.ip}:{HOST_PORT}/version") == "1.0.0\n"


def _unused_ip(running: list[Any]) -> str:
    used = {t.ip for t in running}
    prefix = next(iter(used)).rsplit(".", 1)[0]
    for last in range(250, 200, -1):
        if f"{prefix}.{last}" not in used:
            return f"{prefix}.{last}"
    raise AssertionError("no unused address")
