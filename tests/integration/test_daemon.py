"""`berth run` against the real Docker engine: watch, converge, self-heal, supersede,
broken files, event-stream loss, SIGTERM, and a real Prometheus scraping it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_apply import compose, containers
from tests.support.daemon import SocketProxy, berth_run, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def tags(client: Any, project: str, service: str = "api", *, running: bool = True) -> list[str]:
    """One list call, no per-container inspect (containers come and go under the daemon)."""
    rows = client.api.containers(
        all=not running,
        filters={
            "label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={service}",
            ]
        },
    )
    return sorted(r["Labels"]["berth.tag"] for r in rows)


def test_watch_converge_heal_broken_file_sigterm(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    app_image("1.0.0")
    app_image("2.0.0")
    s = tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
    with berth_run(s.desired_dir, s.state_dir, log=tmp_path / "berth.log") as d:
        assert tags(docker_client, project) == ["1.0.0", "1.0.0"]
        assert d.get("/healthz").status_code == 200
        # a new tag written to desired/ rolls out by itself
        tmp_stack(compose(), {"api": {"tag": "2.0.0"}})
        wait_for(
            lambda: tags(docker_client, project) == ["2.0.0", "2.0.0"], 60, "2.0.0 never rolled out"
        )
        wait_for(
            lambda: d.metric("berth_rollouts_total", service="api", outcome="succeeded") == 2.0,
            10,
            "rollout not counted",
        )
        status = d.get("/status").json()
        assert status[0]["desired_tag"] == "2.0.0"
        # a container removed by hand comes back, and is counted as drift
        victim = containers(docker_client, project)[0]
        victim.remove(force=True)
        wait_for(
            lambda: len(containers(docker_client, project, all_=False)) == 2,
            30,
            "removed container never came back",
        )
        wait_for(
            lambda: (d.metric("berth_drift_corrections_total", service="api") or 0) >= 1,
            10,
            "drift not counted",
        )
        # a broken desired file: containers untouched, metric at 0, fixing it resumes
        ids = sorted(c.id for c in containers(docker_client, project))
        s.desired_file.write_text("project: [unclosed\n")
        wait_for(
            lambda: d.metric("berth_desired_valid", file=str(s.desired_file)) == 0.0,
            10,
            "berth_desired_valid never went to 0",
        )
        time.sleep(1.0)
        assert sorted(c.id for c in containers(docker_client, project)) == ids
        assert "invalid desired state" in d.log.read_text()
        tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
        wait_for(
            lambda: tags(docker_client, project) == ["1.0.0", "1.0.0"],
            60,
            "fixed file did not resume",
        )
        assert d.metric("berth_desired_valid", file=str(s.desired_file)) == 1.0
        # SIGTERM: exits 0 promptly
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 10
    for line in d.log.read_text().splitlines():
        json.loads(line)  # structured: one JSON object per line


def test_supersede_in_gate(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    app_image("1.0.0")
    app_image("2.0.0-slow", mode="slow")
    app_image("3.0.0")
    s = tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
    with berth_run(s.desired_dir, s.state_dir, log=tmp_path / "berth.log") as d:
        tmp_stack(compose(), {"api": {"tag": "2.0.0-slow"}})
        wait_for(lambda: "2.0.0-slow" in tags(docker_client, project), 20, "v2 never started")
        time.sleep(0.5)  # v2 is in its gate (it needs 3 s to become healthy)
        tmp_stack(compose(), {"api": {"tag": "3.0.0"}})
        wait_for(
            lambda: tags(docker_client, project, running=False) == ["3.0.0", "3.0.0"],
            60,
            "v3 never converged alone",
        )
        log = d.log.read_text()
        assert "superseding the rollout in flight" in log
        hist = [json.loads(line) for line in log.splitlines()]
        starts = [h for h in hist if h.get("event") == "rollout.start"]
        assert len(starts) >= 2
        assert any(h.get("event") == "rollout.superseded" for h in hist)
    # one rollout per service at a time: starts and ends alternate in the log
    depth = 0
    for h in hist:
        ev = h.get("event", "")
        if ev == "rollout.start":
            depth += 1
            assert depth == 1, "two rollouts of one service overlapped"
        elif ev in (
            "rollout.succeeded",
            "rollout.rolled_back",
            "rollout.failed",
            "rollout.superseded",
        ):
            depth -= 1


def test_resync_heals_when_event_stream_is_lost(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    app_image("1.0.0")
    s = tmp_stack(compose(replicas=1), {"api": {"tag": "1.0.0"}})
    proxy = SocketProxy(str(tmp_path / "docker.sock"))
    proxy.start()
    try:
        with berth_run(
            s.desired_dir,
            s.state_dir,
            resync=3.0,
            docker_host=f"unix://{proxy.path}",
            log=tmp_path / "berth.log",
        ) as d:
            proxy.silence_events()
            time.sleep(0.5)
            containers(docker_client, project)[0].remove(force=True)
            t0 = time.monotonic()
            wait_for(
                lambda: len(containers(docker_client, project, all_=False)) == 1,
                30,
                "resync never restored the container",
            )
            healed = time.monotonic() - t0
            wait_for(
                lambda: d.metric("berth_drift_corrections_total", service="api") == 1.0,
                20,
                "drift correction not counted",
            )
            assert healed > 0.5, "healed before any resync: events were not cut"
    finally:
        proxy.stop()


def test_real_prometheus_scrapes_berth_run(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    """Every dashboard panel's query, evaluated by Prometheus 2.42 scraping a live daemon."""
    from tests.integration.test_prometheus_dashboard import (
        BUILD_PANELS,
        GIT_PANELS,
        NOTIFY_PANELS,
        REGISTRY_PANELS,
        TASK_PANELS,
        TRAFFIC_PANELS,
        check_dashboard_against,
    )

    app_image("1.0.0")
    app_image("2.0.0")
    app_image("2.1.0-bad", mode="unhealthy")
    svc = compose(replicas=1)
    svc["services"]["api"]["x-berth"]["progress_deadline"] = "4s"
    s = tmp_stack(svc, {"api": {"tag": "1.0.0"}})
    with berth_run(s.desired_dir, s.state_dir, resync=5.0, log=tmp_path / "berth.log") as d:
        tmp_stack(svc, {"api": {"tag": "2.0.0"}})
        wait_for(
            lambda: d.metric("berth_rollouts_total", service="api", outcome="succeeded") == 2.0,
            60,
            "2.0.0 not rolled out",
        )
        tmp_stack(svc, {"api": {"tag": "2.1.0-bad"}})
        wait_for(
            lambda: d.metric("berth_rollouts_total", service="api", outcome="rolled_back") == 1.0,
            60,
            "bad tag not rolled back",
        )
        target = d.url.removeprefix("http://")
        (tmp_path / "prom").mkdir()
        # this stack has no nginx and builds nothing: those panels have nothing to show
        results = check_dashboard_against(
            tmp_path / "prom",
            target,
            require_finite=False,
            may_be_empty=TRAFFIC_PANELS
            | BUILD_PANELS
            | GIT_PANELS
            | NOTIFY_PANELS
            | REGISTRY_PANELS
            | TASK_PANELS,
        )
        assert results["__service__"], results


def test_sigterm_mid_rollout_is_safe_and_restart_resumes(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    """SIGTERM while a new version is in its gate: the daemon abandons the rollout safely
    (old containers never stopped, new ones removed), exits 0; a restart rolls it out."""
    app_image("1.0.0")
    app_image("2.0.0-slow", mode="slow")
    s = tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
    with berth_run(s.desired_dir, s.state_dir, log=tmp_path / "a.log") as d:
        v1 = sorted(c.id for c in containers(docker_client, project))
        tmp_stack(compose(), {"api": {"tag": "2.0.0-slow"}})
        wait_for(lambda: "2.0.0-slow" in tags(docker_client, project), 20, "v2 never started")
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
    assert sorted(c.id for c in containers(docker_client, project, all_=False)) == v1
    assert tags(docker_client, project, running=False) == ["1.0.0", "1.0.0"]
    with berth_run(s.desired_dir, s.state_dir, log=tmp_path / "b.log"):
        wait_for(
            lambda: tags(docker_client, project, running=False) == ["2.0.0-slow"] * 2,
            60,
            "restart did not resume the rollout",
        )
