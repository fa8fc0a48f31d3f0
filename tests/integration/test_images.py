"""The local test app image behaves as tests/support/images.py promises, on a real engine.

Every mode runs at once on one user network; the host probes the container IPs directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.images import healthcheck

pytestmark = pytest.mark.docker

MODES = ("good", "unhealthy", "crash", "slow", "bake-fail")
SECOND = 1_000_000_000  # Docker healthcheck durations are nanoseconds


@dataclass
class Running:
    mode: str
    tag: str
    container: Any
    ip: str
    started: float  # host monotonic time when `docker run` returned
    trace: list[tuple[float, int]] = field(default_factory=list)  # (seconds, /health status)

    def url(self, path: str) -> str:
        return f"http://{self.ip}:8000{path}"


def _ip(container: Any, network: str) -> str:
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


@pytest.fixture()
def http() -> Iterator[httpx.Client]:
    # trust_env=False: a proxy from the environment must not intercept container IPs.
    with httpx.Client(trust_env=False, timeout=3.0) as client:
        yield client


@pytest.fixture()
def network(docker_client: Any, project: str) -> str:
    name = f"{project}_default"
    docker_client.networks.create(
        name, driver="bridge", labels={"com.docker.compose.project": project}
    )
    return name


@pytest.fixture()
def run_app(
    docker_client: Any,
    app_image: Callable[..., str],
    project: str,
    network: str,
) -> Callable[..., Running]:
    def run(mode: str, *, init: bool = True, **kwargs: Any) -> Running:
        tag = f"it-{mode}"
        ref = app_image(tag, mode=mode)
        container = docker_client.containers.run(
            ref,
            detach=True,
            init=init,
            network=network,
            labels={"com.docker.compose.project": project},
            name=f"{project}-{mode}-{'init' if init else 'noinit'}",
            **kwargs,
        )
        started = time.monotonic()
        return Running(mode, tag, container, _ip(container, network), started)

    return run


def _poll_health(http: httpx.Client, apps: list[Running], seconds: float) -> None:
    """Record /health status codes of each app every 100 ms (0 = connection failed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for app in apps:
            try:
                status = http.get(app.url("/health"), timeout=0.5).status_code
            except httpx.HTTPError:
                status = 0
            app.trace.append((time.monotonic() - app.started, status))
        time.sleep(0.1)


def _first(trace: list[tuple[float, int]], pred: Callable[[int], bool]) -> float | None:
    return next((t for t, s in trace if pred(s)), None)


def _wait_healthy(http: httpx.Client, app: Running, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if http.get(app.url("/health"), timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{app.mode} not healthy within {seconds}s"
        time.sleep(0.05)


def test_modes(
    run_app: Callable[..., Running], app_image: Callable[..., str], http: httpx.Client
) -> None:
    for mode in MODES:  # build first, so the containers start within a fraction of a second
        app_image(f"it-{mode}", mode=mode)
    # Time-sensitive modes last: their clocks start closest to the first poll.
    apps = {mode: run_app(mode) for mode in ("crash", "unhealthy", "good", "slow", "bake-fail")}
    _poll_health(http, [apps[m] for m in ("good", "unhealthy", "slow", "bake-fail")], 8.5)

    # /version and / answer the tag in every mode that keeps running.
    for mode in ("good", "unhealthy", "slow", "bake-fail"):
        app = apps[mode]
        assert http.get(app.url("/version")).text.strip() == app.tag, mode
        assert http.get(app.url("/")).text.strip() == app.tag, mode

    good = apps["good"].trace
    first_ok = _first(good, lambda s: s == 200)
    assert first_ok is not None and first_ok < 3.0, good
    assert all(s == 200 for t, s in good if t > first_ok), good
    assert http.get(apps["good"].url("/health")).text.strip() == "ok"

    unhealthy = apps["unhealthy"].trace
    assert any(s == 404 for _, s in unhealthy), unhealthy
    assert all(s != 200 for _, s in unhealthy), unhealthy

    slow = apps["slow"].trace
    slow_ok = _first(slow, lambda s: s == 200)
    assert any(s == 404 for _, s in slow), slow  # serving, but not healthy yet
    assert slow_ok is not None and 2.5 <= slow_ok <= 4.5, slow

    bake = apps["bake-fail"].trace
    bake_ok = _first(bake, lambda s: s == 200)
    assert bake_ok is not None and bake_ok < 1.5, bake
    bake_bad = _first([(t, s) for t, s in bake if t > bake_ok], lambda s: s != 200)
    assert bake_bad is not None and 5.5 <= bake_bad <= 8.0, bake
    assert all(s != 200 for t, s in bake if t > bake_bad + 0.05), bake

    crash = apps["crash"].container
    crash.reload()
    assert crash.attrs["State"]["Status"] == "exited"
    assert crash.attrs["State"]["ExitCode"] == 1
    assert b"crash mode" in crash.logs()


def test_slow_and_echo_cgi(run_app: Callable[..., Running], http: httpx.Client) -> None:
    app = run_app("good")
    _wait_healthy(http, app)
    start = time.monotonic()
    reply = http.get(app.url("/cgi-bin/slow?1"))
    assert reply.status_code == 200 and reply.text.strip() == app.tag
    assert 0.9 <= time.monotonic() - start < 3
    body = b"x" * 100_000
    reply = http.post(app.url("/cgi-bin/echo"), content=body)
    assert reply.status_code == 200
    assert reply.text.split() == [app.tag, str(len(body))]


@pytest.mark.parametrize("init", [True, False], ids=["init", "no-init"])
def test_sigterm_drains_in_flight_requests(
    run_app: Callable[..., Running], http: httpx.Client, init: bool
) -> None:
    """SIGTERM stops the listener but lets a running request finish, then exits 0."""
    app = run_app("good", init=init)
    _wait_healthy(http, app)
    result: dict[str, Any] = {}

    def slow_request() -> None:
        try:
            reply = http.get(app.url("/cgi-bin/slow?2"), timeout=5)
            result["status"], result["text"] = reply.status_code, reply.text.strip()
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.4)
    start = time.monotonic()
    app.container.stop(timeout=10)
    stopped = time.monotonic() - start
    worker.join(5)
    assert result == {"status": 200, "text": app.tag}
    assert stopped < 5, "stop waited for the grace period: SIGTERM was not handled"
    app.container.reload()
    assert app.container.attrs["State"]["ExitCode"] == 0


def test_documented_healthcheck_works(run_app: Callable[..., Running]) -> None:
    check = {
        "test": healthcheck(8000),
        "interval": SECOND // 5,
        "timeout": SECOND,
        "retries": 2,
        "start_period": 0,
    }
    good = run_app("good", healthcheck=check)
    bad = run_app("unhealthy", healthcheck=check)
    deadline = time.monotonic() + 10
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for app in (good, bad):
            app.container.reload()
            states[app.mode] = app.container.attrs["State"]["Health"]["Status"]
        if states == {"good": "healthy", "unhealthy": "unhealthy"}:
            break
        time.sleep(0.1)
    assert states == {"good": "healthy", "unhealthy": "unhealthy"}
