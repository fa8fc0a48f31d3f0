"""The nginx socket-proxy configuration of docs/operations.md, taken from the document
itself and run with the host's nginx in front of the real engine: Berth creates a stack,
replaces a proxied service (alias swaps, nginx exec, SIGHUP and `top`) through it with
no call denied, while calls Berth does not need get 403. Without the `DELETE /networks`
line the networks Berth creates keep an unfixed subnet, and Berth says so.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_zero_downtime import SITE, stack_compose
from tests.support.berth import berth_cmd
from tests.support.daemon import free_port
from tests.support.images import ensure_nginx_image

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
DELETE_NETWORKS = '"~^DELETE (/v[0-9.]+)?/networks/[^/]+$"'


def documented_config(tmp: Path, *, without: str | None = None) -> str:
    text = DOC.read_text()
    start = text.index("```nginx\n", text.index("### An nginx unix-socket proxy")) + 9
    conf = text[start : text.index("```", start)]
    moves = {
        "pid /run/berth-docker-proxy.pid;": f"pid {tmp}/nginx.pid;",
        "/var/log/berth-docker-proxy.error.log": f"{tmp}/error.log",
        "/var/log/berth-docker-proxy.access.log": f"{tmp}/access.log",
        "unix:/run/berth-docker/docker.sock": f"unix:{tmp}/docker.sock",
    }
    for old, new in moves.items():
        assert old in conf, f"the documented proxy config no longer has {old!r}"
        conf = conf.replace(old, new)
    if without is not None:
        assert without in conf
        conf = "".join(line for line in conf.splitlines(True) if without not in line)
    return conf


@pytest.fixture()
def proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("nginx") is None:
        pytest.fail("needs root and the host's nginx (scripts/ensure-docker.sh installs it)")
    without = getattr(request, "param", None)
    run = tmp_path / "proxy"
    run.mkdir()
    conf = run / "nginx.conf"
    conf.write_text(documented_config(run, without=without))
    check = subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"])
    try:
        for _ in range(100):
            if (run / "docker.sock").exists():
                break
            time.sleep(0.05)
        yield run
    finally:
        proc.terminate()
        proc.wait(10)


def _calls(run: Path) -> list[tuple[str, str, int]]:
    out = []
    for line in (run / "access.log").read_text().splitlines():
        m = re.search(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3})', line)
        if m:
            out.append((m.group(1), m.group(2).split("?")[0], int(m.group(3))))
    return out


def _berth(s: Any, run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{run}/docker.sock", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        berth_cmd(s.desired_dir, s.state_dir, *args),
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def _stack(docker_client: Any, app_image: Any, tmp_stack: Any) -> Any:
    ensure_nginx_image(client=docker_client)
    app_image("1.0.0")
    app_image("2.0.0")
    return tmp_stack(
        stack_compose(free_port()),
        {"api": {"tag": "1.0.0"}},
        files={"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""},
    )


def test_berth_works_through_the_documented_proxy(
    proxy: Path, docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    s = _stack(docker_client, app_image, tmp_stack)
    first = _berth(s, proxy, "apply")
    assert first.returncode == 0, first.stderr
    # a client on the network: the replacement then moves DNS aliases (disconnect/connect)
    client = docker_client.containers.run(
        "berth-test/app:1.0.0",
        ["sleep", "600"],
        detach=True,
        network=f"{project}_backend",
        labels={"com.docker.compose.project": project},
    )
    tmp_stack(stack_compose(free_port()), {"api": {"tag": "2.0.0"}}, files={})
    second = _berth(s, proxy, "apply")
    client.remove(force=True)
    assert second.returncode == 0, second.stderr
    calls = _calls(proxy)
    denied = [c for c in calls if c[2] == 403]
    assert not denied, denied
    used = {(method, re.sub(r"^/v[\d.]+", "", path).split("/")[1]) for method, path, _ in calls}
    assert ("POST", "networks") in used and ("DELETE", "networks") in used
    assert ("POST", "exec") in used and ("POST", "containers") in used
    assert any(m == "POST" and p.endswith("/disconnect") for m, p, _ in calls)
    backend = docker_client.networks.get(f"{project}_backend").attrs
    assert backend["IPAM"]["Config"][0]["Subnet"]
    assert _status(proxy / "docker.sock", "/v1.41/info") == 403
    assert _status(proxy / "docker.sock", "/v1.41/version") == 200


def _status(sock: Path, path: str) -> int:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(sock))
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        head = conn.recv(64).decode()
    return int(head.split()[1])


@pytest.mark.parametrize("proxy", [DELETE_NETWORKS], indirect=True)
def test_without_network_deletion_berth_still_creates_the_stack(
    proxy: Path, docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    s = _stack(docker_client, app_image, tmp_stack)
    result = _berth(s, proxy, "apply")
    assert result.returncode == 0, result.stderr
    assert "keeps an unfixed subnet" in result.stderr
    assert [c for c in _calls(proxy) if c[2] == 403] == [
        c for c in _calls(proxy) if c[0] == "DELETE" and "/networks/" in c[1]
    ]
    assert docker_client.networks.get(f"{project}_backend")
