"""`berth run` fed hostile desired/ files: each is marked invalid, the running stack is not
touched, and the daemon stays responsive (/healthz keeps answering 200 quickly) throughout.

The inputs are of the kinds that once crashed, hung or stalled the daemon: an alias bomb,
deep nesting, a FIFO, a backtracking-prone allowed_tags pattern with a long tag, a huge
replica count, look-alike digits, and every way out of the operator's tree.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_apply import compose, containers
from tests.support.daemon import berth_run, wait_for
from tests.unit.test_hostile_inputs import BOMB

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class Pulse:
    """Polls /healthz every 50 ms in the background; records failures and the slowest."""

    def __init__(self, url: str) -> None:
        self.url, self.bad, self.slowest = url, [], 0.0  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stop.wait(0.05):
                t0 = time.monotonic()
                try:
                    code = client.get(self.url + "/healthz").status_code
                except httpx.HTTPError as exc:
                    code = repr(exc)  # type: ignore[assignment]
                self.slowest = max(self.slowest, time.monotonic() - t0)
                if code != 200:
                    self.bad.append(code)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def test_hostile_desired_files_change_nothing_and_never_stall(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    app_image("1.0.0")
    spec = compose()
    spec["services"]["api"]["x-berth"]["allowed_tags"] = "(a+)+$|1.0.0"
    s = tmp_stack(spec, {"api": {"tag": "1.0.0"}})
    good = s.desired_file.read_text()
    head = f"project: {project}\ncompose: ../compose/docker-compose.yml\n"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "c.yml").write_text("# SECRET-LINE\nservices: {}\n")
    (s.desired_dir / "evil.yml").write_text("services:\n  api:\n    image: evil\n")
    hostile = {
        "alias-bomb": good + BOMB,
        "deep-nesting": good + "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)),
        "redos-tag": head + 'services:\n  api:\n    tag: "' + "a" * 120 + '-"\n',
        "replicas-billion": good + "    replicas: 1000000000\n",
        "arabic-digits": head + 'services:\n  api:\n    tag: "\u0661\u0662\u0663"\n',
        "compose-in-desired": good.replace("../compose/docker-compose.yml", "evil.yml"),
        "compose-outside": good.replace(
            "../compose/docker-compose.yml", str(tmp_path / "outside" / "c.yml")
        ),
        "tagged-seq": good + "    replicas: !foo [a]\n",
    }
    with berth_run(s.desired_dir, s.state_dir, log=tmp_path / "berth.log") as d:
        ids = sorted(c.id for c in containers(docker_client, project))
        assert len(ids) == 2
        pulse = Pulse(d.url)
        try:
            for name, text in hostile.items():
                s.desired_file.write_text(text)
                wait_for(
                    lambda: d.metric("berth_desired_valid", file=str(s.desired_file)) == 0.0,
                    15,
                    f"{name}: never reported invalid",
                )
                s.desired_file.write_text(good)
                wait_for(
                    lambda: d.metric("berth_desired_valid", file=str(s.desired_file)) == 1.0,
                    15,
                    f"{name}: the good file was not taken back",
                )
            fifo = s.desired_dir / "blocked.yaml"
            os.mkfifo(fifo)  # a FIFO named like a desired file: reported, never waited on
            wait_for(
                lambda: d.metric("berth_desired_valid", file=str(fifo)) == 0.0,
                15,
                "the FIFO was not reported invalid",
            )
            assert d.get("/healthz").status_code == 200
        finally:
            pulse.stop()
        assert pulse.bad == [], pulse.bad
        assert pulse.slowest < 5.0, f"/healthz took {pulse.slowest:.1f} s at worst"
        assert sorted(c.id for c in containers(docker_client, project)) == ids
        assert d.proc.poll() is None, "the daemon died"
    log = d.log.read_text()
    assert "SECRET-LINE" not in log
    assert "Traceback" not in log, log[-3000:]
