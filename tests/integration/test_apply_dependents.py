"""`berth apply` against the real engine: depends_on `restart: true`, and compose secrets
and configs without a host file (`environment:`, `content:`) written into the containers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "it-secret-value-7f3a"


def service(**extra: Any) -> dict[str, Any]:
    return {
        "image": "berth-test/app",
        "init": True,
        "stop_grace_period": "2s",
        "healthcheck": {"test": healthcheck(), "interval": "500ms", "retries": 3},
        "x-berth": {"progress_deadline": "20s"},
        **extra,
    }


def compose() -> dict[str, Any]:
    return {
        "services": {
            "db": service(),
            "api": service(
                depends_on={"db": {"condition": "service_started", "restart": True}},
                secrets=[{"source": "db_password", "uid": "1000", "mode": 0o400}],
                configs=[{"source": "app_conf", "target": "/etc/app.conf"}],
            ),
            "worker": service(depends_on={"db": {"condition": "service_started"}}),
        },
        "secrets": {"db_password": {"environment": "BERTH_IT_DB_PASSWORD"}},
        "configs": {"app_conf": {"content": "level=debug\n"}},
    }


def started(client: Any, project: str, svc: str) -> dict[str, str]:
    """id -> StartedAt of the service's running containers."""
    cs = client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={svc}"]
        }
    )
    return {c.id: c.attrs["State"]["StartedAt"] for c in cs}


def test_a_replaced_dependency_restarts_its_restart_dependents(
    docker_client: Any,
    app_image: Callable[..., str],
    tmp_stack: Any,
    project: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERTH_IT_DB_PASSWORD", SECRET)
    app_image("1.0.0")
    app_image("2.0.0")
    one = {"db": {"tag": "1.0.0"}, "api": {"tag": "1.0.0"}, "worker": {"tag": "1.0.0"}}
    s = tmp_stack(compose(), one)
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.err
    assert "was replaced" not in r.out + r.err  # db was created, not replaced
    api, worker = started(docker_client, project, "api"), started(docker_client, project, "worker")
    assert len(api) == 1 and len(worker) == 1
    [cid] = api
    c = docker_client.containers.get(cid)
    code, out = c.exec_run(
        ["sh", "-c", "cat /run/secrets/db_password /etc/app.conf; ls -ln /run/secrets"]
    )
    assert code == 0, out
    text = out.decode()
    assert text.startswith(f"{SECRET}level=debug\n") and " 1000 " in text and "-r--------" in text
    assert SECRET not in r.out + r.err  # never printed

    s = tmp_stack(compose(), {**one, "db": {"tag": "2.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.err
    assert "restart: dependency db was replaced" in r.out + r.err
    after = started(docker_client, project, "api")
    assert list(after) == [cid] and after[cid] > api[cid]  # the same container, restarted
    assert started(docker_client, project, "worker") == worker  # no restart: true
    code, out = docker_client.containers.get(cid).exec_run(["cat", "/run/secrets/db_password"])
    assert code == 0 and out.decode() == SECRET  # files survive a restart

    r = berth(s.desired_dir, s.state_dir, "apply")  # nothing to do: nothing restarted
    assert r.code == 0, r.err
    assert started(docker_client, project, "api") == after
