"""Canary releases through the dynamic switch, judged by the new revision's own traffic.

Real nginx (with its Lua module) in the stack, real containers, keep-alive clients that
never retry. `GET /cgi-bin/try` answers the tag; a `flaky` image fails 1 request in 5.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.peers import parse_dynamic
from tests.e2e.test_zero_downtime import SITE, _wait_http, parse_events, stack_compose
from tests.integration.test_prometheus_dashboard import run_prometheus
from tests.support.berth import berth, popen_berth
from tests.support.daemon import free_port
from tests.support.images import ensure_nginx_image
from tests.support.load import Load, Sample
from tests.support.receiver import receiver

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]

STEPS = [20, 50]


def canary_compose(
    port: int, *, interval: str = "3s", analysis: dict[str, Any] | None = None
) -> dict[str, Any]:
    compose = stack_compose(port, switch="dynamic", upstreams_mount="rw")
    api = compose["services"]["api"]
    api["x-berth"]["canary"] = {
        "steps": STEPS,
        "interval": interval,
        "analysis": analysis or {"min_requests": 20, "success_rate": 95},
    }
    api["x-berth"]["progress_deadline"] = "20s"
    compose["services"]["nginx"]["restart"] = "always"
    return compose


class Stack:
    def __init__(self, s: Any, tmp_stack: Any, port: int, docker_client: Any, project: str):
        self.s, self.tmp_stack, self.port = s, tmp_stack, port
        self.docker, self.project = docker_client, project
        self.base = f"http://127.0.0.1:{port}"

    def write(self, tag: str, **kw: Any) -> None:
        self.tmp_stack(
            canary_compose(self.port, **kw),
            {"api": {"tag": tag}},
            files={"nginx/conf.d/site.conf": SITE},
        )

    def apply(
        self, tag: str, *args: str, **kw: Any
    ) -> tuple[int, list[tuple[float, str, str]], str]:
        self.write(tag, **kw)
        proc = popen_berth(self.s.desired_dir, self.s.state_dir, "apply", *args)
        _out, err = proc.communicate(timeout=180)
        return proc.returncode, parse_events(err.splitlines()), err

    def berth(self, *args: str) -> Any:
        return berth(self.s.desired_dir, self.s.state_dir, *args)

    def status(self) -> dict[str, Any]:
        rows = json.loads(self.berth("status", "--json").out)
        return next(r for r in rows if r["service"] == "api")

    def peers(self) -> Any:
        recorded = parse_dynamic((self.s.root / "nginx/upstreams/upstreams.conf").read_text())
        assert recorded is not None
        return recorded[1]["api_backend"]

    def nginx(self) -> Any:
        (c,) = self.docker.containers.list(
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    "com.docker.compose.service=nginx",
                ]
            }
        )
        return c


@pytest.fixture()
def stack(docker_client: Any, app_image: Any, tmp_stack: Any, project: str) -> Iterator[Stack]:
    ensure_nginx_image(client=docker_client)
    for tag in ("1.0.0", "2.0.0", "2.1.0"):
        app_image(tag)
    app_image("3.0.0-flaky", mode="flaky")
    port = free_port()
    s = tmp_stack(
        canary_compose(port),
        {"api": {"tag": "1.0.0"}},
        files={"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""},
    )
    st = Stack(s, tmp_stack, port, docker_client, project)
    code, _, err = st.apply("1.0.0")
    assert code == 0, err
    _wait_http(st.base + "/version")
    yield st


def _load(st: Stack) -> Load:
    return Load(
        st.base, keep_alive=True, get_threads=4, get_rate=80, get_path="/cgi-bin/try", extras=False
    )


def _share(samples: list[Sample], tag: str, t0: float, t1: float) -> float:
    window = [x for x in samples if t0 <= x.start and x.end <= t1 and x.body]
    mine = [x for x in window if x.body.split()[0] == tag]
    return len(mine) / max(1, len(window))


def _events(events: list[tuple[float, str, str]], phase: str) -> list[tuple[float, str]]:
    return [(t, msg) for t, ph, msg in events if ph == phase]


def test_a_canary_that_fails_one_request_in_five_is_aborted_at_its_first_step(
    stack: Stack,
) -> None:
    load = _load(stack)
    load.start()
    time.sleep(1)
    try:
        with receiver() as rx:
            code, events, err = stack.apply("3.0.0-flaky", "--notify", rx.url)
            notices = list(rx.payloads)
    finally:
        time.sleep(1)
        load.stop()
    assert code == 3, err
    canary = _events(events, "canary")
    assert canary[0][1].startswith(f"{STEPS[0]}% of requests"), canary
    assert canary[1][1].startswith("weight 0"), canary
    assert len([m for _, m in canary if "% of requests" in m]) == 1, "it went past step 1"
    reason = canary[1][1]
    assert "success_rate" in reason and "failed" in reason, reason
    samples = load.snapshot()
    share = _share(samples, "3.0.0-flaky", canary[0][0] + 0.5, canary[1][0])
    assert 0.08 <= share <= 0.35, f"the canary answered {share:.0%} at a {STEPS[0]}% step"
    late = [x for x in samples if x.start > canary[1][0] + 0.5 and "3.0.0" in x.body]
    assert not late, f"the withdrawn canary still answered: {late[:3]}"
    broken = [x for x in samples if x.status is None or x.error]
    assert not broken, f"{len(broken)} requests failed at the connection: {broken[:3]}"
    bad = [x for x in samples if x.status != 200]
    assert all(x.body.startswith("3.0.0-flaky") for x in bad), "only the canary may fail"
    row = stack.status()
    assert row["quarantined"] and "success_rate" in row["last_reason"]
    assert row["canary"] is None and row["running_tags"] == ["1.0.0"]
    assert len(stack.peers().sides) == 1
    # one notice, of the canary's abort, with the check that failed and its value
    [notice] = notices
    assert "canary" in notice["title"].lower() and "succeeded" not in notice["title"].lower()
    assert "success_rate" in notice["message"] and "3.0.0-flaky" in notice["message"]


def test_a_good_canary_is_promoted_step_by_step(stack: Stack) -> None:
    load = _load(stack)
    load.start()
    seen: list[dict[str, Any]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with_canary = stack.status().get("canary")
            if with_canary:
                seen.append(with_canary)
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        code, events, err = stack.apply("2.0.0")
    finally:
        stop.set()
        watcher.join(10)
        time.sleep(1)
        load.stop()
    assert code == 0, err
    weights = [m for _, m in _events(events, "canary")]
    assert [w.split("%")[0] for w in weights] == [str(x) for x in STEPS], weights
    passes = [m for _, m in _events(events, "analysis") if m.startswith("pass")]
    assert len(passes) >= len(STEPS), events
    (t_cut,) = [t for t, m in _events(events, "cutover")]
    steps = [t for t, _ in _events(events, "canary")]
    samples = load.snapshot()
    for (start, end), pct in zip(zip(steps, [*steps[1:], t_cut], strict=True), STEPS, strict=True):
        share = _share(samples, "2.0.0", start + 0.5, end)
        assert abs(share - pct / 100) < 0.17, f"step {pct}%: the new revision had {share:.0%}"
    assert _share(samples, "2.0.0", t_cut + 1, time.time()) > 0.99
    assert all(x.ok for x in samples), [x for x in samples if not x.ok][:3]
    assert {(c["step"], c["weight"], c["stable_weight"]) for c in seen} >= {(1, 20, 80)}
    assert stack.status()["canary"] is None


def test_pause_holds_a_step_and_promote_ends_the_canary(stack: Stack) -> None:
    stack.write("2.0.0", interval="2s")
    proc = popen_berth(stack.s.desired_dir, stack.s.state_dir, "apply")
    try:
        _until(lambda: stack.status().get("canary") is not None, "the canary to start")
        assert stack.berth("pause", "api").code == 0
        _until(lambda: (stack.status().get("canary") or {}).get("paused"), "the pause")
        time.sleep(5)  # more than the interval: a paused step holds
        held = stack.status()["canary"]
        assert (held["step"], held["weight"], held["paused"]) == (1, 20, True)
        assert stack.berth("promote", "api").code == 0
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    phases = [ph for _, ph, _ in parse_events(err.splitlines())]
    assert "cutover" in phases
    assert next(m for _, ph, m in parse_events(err.splitlines()) if ph == "canary").startswith(
        "20%"
    )
    assert stack.status()["running_tags"] == ["2.0.0"]
    assert stack.berth("promote", "api").code == 1  # nothing in progress any more


def test_an_operator_abort_withdraws_and_quarantines(stack: Stack) -> None:
    stack.write("2.0.0", interval="30s")
    proc = popen_berth(stack.s.desired_dir, stack.s.state_dir, "apply")
    try:
        _until(lambda: stack.status().get("canary") is not None, "the canary to start")
        assert stack.berth("abort", "api").code == 0
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    row = stack.status()
    assert row["quarantined"] and "operator" in row["last_reason"]
    assert row["running_tags"] == ["1.0.0"]


def test_killing_berth_mid_canary_leaves_both_sides_serving_and_a_rerun_finishes(
    stack: Stack,
) -> None:
    load = _load(stack)
    load.start()
    try:
        stack.write("2.0.0", interval="3s")
        proc = popen_berth(stack.s.desired_dir, stack.s.state_dir, "apply")
        _until(lambda: stack.status().get("canary") is not None, "the canary to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        time.sleep(2)
        sides = {s.revision: s.weight for s in stack.peers().sides}
        assert len(sides) == 2 and sorted(sides.values()) == [20, 80], sides
        code, events, err = stack.apply("2.0.0", interval="3s")
        assert code == 0, err
        assert next(m for _, m in _events(events, "canary")).startswith("20%"), "not resumed"
    finally:
        time.sleep(1)
        load.stop()
    samples = load.snapshot()
    assert all(x.ok for x in samples), [x for x in samples if not x.ok][:3]
    assert stack.status()["running_tags"] == ["2.0.0"]
    assert stack.status()["canary"] is None


def test_killing_nginx_mid_canary_brings_it_back_on_the_canary_weights(stack: Stack) -> None:
    stack.write("2.0.0", interval="6s")
    load = _load(stack)  # traffic for the analysis (its failures while nginx is down: expected)
    load.start()
    proc = popen_berth(stack.s.desired_dir, stack.s.state_dir, "apply")
    try:
        _until(lambda: stack.status().get("canary") is not None, "the canary to start")
        nginx = stack.nginx()
        # A crash, not `docker kill` (which Docker counts as a manual stop): SIGKILL to the
        # master from the host; the restart policy brings it back.
        os.kill(int(nginx.attrs["State"]["Pid"]), signal.SIGKILL)
        _until(lambda: stack.nginx().status == "running", "nginx to restart", timeout=30)
        _wait_http(stack.base + "/version")
        served = {_get(stack.base + "/cgi-bin/try").split()[0] for _ in range(60)}
        assert served == {"1.0.0", "2.0.0"}, served  # both sides, from the recorded weights
        _out, err = proc.communicate(timeout=120)
    finally:
        load.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert {_get(stack.base + "/version") for _ in range(10)} == {"2.0.0"}


def test_a_promql_check_through_a_real_prometheus_aborts_the_canary(
    stack: Stack, tmp_path: Path
) -> None:
    value = {"errors": 7.0}

    class Exporter(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"canary_probe_errors {value['errors']}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    exporter = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    try:
        with run_prometheus(tmp_path, f"127.0.0.1:{exporter.server_address[1]}") as prom:
            _until(lambda: _prom_has(prom), "prometheus to scrape the exporter", timeout=30)
            analysis = {
                "min_requests": 5,
                "success_rate": 90,
                "prometheus": prom,
                "queries": [{"query": 'max(canary_probe_errors{job="berth"})', "max": 0}],
            }
            load = _load(stack)
            load.start()
            try:
                code, _, err = stack.apply("2.1.0", analysis=analysis)
            finally:
                load.stop()
    finally:
        exporter.shutdown()
    assert code == 3, err
    reason = stack.status()["last_reason"]
    assert "query[0]" in reason and "= 7" in reason, reason


def _prom_has(base: str) -> bool:
    import httpx

    r = httpx.get(f"{base}/api/v1/query", params={"query": "canary_probe_errors"}, timeout=2)
    return bool(r.json()["data"]["result"])


def _get(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=5, trust_env=False).text.strip()


def _until(check: Any, what: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (StopIteration, KeyError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
