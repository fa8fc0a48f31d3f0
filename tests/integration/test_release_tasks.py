"""Release tasks, smoke checks and hooks through `berth apply` on the real Docker engine
(issue 15): once per revision, before any new container; a failure leaves the old version
serving; a controller killed mid-task finds the task and waits for it, never running it
twice."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.berth import berth, popen_berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def compose(
    runs: Path,
    release: str,
    *,
    smoke: list[dict[str, Any]] | None = None,
    hooks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    berth_opts: dict[str, Any] = {
        "health": {"path": "/health", "port": 8000, "interval": "100ms"},
        "progress_deadline": "20s",
        "release": [{"name": "migrate", "command": ["sh", "-c", release], "timeout": "30s"}],
    }
    if smoke is not None:
        berth_opts["smoke"] = smoke
    if hooks is not None:
        berth_opts["hooks"] = hooks
    return {
        "services": {
            "api": {
                "image": "berth-test/app",
                "init": True,
                "stop_grace_period": "2s",
                "restart": "unless-stopped",  # the task must not inherit it
                "healthcheck": {"test": healthcheck(), "interval": "1s", "retries": 3},
                "volumes": [f"{runs}:/runs"],
                "deploy": {"replicas": 2},
                "x-berth": berth_opts,
            }
        }
    }


def _containers(client: Any, project: str, **labels: str) -> list[Any]:
    wanted = [f"com.docker.compose.project={project}"] + [f"{k}={v}" for k, v in labels.items()]
    return list(client.containers.list(all=True, filters={"label": wanted}))


def _runs(runs: Path) -> list[str]:
    f = runs / "migrate.log"
    return f.read_text().split() if f.exists() else []


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    d = tmp_path / "runs"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


def test_a_release_task_runs_once_before_the_new_containers_and_is_shown(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str, runs: Path
) -> None:
    app_image("1.0.0")
    hook_log = runs / "hooks.log"
    hooks = {
        "success": [{"command": ["sh", "-c", f'echo "$$BERTH_EVENT $$BERTH_TO_TAG" >> {hook_log}']}]
    }
    smoke = [{"name": "version", "path": "/version", "body_matches": r"^1\.0\.0"}]
    s = tmp_stack(
        compose(runs, "echo run >> /runs/migrate.log; echo migrated", smoke=smoke, hooks=hooks),
        {"api": {"tag": "1.0.0"}},
    )
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, (r.out, r.err)
    assert _runs(runs) == ["run"]
    ran_at = (runs / "migrate.log").stat().st_mtime_ns  # the host's clock, as Docker's
    replicas = _containers(docker_client, project, **{"berth.managed": "true"})
    assert len(replicas) == 2
    for c in replicas:  # the task ran (and ended) before the first replica was created
        created = c.attrs["Created"]
        assert ran_at < _epoch_ns(created), (ran_at, created)
    assert _containers(docker_client, project, **{"com.docker.compose.oneoff": "True"}) == []
    assert hook_log.read_text() == "success 1.0.0\n"
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0  # nothing changed
    rows = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
    [task] = rows[0]["release"]
    assert (task["name"], task["state"], task["exit_code"]) == ("migrate", "succeeded", 0)
    table = berth(s.desired_dir, s.state_dir, "status").out
    section = table[table.index("TASKS AND CHECKS") :].splitlines()
    assert section[1].startswith(f"{project}/api") and "release migrate: succeeded (" in section[1]
    assert any("smoke before: 2 smoke check(s) passed" in line for line in section), table
    # scaled up: the same revision, so the task does not run again
    tmp_stack(
        compose(runs, "echo run >> /runs/migrate.log", smoke=smoke, hooks=hooks),
        {"api": {"tag": "1.0.0", "replicas": 3}},
    )
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    assert len(_runs(runs)) == 1
    text = berth(s.desired_dir, s.state_dir, "history", "api").out
    assert "release migrate: done" in text and "smoke before: 2 smoke check(s) passed" in text
    assert "hook success: success hook sh: exit 0" in text


def _epoch_ns(docker_time: str) -> int:
    """Docker's RFC 3339 time with nanoseconds, as integer nanoseconds since the epoch."""
    whole, _, frac = docker_time.rstrip("Z").partition(".")
    secs = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return int(secs) * 10**9 + int((frac + "000000000")[:9])


def test_a_failing_release_task_leaves_the_old_version_serving(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str, runs: Path
) -> None:
    app_image("1.0.0")
    app_image("2.0.0")
    s = tmp_stack(compose(runs, "echo ok"), {"api": {"tag": "1.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    before = sorted(c.id for c in _containers(docker_client, project, **{"berth.managed": "true"}))
    tmp_stack(compose(runs, "echo 'relation notes exists' >&2; exit 3"), {"api": {"tag": "2.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code != 0
    now = _containers(docker_client, project, **{"berth.managed": "true"})
    assert sorted(c.id for c in now) == before and all(c.status == "running" for c in now)
    [hist] = json.loads(berth(s.desired_dir, s.state_dir, "history", "api", "--json").out)[:1]
    assert hist["outcome"] == "failed" and hist["to_tag"] == "2.0.0"
    assert (
        "release task failed: migrate: exited with code 3: relation notes exists" in hist["reason"]
    )
    [kept] = _containers(docker_client, project, **{"com.docker.compose.oneoff": "True"})
    assert kept.status == "exited" and kept.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    again = berth(s.desired_dir, s.state_dir, "apply")
    assert again.code == 3 and "quarantined" in again.out  # not retried in a loop
    assert len(_containers(docker_client, project, **{"com.docker.compose.oneoff": "True"})) == 1


def test_berth_killed_during_a_release_task_waits_for_it_and_never_runs_it_twice(
    docker_client: Any, app_image: Callable[..., str], tmp_stack: Any, project: str, runs: Path
) -> None:
    app_image("1.0.0")
    task = "echo run >> /runs/migrate.log; sleep 3; echo done >> /runs/migrate.done"
    s = tmp_stack(compose(runs, task), {"api": {"tag": "1.0.0"}})
    first = popen_berth(s.desired_dir, s.state_dir, "apply")
    deadline = time.monotonic() + 60
    while not _runs(runs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _runs(runs), "the task never started"
    first.send_signal(signal.SIGKILL)  # mid-task: recorded as running, its container runs
    first.communicate(timeout=10)
    [oneoff] = _containers(docker_client, project, **{"com.docker.compose.oneoff": "True"})
    assert oneoff.status == "running"
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, (r.out, r.err)
    assert len(_runs(runs)) == 1 and (runs / "migrate.done").read_text() == "done\n"
    assert len(_containers(docker_client, project, **{"berth.managed": "true"})) == 2
    [task_row] = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)[0]["release"]
    assert task_row["state"] == "succeeded"
