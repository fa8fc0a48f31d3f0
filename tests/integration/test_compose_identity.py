"""container_name, network_mode service:X and volumes_from against the real engine, through
`berth apply`: the name is taken over at each replacement, a dependent joins its peer's
current container, and replacing the peer replaces the dependent after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _running(client: Any, project: str, service: str) -> list[Any]:
    return client.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={service}",
            ]
        }
    )


def _bump(s: Any, old: str, new: str) -> None:
    s.desired_file.write_text(s.desired_file.read_text().replace(old, new))


def test_container_name_is_kept_across_replacements(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("it-good")
    app_image("it-good2")
    name = f"{project}-legacy"
    compose = {
        "services": {
            "api": {
                "image": "berth-test/app",
                "init": True,
                "container_name": name,
                "healthcheck": {"test": healthcheck(), "interval": "1s", "retries": 3},
            }
        }
    }
    s = tmp_stack(compose, {"api": {"tag": "it-good"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    (first,) = _running(docker_client, project, "api")
    assert first.name == name
    _bump(s, "it-good", "it-good2")
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    (second,) = docker_client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )
    assert second.name == name and second.id != first.id
    assert second.labels["berth.tag"] == "it-good2"
    assert "stop-old" in r.err  # stop-first: one container can hold the name


def test_network_mode_service_follows_its_peer_and_volumes_from_mounts(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("it-good")
    app_image("it-good2")
    app_image("side-8001", port=8001)
    compose = {
        "services": {
            "vpn": {
                "image": "berth-test/app",
                "init": True,
                "volumes": ["shared:/data"],
                "healthcheck": {"test": healthcheck(), "interval": "1s", "retries": 3},
            },
            "side": {
                "image": "berth-test/app",
                "init": True,
                "network_mode": "service:vpn",
                "volumes_from": ["vpn:ro"],
                "healthcheck": {"test": healthcheck(8001), "interval": "1s", "retries": 3},
            },
        },
        "volumes": {"shared": {}},
    }
    s = tmp_stack(compose, {"vpn": {"tag": "it-good"}, "side": {"tag": "side-8001"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    (vpn,) = _running(docker_client, project, "vpn")
    (side,) = _running(docker_client, project, "side")
    assert side.attrs["HostConfig"]["NetworkMode"] == f"container:{vpn.id}"
    assert side.attrs["HostConfig"]["VolumesFrom"] == [f"{vpn.id}:ro"]
    # one network namespace: the side container reaches vpn's port on its loopback
    got = side.exec_run(["wget", "-q", "-O", "-", "http://127.0.0.1:8000/version"])
    assert got.exit_code == 0 and b"it-good" in got.output, got.output
    assert vpn.exec_run(["sh", "-c", "echo v > /data/f"]).exit_code == 0
    assert side.exec_run(["cat", "/data/f"]).output.strip() == b"v"
    # replacing vpn replaces side after it (its namespace came from the old vpn)
    _bump(s, '"it-good"', '"it-good2"')
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    (vpn2,) = _running(docker_client, project, "vpn")
    (side2,) = _running(docker_client, project, "side")
    assert vpn2.id != vpn.id and side2.id != side.id
    assert side2.attrs["HostConfig"]["NetworkMode"] == f"container:{vpn2.id}"
    got = side2.exec_run(["wget", "-q", "-O", "-", "http://127.0.0.1:8000/version"])
    assert got.exit_code == 0 and b"it-good2" in got.output, got.output
    assert berth(s.desired_dir, s.state_dir, "plan").code == 0
