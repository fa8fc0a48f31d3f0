"""The swarm backend pointed at an engine that is not a Swarm manager: a clear error, and
nothing is created on that engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.berth import berth

pytestmark = [pytest.mark.docker]


def test_a_swarm_stack_against_a_plain_engine_says_it_needs_a_manager(
    docker_client: Any, tmp_stack: Any, project: str
) -> None:
    compose = {
        "x-berth": {
            "backend": "swarm",
            "proxy": {"service": "nginx", "upstreams_file": "../nginx/upstreams/upstreams.conf"},
        },
        "services": {
            "app": {"image": "berth-test/app", "x-berth": {"upstream": {"name": "a", "port": 80}}},
            "nginx": {
                "image": "berth-test/nginx:1",
                "volumes": ["../nginx/upstreams:/etc/nginx/berth:rw"],
            },
        },
    }
    s = tmp_stack(compose, {"app": {"tag": "1.0.0"}}, files={"nginx/upstreams/upstreams.conf": ""})
    assert berth(s.desired_dir, s.state_dir, "validate").code == 0
    res = berth(s.desired_dir, s.state_dir, "apply")
    assert res.code != 0
    assert "swarm manager" in (res.out + res.err).lower(), res.out + res.err
    assert (
        docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
        == []
    )
