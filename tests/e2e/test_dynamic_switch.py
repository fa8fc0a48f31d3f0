"""The dynamic switch: cut-overs move traffic in the running nginx without a reload.

Keep-alive clients (one HTTP/1.1 connection per thread, reused, never retried) are what a
reload hurts; here they run with long requests and POSTs in flight through a series of
deploys that includes rollbacks before cut-over and a switch-back after a bake failure.
nginx's worker PIDs before and after prove that nothing reloaded it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from controller.core.peers import is_dynamic, parse_dynamic
from tests.e2e.test_zero_downtime import (
    PLAN,
    SITE,
    _check_no_failures,
    _check_versions,
    _wait_http,
    deploy,
    deploy_plan,
    stack_compose,
)
from tests.support.berth import berth, popen_berth
from tests.support.daemon import free_port
from tests.support.images import ensure_nginx_image
from tests.support.load import Load

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]


def _canary_aborted(s: Any, tmp_stack: Any, port: int) -> int:
    """One more cut-over, a canary (20 % to a good 3.1.0) that an operator aborts: weight 0,
    drained, rolled back. Returns apply's exit code."""
    compose = stack_compose(port, switch="dynamic", upstreams_mount="rw")
    compose["services"]["api"]["x-berth"]["canary"] = {"steps": [20], "interval": "60s"}
    tmp_stack(compose, {"api": {"tag": "3.1.0"}}, files={"nginx/conf.d/site.conf": SITE})
    proc = popen_berth(s.desired_dir, s.state_dir, "apply")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)
            if any(r.get("canary") for r in rows):
                break
            time.sleep(0.3)
        time.sleep(2)  # traffic on both sides for a while
        assert berth(s.desired_dir, s.state_dir, "abort", "api").code == 0
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode


def _nginx(docker_client: Any, project: str) -> Any:
    (c,) = docker_client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=nginx"]
        }
    )
    return c


def _workers(container: Any) -> set[str]:
    top = container.top(ps_args="-eo pid,args")
    return {row[0] for row in top["Processes"] if "worker process" in row[-1]}


def test_keep_alive_clients_lose_nothing_and_nginx_never_reloads(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    ensure_nginx_image(client=docker_client)
    app_image("1.0.0")
    for tag, mode, _ in PLAN:
        app_image(tag, mode=mode)
    app_image("3.1.0")  # the canary that is aborted
    port = free_port()
    s = tmp_stack(
        stack_compose(port, switch="dynamic", upstreams_mount="rw"),
        {"api": {"tag": "1.0.0"}},
        files={"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""},
    )
    assert deploy(s, tmp_stack, port, "1.0.0", switch="dynamic", upstreams_mount="rw")[0] == 0
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/version")
    upstreams = s.root / "nginx/upstreams/upstreams.conf"
    assert is_dynamic(upstreams.read_text())
    nginx = _nginx(docker_client, project)
    before = _workers(nginx)
    assert before

    pooled = Load(base, keep_alive=True, get_threads=6)
    fresh = Load(base, get_threads=2, get_rate=40)
    pooled.start()
    fresh.start()
    time.sleep(1.0)
    try:
        codes, windows = deploy_plan(s, tmp_stack, port, switch="dynamic", upstreams_mount="rw")
        codes["canary-abort"] = _canary_aborted(s, tmp_stack, port)
    finally:
        pooled.stop()
        fresh.stop()
    after = _workers(_nginx(docker_client, project))

    assert codes == {**{tag: exit_ for tag, _, exit_ in PLAN}, "canary-abort": 3}, windows
    kept = pooled.snapshot()
    _check_no_failures(kept)
    _check_no_failures(fresh.snapshot())
    _check_versions(kept + fresh.snapshot(), windows)
    assert after == before, f"nginx reloaded: workers {sorted(before)} -> {sorted(after)}"
    # The keep-alive clients really reused their connections: far fewer connections
    # than requests would be opened (each thread reconnects only after a failure or a
    # close, and there were none).
    assert len(kept) > 500, f"too little keep-alive load to mean anything: {len(kept)}"
    recorded = parse_dynamic(upstreams.read_text())
    assert recorded is not None
    (side,) = recorded[1]["api_backend"].sides
    assert len(side.backends) == 2


def test_auto_moves_a_new_stack_to_the_dynamic_switch_in_its_first_apply(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    """`switch: auto` (the default): nginx's Lua module can only be asked once nginx runs;
    the apply that started it moves the stack to the dynamic form (one reload, before any
    traffic), and the next deploy reloads nothing."""
    ensure_nginx_image(client=docker_client)
    app_image("1.0.0")
    app_image("2.0.0")
    port = free_port()

    def write(tag: str) -> Any:
        return tmp_stack(
            stack_compose(port, upstreams_mount="rw"),  # no `switch`: auto
            {"api": {"tag": tag}},
            files={"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""},
        )

    s = write("1.0.0")
    first = berth(s.desired_dir, s.state_dir, "apply")
    assert first.code == 0, first.err
    upstreams = s.root / "nginx/upstreams/upstreams.conf"
    assert is_dynamic(upstreams.read_text())
    _wait_http(f"http://127.0.0.1:{port}/version")
    before = _workers(_nginx(docker_client, project))
    s = write("2.0.0")
    second = berth(s.desired_dir, s.state_dir, "apply")
    assert second.code == 0, second.err
    assert {_get(f"http://127.0.0.1:{port}/version") for _ in range(10)} == {"2.0.0"}
    assert _workers(_nginx(docker_client, project)) == before, "the deploy reloaded nginx"


def _get(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=5, trust_env=False).text.strip()
