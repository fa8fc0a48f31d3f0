"""The example stack's images build offline, and its nginx templates pass `nginx -t` in the
nginx image the stack runs, with a generated certificate and a Berth-rendered upstream file.

scripts/build-example-images.sh is idempotent (existing images are skipped), so after the
first run this module costs a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.peers import Layout, by_revision, render_dynamic
from controller.core.upstream import Backend, render_upstreams
from controller.shell.rollout import dynamic

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build-example-images.sh"
CONF_D = REPO / "nginx" / "conf.d"
NGINX_IMAGE = "berth-demo/nginx:1"
APPS = ("api", "synth-worker", "report-service", "llm-standin")


@pytest.fixture(scope="module")
def example_images(docker_client: Any) -> None:
    # SKIP_CERT: the tests make their own certificate; leave the repo's nginx/certs alone.
    proc = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=REPO,
        env={**os.environ, "SKIP_CERT": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture()
def certs(tmp_path: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing on this host: apt-get install -y openssl", pytrace=False)
    out = tmp_path / "certs"
    out.mkdir()
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost",
            "-keyout", str(out / "tls.key"), "-out", str(out / "tls.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    (out / "tls.key").chmod(0o644)  # readable by the container's root whatever our uid
    return out


def _nginx_t(
    docker_client: Any, upstreams: Path, certs: Path, *, mode: str = "ro"
) -> tuple[int, str]:
    container = docker_client.containers.create(
        NGINX_IMAGE,
        command=["nginx", "-t"],
        volumes={
            str(CONF_D): {"bind": "/etc/nginx/conf.d", "mode": "ro"},
            str(upstreams): {"bind": "/etc/nginx/berth", "mode": mode},
            str(certs): {"bind": "/etc/nginx/certs", "mode": "ro"},
        },
        network_disabled=True,
    )
    try:
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        return int(code), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


@pytest.mark.usefixtures("example_images")
def test_every_example_image_exists(docker_client: Any) -> None:
    tags = {t for image in docker_client.images.list("berth-demo/*") for t in image.tags}
    for app in APPS:
        assert {f"berth-demo/{app}:1.0.0", f"berth-demo/{app}:2.0.0"} <= tags
    assert {"berth-demo/api:3.0.0", "berth-demo/api:3.1.0", NGINX_IMAGE} <= tags
    assert "berth-demo/postgres:15" in tags  # its behaviour: tests/integration/test_example_db.py


@pytest.mark.usefixtures("example_images")
@pytest.mark.parametrize("routed", [True, False], ids=["backends", "placeholder"])
def test_site_config_passes_nginx_t(
    docker_client: Any, tmp_path: Path, certs: Path, routed: bool
) -> None:
    """With backends, and with the `down` placeholder Berth writes before the first healthy
    container: nginx must start in both cases."""
    upstreams = tmp_path / "upstreams"
    upstreams.mkdir()
    backends = {
        "api_backend": [
            Backend("a" * 64, "gesalps-api-0123abcd-1", "172.30.0.2", 8000),
            Backend("b" * 64, "gesalps-api-0123abcd-2", "172.30.0.3", 8000),
        ],
        "report_backend": [Backend("c" * 64, "gesalps-report-service-1", "172.30.0.4", 8001)],
    }
    text = render_upstreams(backends if routed else {name: [] for name in backends})
    (upstreams / "upstreams.conf").write_text(text)
    code, log = _nginx_t(docker_client, upstreams, certs)
    assert code == 0, log
    assert "syntax is ok" in log and "test is successful" in log


@pytest.mark.usefixtures("example_images")
def test_site_config_passes_nginx_t_with_the_dynamic_switch(
    docker_client: Any, tmp_path: Path, certs: Path
) -> None:
    """The example nginx image has the Lua module: Berth's dynamic form loads in it."""
    upstreams = tmp_path / "upstreams"
    upstreams.mkdir()
    peers = {
        "api_backend": by_revision(
            [(Backend("a" * 64, "gesalps-api-0123abcd-1", "172.30.0.2", 8000), "0123abcd")],
            gen=1,
        ),
        "report_backend": by_revision([], gen=1),
    }
    lua = dynamic.lua_source()
    (upstreams / "berth_balancer.lua").write_text(lua)
    text = render_dynamic(peers, Layout("/etc/nginx/berth"), lua)
    (upstreams / "upstreams.conf").write_text(text)
    # read-write, as the example compose mounts it: `nginx -t` binds the control socket too
    code, log = _nginx_t(docker_client, upstreams, certs, mode="rw")
    assert code == 0, log
    assert "test is successful" in log and "init_by_lua error" not in log


@pytest.mark.usefixtures("example_images")
def test_site_config_needs_the_upstream_file(
    docker_client: Any, tmp_path: Path, certs: Path
) -> None:
    """Guards the test above: without Berth's file the include fails, so `nginx -t` did read
    the mounted directory."""
    empty = tmp_path / "upstreams"
    empty.mkdir()
    code, log = _nginx_t(docker_client, empty, certs)
    assert code != 0
    assert "/etc/nginx/berth/upstreams.conf" in log


@pytest.fixture()
def running(docker_client: Any) -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for container in started:
        container.remove(force=True)


def _http_status(container: Any, port: int, path: str) -> int:
    probe = (
        "import urllib.request, urllib.error\n"
        f"try: print(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=2).status)\n"
        "except urllib.error.HTTPError as e: print(e.code)\n"
        "except OSError: print(0)\n"
    )
    code, out = container.exec_run(["python3", "-c", probe])
    return int(out.decode().strip() or 0) if code == 0 else -1


@pytest.mark.usefixtures("example_images")
def test_api_releases_good_and_broken(docker_client: Any, running: list[Any]) -> None:
    """1.0.0 is healthy; 3.0.0 (BROKEN=1) answers 503 on /health forever (rollback demo)."""
    for tag in ("1.0.0", "3.0.0"):
        running.append(
            docker_client.containers.run(f"berth-demo/api:{tag}", detach=True, init=True)
        )
    want = {"1.0.0": 200, "3.0.0": 503}
    got: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = {tag: _http_status(c, 8000, "/health") for tag, c in zip(want, running, strict=True)}
        if got == want:
            break
        time.sleep(0.3)
    assert got == want, [c.logs().decode(errors="replace")[-2000:] for c in running]
    assert _http_status(running[0], 8000, "/version") == 200
    running[0].reload()
    assert running[0].attrs["Config"]["User"] == "app"  # not root
