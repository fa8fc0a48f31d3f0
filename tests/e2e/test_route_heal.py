"""Between rollouts, `berth run` keeps nginx's routes in line with the containers.

A routed container that comes back on another address (Docker's restart policy gives a
restarted container a new endpoint; its old IP may be taken meanwhile) would otherwise
leave nginx connecting to an address that some other container, or nobody, holds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_zero_downtime import _served_stack, _wait_http, deploy
from tests.support.berth import berth
from tests.support.daemon import berth_run, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]


def _ip(client: Any, cid: str, network: str) -> str:
    nets = client.api.inspect_container(cid)["NetworkSettings"]["Networks"]
    return str(nets[network]["IPAddress"]) if network in nets else ""


def _move_address(
    client: Any, project: str, victim: str, network: str, old_ip: str
) -> tuple[Any, str]:
    """The victim leaves the network, a stranger (no Berth labels) takes its address, and
    the victim comes back on another one. Returns the stranger and the victim's new IP."""
    net = client.networks.get(network)
    net.disconnect(victim)
    stranger = client.containers.run(
        "berth-test/app:1.0.0", name=f"{project}-stranger", network=network, detach=True
    )
    assert _ip(client, stranger.id, network) == old_ip
    net.connect(victim)
    new_ip = _ip(client, victim, network)
    assert new_ip and new_ip != old_ip
    return stranger, new_ip


def _routed_victim(client: Any, project: str, s: Any, network: str) -> tuple[str, str]:
    api = client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=api"]
        }
    )
    victim = sorted(api, key=lambda c: c.name)[0]
    old_ip = _ip(client, victim.id, network)
    assert f"server {old_ip}:8000;" in (s.root / "nginx/upstreams/upstreams.conf").read_text()
    return victim.id, old_ip


def _rerouted(s: Any, port: int, err: str, old_ip: str, new_ip: str) -> None:
    """apply said so, the file routes the new address only, and 1.0.0 still answers."""
    assert "routes healed: " in err and f"{old_ip} -> {new_ip}" in err, err
    text = (s.root / "nginx/upstreams/upstreams.conf").read_text()
    assert f"server {new_ip}:8000;" in text and f"server {old_ip}:8000;" not in text
    for _ in range(10):
        r = httpx.get(f"http://127.0.0.1:{port}/version", trust_env=False, timeout=10)
        assert (r.status_code, r.text.strip()) == (200, "1.0.0")


def test_apply_on_a_steady_stack_reroutes_too(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    s, port = _served_stack(docker_client, app_image, tmp_stack)
    network = f"{project}_backend"
    victim, old_ip = _routed_victim(docker_client, project, s, network)
    stranger, new_ip = _move_address(docker_client, project, victim, network, old_ip)
    try:
        res = berth(s.desired_dir, s.state_dir, "apply")
        assert res.code == 0, res.err
        _rerouted(s, port, res.err, old_ip, new_ip)
        again = berth(s.desired_dir, s.state_dir, "apply")
        assert again.code == 0 and "routes healed" not in again.err, again.err
    finally:
        stranger.remove(force=True)


def test_a_quarantined_desired_tag_does_not_stop_healing_what_serves(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    """The desired tag failed and is quarantined; 1.0.0 serves on. A 1.0.0 container that
    comes back on another address is still routed there (before, a quarantined pass healed
    nothing, so nginx kept the stale address until desired/ changed)."""
    s, port = _served_stack(docker_client, app_image, tmp_stack)
    app_image("2.3.0-crash", mode="crash")
    assert deploy(s, tmp_stack, port, "2.3.0-crash")[0] == 3
    network = f"{project}_backend"
    victim, old_ip = _routed_victim(docker_client, project, s, network)
    stranger, new_ip = _move_address(docker_client, project, victim, network, old_ip)
    try:
        res = berth(s.desired_dir, s.state_dir, "apply")
        assert res.code == 3 and "quarantined" in res.out + res.err, (res.out, res.err)
        _rerouted(s, port, res.err, old_ip, new_ip)
    finally:
        stranger.remove(force=True)


def test_daemon_reroutes_a_container_that_changed_address(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    s, port = _served_stack(docker_client, app_image, tmp_stack)
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/version")
    upstreams = s.root / "nginx/upstreams/upstreams.conf"
    network = f"{project}_backend"
    victim, old_ip = _routed_victim(docker_client, project, s, network)

    with berth_run(s.desired_dir, s.state_dir, resync=1.0, log=tmp_path / "berth.log") as d:
        stranger, new_ip = _move_address(docker_client, project, victim, network, old_ip)
        try:
            wait_for(
                lambda: f"server {new_ip}:8000;" in upstreams.read_text(),
                20,
                f"the upstream never followed {old_ip} -> {new_ip}:\n{upstreams.read_text()}",
            )
            text = upstreams.read_text()
            assert f"server {old_ip}:8000;" not in text
            assert f"id={victim[:12]}" in text
            # logged once nginx has reloaded and drained
            wait_for(lambda: "routes healed" in d.log.read_text(), 20, "no 'routes healed' line")
            assert f"{old_ip} -> {new_ip}" in d.log.read_text()
            for _ in range(20):
                r = httpx.get(base + "/version", trust_env=False, timeout=10)
                assert (r.status_code, r.text.strip()) == (200, "1.0.0")
            # steady again: the next passes leave the file alone
            before = upstreams.stat().st_mtime_ns
            time.sleep(2.5)  # two resync passes
            assert upstreams.stat().st_mtime_ns == before
            assert d.log.read_text().count("routes healed") == 1
        finally:
            stranger.remove(force=True)
