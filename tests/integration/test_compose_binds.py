"""Issue 12 against the real engine: binds through HostConfig.Binds as compose sends them (a
missing source directory is created, `:z` is accepted) and the host-option keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _compose() -> dict[str, Any]:
    return {
        "services": {
            "api": {
                "image": "berth-test/app",
                "init": True,
                "stop_grace_period": "3s",
                "healthcheck": {"test": healthcheck(), "interval": "1s", "retries": 3},
                "volumes": [
                    "./made/deeper:/made",  # missing: the engine creates it, as for compose
                    "./data:/data:z",
                    {
                        "type": "bind",
                        "source": "./data",
                        "target": "/ro",
                        "read_only": True,
                        "bind": {"selinux": "Z"},
                    },
                ],
                "cpu_period": 100000,
                "cpu_quota": 50000,
                "ipc": "shareable",
                "cgroup": "private",
                "oom_kill_disable": False,
                "x-berth": {
                    "health": {"path": "/health", "port": 8000, "interval": "100ms"},
                    "progress_deadline": "20s",
                },
            }
        }
    }


def test_binds_create_missing_sources_and_take_selinux_labels(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("1.0.0")
    s = tmp_stack(_compose(), {"api": {"tag": "1.0.0"}}, files={"compose/data/x.txt": "hi"})
    assert not (s.root / "compose" / "made").exists()
    assert berth(s.desired_dir, s.state_dir, "validate").code == 0
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.err
    [c] = docker_client.containers.list(filters={"label": f"com.docker.compose.project={project}"})
    hc = c.attrs["HostConfig"]
    data = s.root / "compose" / "data"
    assert hc["Binds"] == [
        f"{s.root}/compose/made/deeper:/made:rw",
        f"{data}:/data:rw,z",
        f"{data}:/ro:ro,Z",
    ]
    assert (s.root / "compose" / "made" / "deeper").is_dir()
    assert hc["CpuPeriod"] == 100000 and hc["CpuQuota"] == 50000
    assert hc["IpcMode"] == "shareable" and hc["CgroupnsMode"] == "private"
    assert c.exec_run(["cat", "/ro/x.txt"]).output == b"hi"
    assert c.exec_run(["touch", "/ro/y"]).exit_code != 0  # read-only
