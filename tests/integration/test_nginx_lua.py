"""Berth's Lua balancer in a real nginx (Debian's nginx with libnginx-mod-http-lua).

nginx runs on the host with its own prefix; the backends are small threaded HTTP servers
on loopback ports, which can hold a request open (for per-peer drain) or answer 500.
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.adapters.nginx import HostNginx
from controller.core.peers import Layout, PeerSet, Side, parse_dynamic
from controller.core.upstream import Backend
from controller.errors import ProxyError
from controller.shell.rollout import dynamic
from tests.support.daemon import free_port

pytestmark = [
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx"),
    pytest.mark.skipif(
        not os.path.exists("/usr/share/nginx/modules/ngx_http_lua_module.so"),
        reason="needs libnginx-mod-http-lua",
    ),
]

CONF = """\
load_module /usr/share/nginx/modules/ndk_http_module.so;
load_module /usr/share/nginx/modules/ngx_http_lua_module.so;
pid {d}/nginx.pid;
error_log {d}/error.log;
worker_processes 2;
events {{}}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    include {up}/upstreams.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        if self.path.startswith("/hold"):
            server.holding.set()
            server.release.wait(20)
        status = 500 if server.failing else 200
        body = server.name.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.failing = False
        self.holding = threading.Event()
        self.release = threading.Event()

    @property
    def backend(self) -> Backend:
        return Backend(f"{self.name}000000000000", self.name, "127.0.0.1", self.server_address[1])


