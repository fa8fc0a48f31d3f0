"""SIGKILL `berth apply` in the middle of a rollout, then apply again: converged, with no
duplicate and no orphan container (DESIGN §4, crash safety by construction)."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.integration.test_apply import compose, containers
from tests.support.berth import berth, popen_berth

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Progress lines `apply` prints (plain mode) at each step; killing right after one of them
# lands the SIGKILL inside that step. The last case kills on elapsed time, mid-gate.
POINTS = [("create", 0.0), ("create", 0.15), ("cutover", 0.0), ("retire", 0.05), (None, 1.2)]


@pytest.mark.parametrize(
    ("marker", "delay"), POINTS, ids=[f"{m or 'timer'}+{d}s" for m, d in POINTS]
)
def test_sigkill_mid_rollout_then_apply_converges(
    marker: str | None,
    delay: float,
    docker_client: Any,
    app_image: Any,
    tmp_stack: Any,
    project: str,
) -> None:
    app_image("1.0.0")
    app_image("2.0.0-slow", mode="slow")  # a 3 s gate widens every window
    s = tmp_stack(compose(), {"api": {"tag": "1.0.0"}})
    assert berth(s.desired_dir, s.state_dir, "apply").code == 0
    tmp_stack(compose(), {"api": {"tag": "2.0.0-slow"}})

    proc = popen_berth(s.desired_dir, s.state_dir, "apply")
    assert proc.stderr is not None
    seen = []
    if marker is None:
        time.sleep(delay)
    else:
        for line in proc.stderr:
            seen.append(line)
            if f" {marker}:" in line:
                break
        time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, f"apply ended before the kill: {seen}"

    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, (r.out, r.err)
    cs = containers(docker_client, project)
    assert len(cs) == 2, [c.name for c in cs]
    assert {c.labels["berth.tag"] for c in cs} == {"2.0.0-slow"}
    assert sorted(c.labels["com.docker.compose.container-number"] for c in cs) == ["1", "2"]
    assert all(c.status == "running" for c in cs)
    assert berth(s.desired_dir, s.state_dir, "plan").code == 0
    # the interrupted rollout is not left "in progress" forever
    hist = berth(s.desired_dir, s.state_dir, "history", "api").out
    assert "succeeded" in hist.splitlines()[0]
