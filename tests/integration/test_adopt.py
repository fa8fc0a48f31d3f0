"""`berth adopt`: a project that `docker-compose up` started is taken over by a
health-gated rollout — same volume (its data kept), same network — and `docker-compose
ps/logs` still see the service (compose v1 is what Debian bookworm ships)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _compose() -> dict[str, Any]:
    return {
        "services": {
            "api": {
                "image": "berth-test/app:it-good",
                "init": True,
                "volumes": ["data:/data"],
                "healthcheck": {"test": healthcheck(), "interval": "1s", "retries": 3},
                "x-berth": {"health": {"path": "/health", "port": 8000, "interval": "100ms"}},
            }
        },
        "volumes": {"data": {}},
    }


def _compose_v1(project: str, file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-p", project, "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _containers(client: Any, project: str) -> list[Any]:
    return client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )


def test_adopt_replaces_compose_containers_keeping_volume_and_network(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("it-good")
    s = tmp_stack(_compose(), {"api": {"tag": "it-good"}})
    v1 = s.compose_file.with_name("v1.yml")  # compose v1 predates the top-level `name:`
    v1.write_text(json.dumps({k: v for k, v in _compose().items() if k != "name"}))
    up = _compose_v1(project, v1, "up", "-d")
    assert up.returncode == 0, up.stderr
    (theirs,) = _containers(docker_client, project)
    assert theirs.exec_run(["sh", "-c", "echo kept > /data/marker"]).exit_code == 0
    net_id = docker_client.networks.get(f"{project}_default").id

    assert "create" in berth(s.desired_dir, s.state_dir, "plan").out  # Berth sees nothing
    r = berth(s.desired_dir, s.state_dir, "adopt")
    assert r.code == 0, r.out + r.err
    assert f"adopting {project}/api: {theirs.name}" in r.out

    (mine,) = _containers(docker_client, project)
    assert mine.id != theirs.id and mine.labels["berth.managed"] == "true"
    assert mine.exec_run(["cat", "/data/marker"]).output.decode().strip() == "kept"
    assert list(mine.attrs["NetworkSettings"]["Networks"]) == [f"{project}_default"]
    assert docker_client.networks.get(f"{project}_default").id == net_id
    assert berth(s.desired_dir, s.state_dir, "plan").code == 0  # converged
    ps = _compose_v1(project, v1, "ps")
    assert ps.returncode == 0 and mine.name in ps.stdout, ps.stdout + ps.stderr
    logs = _compose_v1(project, v1, "logs", "--no-color", "api")
    assert logs.returncode == 0 and mine.name in logs.stdout, logs.stdout + logs.stderr
    labels = mine.labels
    assert labels["com.docker.compose.config-hash"] == labels["berth.revision"]
    assert labels["com.docker.compose.project.config_files"] == str(s.compose_file)


def test_adopt_of_an_unknown_project_is_refused_and_touches_nothing(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("it-good")
    s = tmp_stack(_compose(), {"api": {"tag": "it-good"}})
    r = berth(s.desired_dir, s.state_dir, "adopt", "nosuchproject")
    assert r.code == 3 and "no project nosuchproject" in r.err, r.out + r.err
    assert _containers(docker_client, project) == []


def test_without_adopt_compose_containers_are_left_alone(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("it-good")
    s = tmp_stack(_compose(), {"api": {"tag": "it-good"}})
    v1 = s.compose_file.with_name("v1.yml")
    v1.write_text(json.dumps(_compose()))
    assert _compose_v1(project, v1, "up", "-d").returncode == 0
    (theirs,) = _containers(docker_client, project)
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.out + r.err
    ids = {c.id for c in _containers(docker_client, project)}
    assert theirs.id in ids and len(ids) == 2  # side by side: apply adopts nothing
