"""`make demo` end to end: the README's main command, as a newcomer runs it (issue: ship it).

It builds the example images and Berth's own image offline, runs Berth as a non-root
container against the example stack, upgrades 1.0.0 -> 2.0.0 under live traffic and rolls
back a broken 3.0.0; the API's schema migrations run as its release task. The demo runs the
stack with docker-compose.demo.yml (health checks every second instead of every 10 s).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.peers import is_dynamic

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def demo() -> Iterator[subprocess.CompletedProcess[str]]:
    subprocess.run(["bash", "scripts/demo-down.sh"], cwd=ROOT, capture_output=True, check=False)
    try:
        yield subprocess.run(
            ["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False
        )
    finally:
        subprocess.run(["bash", "scripts/demo-down.sh"], cwd=ROOT, capture_output=True, check=False)


def test_make_demo(demo: subprocess.CompletedProcess[str], docker_client: Any) -> None:
    out = demo.stdout + demo.stderr
    # the demo's own diagnosis (failed requests, nginx errors, rollout events) is on stdout
    assert demo.returncode == 0, demo.stdout[-9000:] + "\n--- stderr:\n" + demo.stderr[-1500:]
    summary = json.loads((ROOT / ".demo/load.json").read_text())
    assert summary["failed"] == 0, summary
    assert summary["requests"] > 100, summary
    assert {"1.0.0", "2.0.0"} <= set(summary["versions"]), summary
    assert "3.0.0" not in summary["versions"], "the broken release received traffic"
    assert "failed: 0" in out
    # issue 15: each release's migrations ran as its release task before its replicas
    # started, and the notes written through nginx went to PostgreSQL
    assert re.search(r"schema_migrations: 1 \([0-9:]+\)\n", out), out[-3000:]  # after 1.0.0
    assert re.search(r"schema_migrations: 1 \([0-9:]+\), 2 \([0-9:]+\)\n", out)  # 2.0.0
    assert '"author":"demo"' in out
    # 3.1.0's migration failed in its release task: the schema stayed at 2, none of its
    # replicas started, the failure and its log tail are in the history, and counted
    after = out[out.index("a broken migration") :]
    assert re.search(r"schema_migrations: 1 \([0-9:]+\), 2 \([0-9:]+\)\n", after), after[:2000]
    assert "release task failed: migrate: exited with code 1" in after, after[-3000:]
    assert re.search(r'berth_release_tasks_total\{.*result="failed".*\} 1\.0', after), after
    assert "3.1.0" not in summary["versions"], "the release with the broken migration served"
    # Berth ran as a non-root container and did the rollouts
    berth = docker_client.containers.get("berth-demo_berth_1")
    assert berth.attrs["Config"]["User"] == "10001:10001"
    assert berth.attrs["State"]["Health"]["Status"] == "healthy"
    logs = berth.logs().decode()
    assert '"event": "rollout.succeeded"' in logs and '"event": "rollout.rolled_back"' in logs
    api = docker_client.containers.list(
        filters={"label": ["com.docker.compose.project=gesalps", "com.docker.compose.service=api"]}
    )
    assert {c.labels["berth.tag"] for c in api} == {"2.0.0"} and len(api) == 2
    # the example nginx has the Lua module: the stack ends on the dynamic switch
    assert is_dynamic((ROOT / ".demo/nginx/upstreams/upstreams.conf").read_text())
