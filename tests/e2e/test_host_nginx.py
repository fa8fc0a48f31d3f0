"""x-berth.proxy with nginx on the host (no proxy service): test and reload by command."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.core.peers import is_dynamic
from tests.e2e.test_zero_downtime import free_port
from tests.support.berth import berth
from tests.support.images import healthcheck

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

LUA = """\
load_module /usr/share/nginx/modules/ndk_http_module.so;
load_module /usr/share/nginx/modules/ngx_http_lua_module.so;
"""

CONF = """\
pid {d}/nginx.pid;
error_log {d}/error.log;
worker_processes 2;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    include {root}/upstreams/upstreams.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://api_backend; proxy_next_upstream error timeout; }}
    }}
}}
"""


@pytest.fixture(params=["reload", "lua"])
def host_nginx(request: Any, tmp_path: Path) -> Iterator[tuple[list[str], int]]:
    """A host nginx without the Lua module (auto = the reload switch) and one that loads it
    (auto = the dynamic switch)."""
    d = tmp_path / "hostnginx"
    d.mkdir()
    port = free_port()
    conf = d / "nginx.conf"
    lua = LUA if request.param == "lua" else ""
    conf.write_text(lua + CONF.format(d=d, root=tmp_path, port=port))
    (tmp_path / "upstreams").mkdir()
    (tmp_path / "upstreams/upstreams.conf").write_text(
        "upstream api_backend { server 127.0.0.1:9 down; }\n"
    )
    base = ["nginx", "-c", str(conf), "-p", str(d)]
    subprocess.run(base, check=True, timeout=10)
    try:
        yield base, port
    finally:
        subprocess.run([*base, "-s", "quit"], check=False, timeout=10)


def test_host_nginx_cut_over(
    host_nginx: tuple[list[str], int], app_image: Any, tmp_stack: Any, project: str
) -> None:
    base, port = host_nginx
    app_image("1.0.0")
    app_image("2.0.0")
    compose = {
        "x-berth": {
            "proxy": {
                "upstreams_file": "../upstreams/upstreams.conf",
                "test_command": [*base, "-t", "-q"],
                "reload_command": [*base, "-s", "reload"],
            }
        },
        "services": {
            "api": {
                "image": "berth-test/app",
                "init": True,
                "expose": ["8000"],
                "healthcheck": {"test": healthcheck(), "interval": "1s"},
                "deploy": {"replicas": 2},
                "x-berth": {
                    "upstream": {"name": "api_backend", "port": 8000},
                    "health": {"path": "/health", "port": 8000, "interval": "100ms"},
                },
            }
        },
    }
    s = tmp_stack(compose, {"api": {"tag": "1.0.0"}})
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.err
    url = f"http://127.0.0.1:{port}/version"
    assert httpx.get(url, trust_env=False).text.strip() == "1.0.0"
    lua = "load_module" in (Path(base[2])).read_text()
    upstreams = s.root / "upstreams/upstreams.conf"
    assert is_dynamic(upstreams.read_text()) == lua
    workers = _workers(base)
    s = tmp_stack(compose, {"api": {"tag": "2.0.0"}})
    t0 = time.monotonic()
    r = berth(s.desired_dir, s.state_dir, "apply")
    assert r.code == 0, r.err
    assert time.monotonic() - t0 < 30
    assert {httpx.get(url, trust_env=False).text.strip() for _ in range(10)} == {"2.0.0"}
    assert (_workers(base) == workers) == lua, "dynamic: no reload; reload: a reload"
    st = json.loads(berth(s.desired_dir, s.state_dir, "status", "--json").out)[0]
    assert st["upstream"] == "api_backend" and len(st["routes"]) == 2
    assert all(f"{project}-api-" in name for name in st["routes"])


def _workers(base: list[str]) -> set[int]:
    pid_file = Path(base[4]) / "nginx.pid"
    master = int(pid_file.read_text())
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    return {
        int(line.split()[0])
        for line in out.splitlines()[1:]
        if int(line.split()[1]) == master and "worker process" in line
    }
