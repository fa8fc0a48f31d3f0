"""Every dashboard panel returns data from a real Prometheus scraping Berth's metrics.

A unit test can check that the dashboard names only §7 metrics; only a real Prometheus 2.42
(Debian's, the one operators run) proves the PromQL parses, the label matching joins and
each panel has something to draw. The scrape target is an argument of
`check_dashboard_against`, so the same check can point at a live `berth run` daemon.

Here the target is a tiny HTTP server in a thread serving `Metrics(...).render()` of a
registry populated like a controller with two services would be; each scrape records a
little more activity, so rates and quantiles are real numbers rather than 0 or NaN.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from controller.adapters.sqlite_store import SqliteStateStore
from controller.core.gitsync import SyncResult
from controller.core.webhook import Verdict
from controller.shell.daemon.git_metrics import GitMetrics
from controller.shell.daemon.metrics import Metrics
from controller.shell.rollout.results import Event
from tests.unit.test_alert_rules import ALERTS, dashboard_exprs, load_dashboard
from tests.unit.test_metrics import add_traffic

pytestmark = pytest.mark.slow

JOB = "berth"  # the job name the dashboard's `up{job=~"berth.*"}` and the alerts expect
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1m",
    "${stack}": ".*",
    "${service}": ".*",
    "$stack": ".*",
    "$service": ".*",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the scrape target ---------------------------------------------------------------------


def populate(m: Metrics, *, now: float) -> None:
    """A controller with two services that has seen every kind of event once."""
    services = [("shop", "api"), ("shop", "worker")]
    m.known_services(services)
    m.desired_valid("desired/shop.yaml", True)
    m.desired_valid("desired/blog.yaml", False)
    m.info("shop", "api", desired_tag="1.4.2", running_tag="1.4.2")
    m.info("shop", "worker", desired_tag="2.0.1", running_tag="2.0.0")
    m.replicas("shop", "api", desired=2, ready=2)
    m.replicas("shop", "worker", desired=2, ready=1)
    m.rollout("shop", "api", "succeeded", 7.5, now=now - 120)
    m.rollout("shop", "worker", "succeeded", 12.0, now=now - 3600)
    m.rollout("shop", "worker", "rolled_back", 45.0, now=now)
    m.rollout("shop", "api", "failed", 0.4, now=now)
    m.rollout("shop", "api", "unchanged", 0.0, now=now)
    m.drift("shop", "worker")
    m.proxy_reload("success")
    m.proxy_reload("error")
    m.reconcile("success", 0.004)
    m.reconcile("error", 1.2)


def activity(m: Metrics) -> Callable[[], None]:
    """What happens between two scrapes: so every rate() window sees an increase."""
    outcomes = ("succeeded", "rolled_back", "failed")
    count = iter(range(1_000_000))

    def tick() -> None:
        n = next(count)
        m.reconcile("success", 0.002 + 0.001 * (n % 5))
        if n % 4 == 3:
            m.reconcile("error", 0.8)
        m.rollout("shop", "api", outcomes[n % 3], 5.0 + n % 7, now=time.time())
        m.rollout("shop", "worker", "succeeded", 20.0 + n % 11, now=time.time())
        m.drift("shop", "api")
        m.proxy_reload("success" if n % 2 else "error")
        m.build("shop", "api", ("built", "cached")[n % 2], 30.0 + n % 13)
        m.images.pull("shop", "api", ("pulled", "failed")[n % 2], 0.5 + n % 3)
        m.images.update("shop", "api", ("committed", "proposed")[n % 2])
        m.images.scan("shop", "api", ok=n % 5 != 4)
        # release tasks, smoke checks and hooks (issue 15), as the executor's events say
        ok = n % 3 != 2  # every series moves at every tick: a rate() window sees each
        for phase, task, secs in (
            ("release-succeeded" if ok else "release-failed", "migrate", 2.0 + n % 5),
            *(("smoke-passed" if ok else "smoke-failed", p, 0.2) for p in ("before", "bake")),
            *(
                ("hook-ok" if ok else "hook-failed", e, 0.1)
                for e in ("start", "success", "rollback")
            ),
        ):
            m.tasks.feed(Event("shop", "api", phase, "", time.time(), task_seconds=secs, task=task))

    return tick


@contextlib.contextmanager
def serve_metrics(m: Metrics, on_scrape: Callable[[], None]) -> Iterator[str]:
    """Serve `/metrics` on 127.0.0.1 (free port) in a thread; yields "host:port"."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            on_scrape()
            body = m.render()
            self.send_response(200)
            self.send_header("Content-Type", m.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- Prometheus ----------------------------------------------------------------------------


def _config(target: str) -> str:
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {ALERTS}\n"
        f"scrape_configs:\n  - job_name: {JOB}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )


@contextlib.contextmanager
def run_prometheus(workdir: Path, target: str) -> Iterator[str]:
    """A real Prometheus scraping `target` every second; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus not found: run `bash scripts/ensure-docker.sh` (as root), which "
            "installs Debian's `prometheus` package.",
            pytrace=False,
        )
    config = workdir / "prometheus.yml"
    config.write_text(_config(target))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ready(base), timeout=30, what="prometheus /-/ready", proc=proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(
    check: Callable[[], bool], *, timeout: float, what: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode} while waiting for {what}")
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def query(base: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; fails the test on a PromQL error (with the expression)."""
    response = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scraped_enough(base: str, *, job: str = JOB, scrapes: int = 3) -> bool:
    """The target is up and Prometheus holds at least `scrapes` samples of it."""
    up = query(base, f'up{{job="{job}"}}')
    if not up or up[0]["value"][1] != "1":
        return False
    counted = query(base, f'count_over_time(up{{job="{job}"}}[5m])')
    return bool(counted) and float(counted[0]["value"][1]) >= scrapes


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


# Panels fed by nginx's counters and canaries: a daemon whose stacks have no dynamic-switch
# nginx (or no canary) has no series for them.
TRAFFIC_PANELS = frozenset(
    {
        "Requests by revision",
        "Error ratio by revision",
        "Upstream p99 by revision",
        "Canary weight",
        "Canary analysis checks",
    }
)
# Panels fed by builds on the host: a stack without a compose `build:` has no series.
BUILD_PANELS = frozenset({"Image builds by result", "Image build duration p90"})
# Panels of the remote git source (`berth run --git-url`): no series without one.
# Registry panels with no series until a pull happens or a service has `x-berth.update`.
REGISTRY_PANELS = frozenset({"Image pull duration p90", "Image-update automation"})
GIT_PANELS = frozenset(
    {"Git source: syncs and webhooks by result", "Git source: time since last sync"}
)
# Release tasks' series appear with a task's first run (their label is its name); the
# duration histograms of smoke checks and hooks with their first run.
TASK_PANELS = frozenset(
    {
        "Release tasks by result, and p90 duration",
        "Smoke checks by phase and result, and p90 duration",
        "Hooks by event and result, and p90 duration",
    }
)
# Fed only when notifications are configured (`--notify`).
NOTIFY_PANELS = frozenset({"Notifications by kind and result"})


def check_dashboard_against(
    workdir: Path,
    target: str,
    *,
    require_finite: bool = True,
    may_be_empty: frozenset[str] = frozenset(),
) -> dict[str, list[dict[str, Any]]]:
    """Scrape `target` with a real Prometheus and evaluate every dashboard expression.

    `require_finite=False` suits a quiet live daemon, whose histograms may not have moved
    within a minute (quantiles of zero rates are NaN, which still counts as data).
    """
    results: dict[str, list[dict[str, Any]]] = {}
    with run_prometheus(workdir, target) as base:
        deadline = time.monotonic() + 60
        while not scraped_enough(base):
            assert time.monotonic() < deadline, f"target {target} never scraped 3 times"
            time.sleep(0.25)
        for title, expr in dashboard_exprs(load_dashboard()):
            promql = substitute(expr)
            result = query(base, promql)
            assert result or title in may_be_empty, f"panel {title!r}: no data for {promql}"
            if require_finite:
                values = [float(r["value"][1]) for r in result]
                assert all(math.isfinite(v) for v in values), f"{title!r}: {promql} -> {values}"
            results[promql] = result
        results["__rules__"] = _rule_health(base)
        results["__stack__"] = _label_values(base, "project")
        results["__service__"] = _label_values(base, "service")
    return results


def _rule_health(base: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/rules", timeout=10).json()
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def _label_values(base: str, label: str) -> list[dict[str, Any]]:
    """What the dashboard's `label_values(berth_service_info, LABEL)` variable would list."""
    response = httpx.get(
        f"{base}/api/v1/label/{label}/values",
        params={"match[]": 'berth_service_info{project=~".*"}'},
        timeout=10,
    )
    return [{"value": v} for v in response.json()["data"]]


def growing_stats() -> Callable[[str], dict[str, Any]]:
    """nginx's /berth/stats answer (the shape test_nginx_lua.py pins) with traffic that
    goes on between scrapes, so rates and quantiles have data."""
    calls = [0]

    def stats(path: str) -> dict[str, Any]:
        calls[0] += 1
        n = 100 * calls[0]
        return {
            "requests": {
                "api_backend|r1|2xx": n,
                "api_backend|r1|5xx": calls[0],
                "api_backend|r2|2xx": n // 10,  # the canary's revision
            },
            "latency": {
                "api_backend|r1|0.05": n // 2,
                "api_backend|r1|0.5": n + calls[0],
                "api_backend|r1|+Inf": n + calls[0],
                "api_backend|r2|0.05": n // 10,
                "api_backend|r2|+Inf": n // 10,
            },
            "latency_sum": {"api_backend|r1": 0.1 * n, "api_backend|r2": 0.001 * n},
        }

    return stats


def test_every_dashboard_panel_returns_data(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry(), version="0.1.0")
    populate(metrics, now=time.time())
    # nginx's counters (the /berth/stats shape pinned by test_nginx_lua.py) and a canary
    add_traffic(metrics, SqliteStateStore(":memory:"), growing_stats())
    metrics.analysis("shop", "api", [("success_rate", "pass"), ("min_requests", "inconclusive")])
    metrics.build("shop", "api", "built", 42.0)  # a service with a compose `build:`
    metrics.build("shop", "api", "cached", 0.2)
    metrics.digest_drift("shop", "api", False)  # a pinned service whose tag did not move
    git = GitMetrics(metrics.registry, interval=60, webhook=True)  # `berth run --git-url`
    git.sync(SyncResult.SUCCESS, at=time.time(), failures=0)
    git.webhook(Verdict.ACCEPTED)
    metrics.known_notifications()  # notifications configured (--notify)
    metrics.notification("rolled_back", "sent")
    started = time.monotonic()
    with serve_metrics(metrics, activity(metrics)) as target:
        results = check_dashboard_against(tmp_path, target)
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"took {elapsed:.1f}s"
    assert len(results) - 3 >= 13  # one entry per distinct panel expression
    tags = results['berth_service_info{project=~".*", service=~".*"}']
    assert {(r["metric"]["service"], r["metric"]["running_tag"]) for r in tags} == {
        ("api", "1.4.2"),
        ("worker", "2.0.0"),
    }
    rules = results["__rules__"]
    assert len(rules) == 11 and all(r["health"] == "ok" for r in rules), rules
    assert [r["value"] for r in results["__stack__"]] == ["shop"]
    assert [r["value"] for r in results["__service__"]] == ["api", "worker"]
