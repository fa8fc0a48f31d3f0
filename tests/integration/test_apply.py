"""`berth apply` end to end against the real Docker engine (issue: core engine)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import docker.errors
import pytest

from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def compose(*, replicas: int = 2, worker: bool = False, grace: str = "5s") -> dict[str, Any]:
    svc: dict[str, Any] = {
        "api": {
            "image": "berth-test/app",
            "init": True,
            "stop_grace_period": grace,
            "healthcheck": {
                "test": healthcheck(),
                "interval": "1s",
                "timeout": "2s",
                "retries": 3,
                "start_period": "5s",
            },
            "environment": {"APP_ENV": "test"},
            "labels": {"team": "core"},
            "deploy": {
                "replicas": replicas,
                "resources": {
                    "limits": {"cpus": "0.5", "memory": "64m"},
                    "reservations": {"memory": "16m"},
                },
            },
            "logging": {"driver": "json-file", "options": {"max-size": "1m", "max-file": "2"}},
            "networks": {"internal": {}},
            "x-berth": {
                "health": {
                    "path": "/health",
                    "port": 8000,
                    "interval": "100ms",
                    "healthy_threshold": 2,
                },
                "progress_deadline": "15s",
            },
        }
    }
    if worker:
        svc["worker"] = {
            "image": "berth-test/app",
            "init": True,
            "stop_grace_period": "3s",
            "networks": ["internal"],
            "x-berth": {
                "strategy": "stop-first",
                "progress_deadline": "10s",
                # the crash image answers /health for ~0.3 s before it exits: a gate of 3
                # passes 250 ms apart must see it die
                "health": {
                    "path": "/health",
                    "port": 8000,
                    "interval": "250ms",
                    "healthy_threshold": 3,
                },
            },
        }
    return {"services": svc, "networks": {"internal": {}}}


def containers(client: Any, project: str, service: str = "api", *, all_: bool = True) -> list[Any]:
    return client.containers.list(
        all=all_,
        filters={
            "label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={service}",
            ]
        },
    )


def test_apply_from_nothing(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("1.0.0")
    s = tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "plan").code == 2
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.err
    cs = containers(docker_client, project)
    assert len(cs) == 2 and all(c.status == "running" for c in cs)
    c = cs[0]
    labels = c.labels
    assert labels["com.docker.compose.project"] == project
    assert labels["com.docker.compose.service"] == "api"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["berth.managed"] == "true" and labels["berth.tag"] == "1.0.0"
    assert labels["team"] == "core"
    rev = labels["berth.revision"]
    assert c.name == f"{project}-api-{rev[:8]}-{labels['com.docker.compose.container-number']}"
    hc = c.attrs["HostConfig"]
    assert hc["NanoCpus"] == 500_000_000 and hc["Memory"] == 64 * 1024 * 1024
    assert hc["MemoryReservation"] == 16 * 1024 * 1024
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert hc["Init"] is True
    assert c.attrs["Config"]["StopTimeout"] == 5
    assert c.attrs["Config"]["Healthcheck"]["Test"] == healthcheck()
    assert c.attrs["Config"]["Healthcheck"]["Interval"] == 1_000_000_000
    assert "APP_ENV=test" in c.attrs["Config"]["Env"]
    assert list(c.attrs["NetworkSettings"]["Networks"]) == [f"{project}_internal"]
    # Docker Compose v1 sees them as its own
    # v1 predates the top-level `name:` (the project comes from -p here)
    v1 = s.compose_file.with_name("v1.yml")
    v1.write_text(
        json.dumps({k: v for k, v in json.loads(s.compose_file.read_text()).items() if k != "name"})
    )
    ps = subprocess.run(
        ["docker-compose", "-p", project, "-f", str(v1), "ps"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ps.returncode == 0, ps.stderr
    assert all(x.name in ps.stdout for x in cs), ps.stdout
    assert berth(s.desired_dir, s.state_dir, "plan").code == 0
    st = berth(s.desired_dir, s.state_dir, "status", "--json")
    row = json.loads(st.out)[0]
    assert row["ready"] == 2 and row["running_tags"] == ["1.0.0"]


def test_start_first_keeps_replicas_healthy(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("1.0.0")
    app_image("2.0.0")
    s = tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    v1_ids = {c.id for c in containers(docker_client, project)}
    s = tmp_stack(compose(), {"api": {"tag": "2.0.0"}})

    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                cs = containers(docker_client, project, all_=False)
            except docker.errors.NotFound:  # listed, then removed before its inspect
                continue
            samples.append(
                sum(
                    1
                    for c in cs
                    if (c.attrs["State"].get("Health") or {}).get("Status") == "healthy"
                )
            )
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        r = berth(s.desired_dir, s.state_dir, "apply")
    finally:
        stop.set()
        t.join()
    assert r.code == 0, r.err
    assert len(samples) > 10
    assert min(samples) >= 2, samples
    after = containers(docker_client, project)
    assert len(after) == 2 and not ({c.id for c in after} & v1_ids)
    assert {c.labels["berth.tag"] for c in after} == {"2.0.0"}


def test_unhealthy_tag_rolls_back_and_is_quarantined(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("2.0.0")
    app_image("2.1.0-bad", mode="unhealthy")
    s = tmp_stack(compose(), {"api": {"tag": "2.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    before = sorted(c.id for c in containers(docker_client, project))
    tmp_stack(compose(), {"api": {"tag": "2.1.0-bad"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 3, (r.out, r.err)
    running = sorted(c.id for c in containers(docker_client, project, all_=False))
    assert running == before
    kept = [c for c in containers(docker_client, project) if c.labels["berth.tag"] == "2.1.0-bad"]
    assert len(kept) == 1 and kept[0].status == "exited"
    hist = json.loads(berth(s.desired_dir, s.state_dir, "history", "api", "--json").out)
    assert hist[0]["outcome"] == "rolled_back" and hist[0]["to_tag"] == "2.1.0-bad"
    assert "health" in hist[0]["reason"] or "deadline" in hist[0]["reason"]
    # the quarantined revision is not retried
    r2 = berth(s.desired_dir, s.state_dir, "apply")
    assert r2.code == 3 and "quarantined" in r2.out + r2.err
    assert sorted(c.id for c in containers(docker_client, project, all_=False)) == before
    assert (
        len([c for c in containers(docker_client, project) if c.labels["berth.tag"] == "2.1.0-bad"])
        == 1
    )
    # status shows what serves (the old revision) and the quarantine beside it
    [row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
    assert (row["serving"], row["ready"], row["quarantined"]) == (2, 0, True), row
    table = berth(s.desired_dir, s.state_dir, "status").out
    line = next(x for x in table.splitlines() if x.startswith(f"{project}/api"))
    assert " 2/2 " in line and "quarantined:" in line, table
    assert berth(s.desired_dir, s.state_dir, "plan").code == 0
    assert berth(s.desired_dir, s.state_dir, "retry", "api").code == 0
    assert berth(s.desired_dir, s.state_dir, "plan").code == 2


def test_stop_first_crash_restores_old(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str
) -> None:
    app_image("1.0.0")
    app_image("1.1.0-crash", mode="crash")
    s = tmp_stack(
        compose(replicas=1, worker=True), {"api": {"tag": "1.0.0"}, "worker": {"tag": "1.0.0"}}
    )
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    (old,) = containers(docker_client, project, "worker")
    first_start = old.attrs["State"]["StartedAt"]
    tmp_stack(
        compose(replicas=1, worker=True),
        {"api": {"tag": "1.0.0"}, "worker": {"tag": "1.1.0-crash"}},
    )
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 3, (r.out, r.err)
    old.reload()
    assert old.status == "running"
    assert old.attrs["State"]["StartedAt"] != first_start  # it was stopped, then started again
    running = containers(docker_client, project, "worker", all_=False)
    assert [c.id for c in running] == [old.id]
    hist = json.loads(berth(s.desired_dir, s.state_dir, "history", "worker", "--json").out)
    assert hist[0]["outcome"] == "rolled_back" and "exited" in hist[0]["reason"]
