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

from tests.e2e.test_zero_downtime import _served_stack, _wait_http
from tests.support.daemon import berth_run, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]


def _ip(client: Any, cid: str, network: str) -> str:
    nets = client.api.inspect_container(cid)["NetworkSettings"]["Networks"]
    return str(nets[network]["IPAddress"]) if network in nets else ""


def test_daemon_reroutes_a_container_that_changed_address(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    s, port = _served_stack(docker_client, app_image, tmp_stack)
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/version")
    upstreams = s.root / "nginx/upstreams/upstreams.conf"
    network = f"{project}_backend"
    api = docker_client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=api"]
        }
    )
    victim = sorted(api, key=lambda c: c.name)[0]
    old_ip = _ip(docker_client, victim.id, network)
    assert f"server {old_ip}:8000;" in upstreams.read_text()

    with berth_run(s.desired_dir, s.state_dir, resync=2.0, log=tmp_path / "berth.log") as d:
        # The victim leaves the network, a stranger (no Berth labels) takes its address,
        # and the victim comes back on another one.
        net = docker_client.networks.get(network)
        net.disconnect(victim.id)
        stranger = docker_client.containers.run(
            "berth-test/app:1.0.0", name=f"{project}-stranger", network=network, detach=True
        )
        try:
            assert _ip(docker_client, stranger.id, network) == old_ip
            net.connect(victim.id)
            new_ip = _ip(docker_client, victim.id, network)
            assert new_ip and new_ip != old_ip
            wait_for(
                lambda: f"server {new_ip}:8000;" in upstreams.read_text(),
                20,
                f"the upstream never followed {old_ip} -> {new_ip}:\n{upstreams.read_text()}",
            )
            text = upstreams.read_text()
            assert f"server {old_ip}:8000;" not in text
            assert f"id={victim.id[:12]}" in text
            # logged once nginx has reloaded and drained
            wait_for(lambda: "routes healed" in d.log.read_text(), 20, "no 'routes healed' line")
            assert f"{old_ip} -> {new_ip}" in d.log.read_text()
            for _ in range(20):
                r = httpx.get(base + "/version", trust_env=False, timeout=10)
                assert (r.status_code, r.text.strip()) == (200, "1.0.0")
            # steady again: the next passes leave the file alone
            before = upstreams.stat().st_mtime_ns
            time.sleep(4.5)  # two resync passes
            assert upstreams.stat().st_mtime_ns == before
            assert d.log.read_text().count("routes healed") == 1
        finally:
            stranger.remove(force=True)