@dataclass
class Rig:
    target: dynamic.Target
    base: list[str]
    port: int
    a: _Server
    b: _Server
    reloads: list[str]

    def route(self, *servers: _Server, rev: str = "r1") -> PeerSet:
        """What the switch does: record in the file, structure, PUT, verify."""
        text = Path(self.target.path).read_text() if os.path.exists(self.target.path) else ""
        old = dynamic.recorded(text, ["app"])["app"]
        new = PeerSet(dynamic.next_gen(old), (Side(rev, 100, tuple(s.backend for s in servers)),))
        want = dynamic.write(self.target, {"app": new})
        dynamic.sync_structure(self.target, want, drain_timeout=5)
        dynamic.apply(self.target, "app", new)
        return new

    def get(self, path: str = "/") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def workers(self) -> set[int]:
        out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True)
        master = int(Path(self.target.path).parent.parent.joinpath("n/nginx.pid").read_text())
        return {
            int(line.split()[0])
            for line in out.stdout.splitlines()[1:]
            if int(line.split()[1]) == master and "worker process" in line
        }


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    root = Path(f"/tmp/bl-{os.getpid()}-{tmp_path.name[-12:]}")  # short: unix socket paths
    shutil.rmtree(root, ignore_errors=True)
    d, up = root / "n", root / "up"
    d.mkdir(parents=True)
    up.mkdir()
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(CONF.format(d=d, up=up, port=port))
    base = ["nginx", "-c", str(conf), "-p", str(d)]
    a, b = _Server("a"), _Server("b")
    for s in (a, b):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    reloads: list[str] = []
    host = HostNginx([*base, "-t", "-q"], [*base, "-s", "reload"])
    target = dynamic.Target(str(up / "upstreams.conf"), Layout(str(up)), None, reloads.append)
    r = Rig(target, base, port, a, b, reloads)
    r.route(a)  # nginx not running yet: the file alone
    subprocess.run(base, check=True, timeout=10)
    r.target = dynamic.Target(target.path, target.layout, host, reloads.append)
    try:
        yield r
    finally:
        for s in (a, b):
            s.release.set()
            s.shutdown()
        subprocess.run([*base, "-s", "stop"], check=False, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def test_nginx_starts_on_the_recorded_peers_and_switches_without_reload(rig: Rig) -> None:
    assert rig.get() == (200, "a")
    before = rig.workers()
    rig.route(rig.b, rev="r2")
    assert {rig.get()[1] for _ in range(10)} == {"b"}
    rig.route(rig.a, rig.b, rev="r3")
    assert {rig.get()[1] for _ in range(40)} == {"a", "b"}
    assert rig.workers() == before, "a switch reloaded nginx"
    assert rig.reloads == []


def test_a_restart_and_a_reload_come_back_with_the_current_peers(rig: Rig) -> None:
    rig.route(rig.b, rev="r2")
    subprocess.run([*rig.base, "-s", "reload"], check=True, timeout=10)
    time.sleep(0.5)
    assert {rig.get()[1] for _ in range(10)} == {"b"}
    subprocess.run([*rig.base, "-s", "quit"], check=True, timeout=10)
    for _ in range(100):
        if not os.path.exists(Path(rig.target.path).parent.parent / "n/nginx.pid"):
            break
        time.sleep(0.05)
    subprocess.run(rig.base, check=True, timeout=10)  # a stale control.sock is no obstacle
    assert {rig.get()[1] for _ in range(10)} == {"b"}
    state = rig.target.control.state()
    assert state["upstreams"]["app"]["sides"][0]["rev"] == "r2"


def test_an_old_peer_drains_by_its_own_in_flight_count(rig: Rig) -> None:
    held: list[tuple[int, str]] = []
    t = threading.Thread(target=lambda: held.append(rig.get("/hold")))
    t.start()
    assert rig.a.holding.wait(5)
    addr = f"127.0.0.1:{rig.a.server_address[1]}"
    assert rig.target.control.state()["inflight"][addr] == 1
    rig.route(rig.b, rev="r2")
    assert rig.get() == (200, "b")  # new requests go to b while a's one is in flight
    threading.Timer(0.6, rig.a.release.set).start()
    t0 = time.monotonic()
    waited = dynamic.drain(rig.target, {addr}, timeout=10)
    assert 0.4 < waited < 5, waited
    assert time.monotonic() - t0 >= 0.4
    t.join(5)
    assert held == [(200, "a")]
    assert rig.target.control.state()["inflight"][addr] == 0


def test_drain_is_bounded_by_the_timeout(rig: Rig) -> None:
    t = threading.Thread(target=lambda: rig.get("/hold"), daemon=True)
    t.start()
    assert rig.a.holding.wait(5)
    rig.route(rig.b, rev="r2")
    addr = f"127.0.0.1:{rig.a.server_address[1]}"
    waited = dynamic.drain(rig.target, {addr}, timeout=0.5)
    assert 0.45 < waited < 2
    rig.a.release.set()


def test_traffic_is_counted_per_revision_and_status_class(rig: Rig) -> None:
    rig.route(rig.a, rev="good")
    for _ in range(5):
        rig.get()
    rig.b.failing = True
    rig.route(rig.b, rev="bad")
    for _ in range(3):
        assert rig.get()[0] == 500
    stats = rig.target.control.stats()
    assert stats["requests"]["app|good|2xx"] >= 5
    assert stats["requests"]["app|bad|5xx"] == 3
    assert stats["latency"]["app|bad|+Inf"] == 3
    assert stats["latency_sum"]["app|bad"] >= 0


def test_a_dead_peer_is_passed_over_without_failing_the_request(rig: Rig) -> None:
    dead = _Server("dead")
    dead.server_close()  # its port now refuses connections
    rig.route(rig.a, dead, rev="mixed")
    assert {rig.get() for _ in range(20)} == {(200, "a")}  # retried on a, never failed
    stats = rig.target.control.stats()
    assert stats["requests"]["app|mixed|2xx"] == 20


def test_the_control_channel_is_not_on_the_public_listener(rig: Rig) -> None:
    for path in ("/berth/state", "/berth/stats"):
        status, body = rig.get(path)
        assert (status, body) == (200, "a"), "the public listener reached the control server"
    dump = subprocess.run([*rig.base, "-T"], capture_output=True, text=True, timeout=10).stdout
    text = Path(rig.target.path).read_text()
    assert f"listen unix:{rig.target.layout.socket};" in text
    listens = [line.strip() for line in dump.splitlines() if line.strip().startswith("listen")]
    assert sorted(listens) == sorted(
        [f"listen 127.0.0.1:{rig.port};", f"listen unix:{rig.target.layout.socket};"]
    )


def test_bad_peer_sets_are_refused_by_nginx(rig: Rig) -> None:
    control = rig.target.control
    with pytest.raises(ProxyError, match="unknown upstream"):
        control.put("nope", {"gen": 1, "sides": []})
    for bad in (
        {"gen": 1, "sides": [{"rev": "x", "weight": 500, "peers": []}]},
        {"gen": 1, "sides": [{"rev": "x", "weight": 100, "peers": [{"addr": "evil.example:80"}]}]},
        {"gen": "1", "sides": []},
    ):
        with pytest.raises(ProxyError, match="bad peer set"):
            control.put("app", bad)
    assert rig.get() == (200, "a")  # nothing changed


def test_the_file_records_what_nginx_runs(rig: Rig) -> None:
    new = rig.route(rig.a, rig.b, rev="r9")
    recorded = parse_dynamic(Path(rig.target.path).read_text())
    assert recorded is not None
    assert recorded[1]["app"].same_routes(new)
    assert recorded[0] == rig.target.control.state()["structure"]


def test_nginx_starts_again_after_a_crash_left_its_control_socket_behind(rig: Rig) -> None:
    """nginx does not remove a stale unix socket before binding it; Berth's init does
    (a live one, as during `nginx -t` or a reload, stays: see the tests above)."""
    rig.route(rig.b, rev="r2")
    pid_file = Path(rig.target.path).parent.parent / "n/nginx.pid"
    master = int(pid_file.read_text())
    workers = rig.workers()
    for pid in (master, *workers):
        os.kill(pid, 9)
    for _ in range(100):
        if not any(os.path.exists(f"/proc/{p}") for p in (master, *workers)):
            break
        time.sleep(0.05)
    assert os.path.exists(rig.target.layout.socket), "the crash should leave the socket"
    subprocess.run([*rig.base, "-t", "-q"], check=True, timeout=10)
    subprocess.run(rig.base, check=True, timeout=10)
    assert {rig.get()[1] for _ in range(10)} == {"b"}
    assert rig.target.control.state()["upstreams"]["app"]["sides"][0]["rev"] == "r2"


def _get_with(rig: Rig, cookie: str | None) -> tuple[str, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", rig.port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        r = conn.getresponse()
        return r.read().decode(), r.getheader("Set-Cookie")
    finally:
        conn.close()


def test_weights_split_requests_and_a_sticky_client_keeps_its_side(rig: Rig) -> None:
    text = Path(rig.target.path).read_text()
    old = dynamic.recorded(text, ["app"])["app"]
    split = PeerSet(
        dynamic.next_gen(old),
        (Side("new", 20, (rig.b.backend,)), Side("old", 80, (rig.a.backend,))),
    )
    dynamic.apply(rig.target, "app", split)
    answers = [rig.get()[1] for _ in range(400)]
    assert 0.12 < answers.count("b") / len(answers) < 0.28, answers.count("b")
    sticky = PeerSet(split.gen + 1, split.sides, sticky=True)
    dynamic.apply(rig.target, "app", sticky)
    body, set_cookie = _get_with(rig, None)
    assert set_cookie is not None and set_cookie.startswith("berth_app=")
    side = set_cookie.split(";")[0]
    assert side in ("berth_app=new", "berth_app=old")
    expected = {"berth_app=new": "b", "berth_app=old": "a"}[side]
    assert body == expected
    # with its cookie, the client stays on its side every time
    assert {_get_with(rig, side)[0] for _ in range(50)} == {expected}
    # a cookie for a revision no longer in the set is ignored (weights decide again)
    assert {_get_with(rig, "berth_app=gone")[0] for _ in range(60)} == {"a", "b"}
