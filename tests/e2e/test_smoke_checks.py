"""Smoke checks under load (issue 15): a new version whose real endpoint answers the wrong
body is rolled back before any client sees it; real nginx (dynamic switch), real
containers, keep-alive clients and connection-per-request clients that never retry."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.test_zero_downtime import SITE, _wait_http, parse_events, stack_compose
from tests.support.berth import popen_berth
from tests.support.daemon import free_port
from tests.support.images import ensure_nginx_image
from tests.support.load import Load

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]


def smoke_compose(port: int, expect: str) -> dict[str, Any]:
    compose = stack_compose(port, switch="dynamic", upstreams_mount="rw")
    compose["services"]["api"]["x-berth"]["smoke"] = [
        {"name": "try", "path": "/cgi-bin/try", "body_matches": f"^{expect}"},
        {
            "name": "echo",
            "path": "/cgi-bin/echo",
            "method": "POST",
            "body": "abc",
            "body_matches": r" 3\s*$",
            "response_headers": {"Content-Type": "^text/plain"},
        },
    ]
    return compose


def test_a_wrong_body_is_rolled_back_before_any_client_sees_the_new_version(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    ensure_nginx_image(client=docker_client)
    for tag in ("1.0.0", "2.0.0"):
        app_image(tag)
    port = free_port()
    files = {"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""}
    s = tmp_stack(smoke_compose(port, r"1\.0\.0"), {"api": {"tag": "1.0.0"}}, files=files)
    first = popen_berth(s.desired_dir, s.state_dir, "apply")
    _, err = first.communicate(timeout=180)
    assert first.returncode == 0, err
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/version")
    loads = [
        Load(base, keep_alive=True, get_threads=3, get_rate=60, get_path="/cgi-bin/try"),
        Load(base, keep_alive=False, get_threads=3, get_rate=60, get_path="/cgi-bin/try"),
    ]
    for load in loads:
        load.start()
    time.sleep(1)
    try:
        # 2.0.0 runs and is healthy, but its /cgi-bin/try does not answer what the check wants
        s = tmp_stack(smoke_compose(port, r"9\.9\.9"), {"api": {"tag": "2.0.0"}}, files=files)
        proc = popen_berth(s.desired_dir, s.state_dir, "apply")
        _, err = proc.communicate(timeout=180)
    finally:
        time.sleep(1)
        for load in loads:
            load.stop()
    assert proc.returncode == 3, err
    events = parse_events(err.splitlines())
    smoke = [(ph, msg) for _, ph, msg in events if ph.startswith("smoke")]
    assert smoke[-1][0] == "smoke-failed" and "try (GET /cgi-bin/try)" in smoke[-1][1], smoke
    assert "body does not match" in smoke[-1][1] and "2.0.0" in smoke[-1][1]
    assert not [ph for _, ph, _ in events if ph == "cutover"], "traffic moved"
    for load in loads:
        samples = load.snapshot()
        assert len(samples) > 100, len(samples)
        seen = [x for x in samples if x.body.startswith("2.0.0")]
        assert not seen, f"a client saw the new version: {seen[:3]}"
        failed = [x for x in samples if not x.ok]
        kind = "keep-alive" if load.keep_alive else "connection-per-request"
        assert not failed, f"{kind}: {len(failed)} failed: {failed[:3]}"
