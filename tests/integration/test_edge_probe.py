"""The edge nginx as Berth's probe agent: `GET /berth/probe` on the control socket of a real
nginx (Debian's nginx with libnginx-mod-http-lua), EdgeProber on top of it, and the
contract that it gives HttpProber's verdicts on the same targets.

nginx runs on the host with its own prefix and only Berth's rendered upstreams file (its
control server); the targets are a threaded HTTP server on loopback, a closed port and a
listener that never answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from controller.adapters.edge_prober import EdgeProber
from controller.adapters.http_prober import HttpProber
from controller.adapters.nginx_control import NginxControl
from controller.core.model import ProbeSpec
from controller.core.peers import Layout, PeerSet
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
}}
"""

CODES = {"/ok": 200, "/unavailable": 503, "/moved": 301, "/missing": 404, "/big": 200}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: _Target = self.server  # type: ignore[assignment]
        server.seen.append((self.path, dict(self.headers)))
        if self.path == "/slow":
            time.sleep(1.0)
        code = CODES.get(self.path, 200 if self.path == "/slow" else 404)
        body = b"x" * (1 << 20) if self.path == "/big" else b"body"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        if code == 301:
            self.send_header("Location", "/ok")
        self.end_headers()
        with contextlib.suppress(OSError):  # a prober drains 64 KiB at most and hangs up
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Target(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__(address, _Handler)


class _Target6(_Target):
    address_family = socket.AF_INET6


@dataclass
class Edge:
    socket: str
    control: NginxControl
    port: int  # the HTTP target on 127.0.0.1
    target: _Target
    silent: int  # a listener that accepts (backlog) and never answers
    closed: int  # nothing listens there


def _start(tmp_path: Path, name: str) -> tuple[list[str], str, Path]:
    root = Path(f"/tmp/ep-{os.getpid()}-{name}-{tmp_path.name[-10:]}")  # short: sun_path
    shutil.rmtree(root, ignore_errors=True)
    d, up = root / "n", root / "up"
    d.mkdir(parents=True)
    up.mkdir()
    conf = d / "nginx.conf"
    conf.write_text(CONF.format(d=d, up=up))
    target = dynamic.Target(str(up / "upstreams.conf"), Layout(str(up)), None, lambda _: None)
    dynamic.write(target, {"app": PeerSet(1, ())})
    base = ["nginx", "-c", str(conf), "-p", str(d)]
    subprocess.run(base, check=True, timeout=10)
    sock = str(up / "control.sock")
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.02)
    return base, sock, root


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    base, sock, root = _start(tmp_path_factory.mktemp("edge"), "a")
    target = _Target(("127.0.0.1", 0))
    threading.Thread(target=target.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        yield Edge(
            sock,
            NginxControl(sock),
            target.server_address[1],
            target,
            silent.getsockname()[1],
            free_port(),
        )
    finally:
        silent.close()
        target.shutdown()
        target.server_close()
        subprocess.run([*base, "-s", "stop"], check=False, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _raw(sock: str, target: str) -> tuple[int, dict[str, object]]:
    """One request on the control socket, as written (no client-side quoting)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock)
        s.sendall(f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    ("path", "ok", "status"),
    [("/ok", True, 200), ("/moved", True, 301), ("/unavailable", False, 503),
     ("/missing", False, 404), ("/big", True, 200)],
)  # fmt: skip
def test_nginx_probes_a_live_server(edge: Edge, path: str, ok: bool, status: int) -> None:
    out = edge.control.probe("127.0.0.1", edge.port, path, 2)
    assert (out["ok"], out["status"], out["detail"]) == (ok, status, f"HTTP {status}")
    assert 0 <= out["ms"] < 2000


def test_the_probe_request_is_the_one_http_prober_sends(edge: Edge) -> None:
    edge.target.seen.clear()
    edge.control.probe("127.0.0.1", edge.port, "/ok?full=1", 2)
    [(path, headers)] = edge.target.seen
    assert path == "/ok?full=1"
    assert headers["Host"] == f"127.0.0.1:{edge.port}"
    assert headers["Connection"] == "close"
    assert headers["User-Agent"] == "berth-probe"
    assert headers["Accept"] == "*/*"


def test_the_path_arrives_as_given(edge: Edge) -> None:
    edge.target.seen.clear()
    for path in ("/a+b", "/%41?q=a%20b&r=+", "/x;y=1/@:!$&'()*,"):
        edge.control.probe("127.0.0.1", edge.port, path, 2)
    assert [p for p, _ in edge.target.seen] == ["/a+b", "/%41?q=a%20b&r=+", "/x;y=1/@:!$&'()*,"]
    with pytest.raises(ProxyError, match="400 path:"):
        edge.control.probe("127.0.0.1", edge.port, "/a b", 2)


@pytest.mark.parametrize(
    "host", ["::1", "[::1]", "::ffff:127.0.0.1", "fe80::1", "2001:db8::", "1:2:3:4:5:6:7:8"]
)
def test_ip_literals_are_accepted(edge: Edge, host: str) -> None:
    status, body = _raw(
        edge.socket, f"/berth/probe?host={host}&port={edge.closed}&path=/&timeout=0.2"
    )
    assert status == 200 and body["ok"] is False, body


def test_a_closed_port_is_refused(edge: Edge) -> None:
    out = edge.control.probe("127.0.0.1", edge.closed, "/ok", 2)
    assert out == {"ok": False, "status": None, "detail": "connection refused", "ms": out["ms"]}


def test_a_silent_listener_times_out_within_the_timeout(edge: Edge) -> None:
    t0 = time.monotonic()
    out = edge.control.probe("127.0.0.1", edge.silent, "/ok", 0.3)
    took = time.monotonic() - t0
    assert out["ok"] is False and out["status"] is None
    assert out["detail"].startswith("timeout after 0.3s: timed out reading the status line")
    assert 0.25 < took < 1.5, took
    assert 250 <= out["ms"] < 1000


def test_a_slow_answer_times_out_as_a_whole(edge: Edge) -> None:
    """The timeout bounds the exchange, not each read: /slow answers after 1s."""
    out = edge.control.probe("127.0.0.1", edge.port, "/slow", 0.4)
    assert not out["ok"] and out["detail"].startswith("timeout after 0.4s")
    assert out["ms"] < 900


def test_ipv6_literals_are_probed(edge: Edge) -> None:
    try:
        server = _Target6(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        out = edge.control.probe("::1", port, "/ok", 2)
        assert (out["ok"], out["detail"]) == (True, "HTTP 200")
        assert server.seen[-1][1]["Host"] == f"[::1]:{port}"
        res = EdgeProber([edge.socket]).probe("[::1]", ProbeSpec(path="/moved", port=port))
        assert res.ok and res.detail == "HTTP 301"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("query", "argument"),
    [
        ("host=localhost&port=80&path=/", "host"),
        ("host=example.com&port=80&path=/", "host"),
        ("host=127.0.0.256&port=80&path=/", "host"),
        ("host=127.1&port=80&path=/", "host"),
        ("host=1::2::3&port=80&path=/", "host"),
        ("host=1:2:3:4:5:6:7:8:9&port=80&path=/", "host"),
        ("host=12345::1&port=80&path=/", "host"),
        ("host=:1:2&port=80&path=/", "host"),
        ("host=::1%25lo&port=80&path=/", "host"),
        ("host=::ffff:1.2.3&port=80&path=/", "host"),
        ("host=010.0.0.1&port=80&path=/", "host"),
        ("port=80&path=/", "host"),
        ("host=127.0.0.1&host=10.0.0.1&port=80&path=/", "host"),
        ("host=127.0.0.1&port=0&path=/", "port"),
        ("host=127.0.0.1&port=70000&path=/", "port"),
        ("host=127.0.0.1&port=8o&path=/", "port"),
        ("host=127.0.0.1&path=/", "port"),
        ("host=127.0.0.1&port=80&path=health", "path"),
        ("host=127.0.0.1&port=80&path=/a%0D%0AX-Evil:%201", "path"),
        ("host=127.0.0.1&port=80&path=/a%20b", "path"),
        ("host=127.0.0.1&port=80&path=/a%00", "path"),
        ("host=127.0.0.1&port=80&path=/" + "a" * 1024, "path"),
        ("host=127.0.0.1&port=80", "path"),
        ("host=127.0.0.1&port=80&path=/&timeout=0", "timeout"),
        ("host=127.0.0.1&port=80&path=/&timeout=31", "timeout"),
        ("host=127.0.0.1&port=80&path=/&timeout=-1", "timeout"),
        ("host=127.0.0.1&port=80&path=/&timeout=1e1", "timeout"),
        ("host=127.0.0.1&port=80&path=/&timeout=nan", "timeout"),
        ("host=127.0.0.1&port=80&path=/&timeout", "timeout"),
    ],
)
def test_bad_arguments_are_a_400_naming_the_argument(edge: Edge, query: str, argument: str) -> None:
    status, body = _raw(edge.socket, f"/berth/probe?{query}")
    assert status == 400
    assert isinstance(body["error"], str) and body["error"].startswith(f"{argument}:"), body


def test_limits_themselves_are_accepted(edge: Edge) -> None:
    path = "/" + "a" * 1023
    assert edge.control.probe("127.0.0.1", 65535, path, 30)["detail"] == "connection refused"
    status, body = _raw(edge.socket, f"/berth/probe?host=127.0.0.1&port={edge.port}&path=/ok")
    assert (status, body["detail"]) == (200, "HTTP 200")  # timeout defaults to 2s


@pytest.mark.parametrize(
    ("host", "port", "path", "timeout", "argument"),
    [
        ("example.com", 80, "/", 2.0, "host"),
        ("127.0.0.1", 0, "/", 2.0, "port"),
        ("127.0.0.1", 70000, "/", 2.0, "port"),
        ("127.0.0.1", 80, "/a\r\nX-Evil: 1", 2.0, "path"),
        ("127.0.0.1", 80, "/", 0.0, "timeout"),
    ],
)
def test_bad_arguments_fail_the_probe_without_raising(
    edge: Edge, host: str, port: int, path: str, timeout: float, argument: str
) -> None:
    with pytest.raises(ProxyError, match=f"400 {argument}:"):
        edge.control.probe(host, port, path, timeout)
    res = EdgeProber([edge.socket]).probe(host, ProbeSpec(path=path, port=port, timeout=timeout))
    assert not res.ok
    assert res.detail.startswith("edge nginx control:") and f"400 {argument}:" in res.detail


def test_a_health_timeout_past_the_edge_limit_is_cut_to_it(edge: Edge) -> None:
    """The edge refuses a timeout over 30 s (400 from the control channel); the prober asks
    for 30 s instead of failing every probe of a service with a longer x-berth timeout."""
    with pytest.raises(ProxyError, match="400 timeout:"):
        edge.control.probe("127.0.0.1", edge.port, "/ok", 31.0)
    res = EdgeProber([edge.socket]).probe(
        "127.0.0.1", ProbeSpec(path="/ok", port=edge.port, timeout=31.0)
    )
    assert (res.ok, res.detail) == (True, "HTTP 200")


def test_edge_prober_without_a_socket_fails_without_raising(tmp_path: Path) -> None:
    spec = ProbeSpec(path="/ok", port=80)
    res = EdgeProber([str(tmp_path / "control.sock")]).probe("127.0.0.1", spec)
    assert not res.ok and res.detail.startswith("edge nginx control:")
    assert "no such socket" in res.detail
    res = EdgeProber([]).probe("127.0.0.1", spec)
    assert (res.ok, res.detail) == (False, "edge nginx control: no control socket configured")


def test_edge_prober_passes_over_sockets_that_do_not_answer(edge: Edge, tmp_path: Path) -> None:
    stale = str(tmp_path / "stale.sock")  # a socket file nobody listens on (a crashed nginx)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    prober = EdgeProber([str(tmp_path / "absent.sock"), stale, edge.socket])
    res = prober.probe("127.0.0.1", ProbeSpec(path="/ok", port=edge.port))
    assert (res.ok, res.detail) == (True, "HTTP 200")
    res = EdgeProber([str(tmp_path / "absent.sock"), stale]).probe(
        "127.0.0.1", ProbeSpec(path="/ok", port=edge.port)
    )
    assert not res.ok and "absent.sock: no such socket" in res.detail
    assert "stale.sock" in res.detail and "refused" in res.detail.lower()
    prober.close()


def test_edge_prober_adds_the_leading_slash_like_http_prober(edge: Edge) -> None:
    res = EdgeProber([edge.socket]).probe("127.0.0.1", ProbeSpec(path="ok", port=edge.port))
    assert (res.ok, res.detail) == (True, "HTTP 200")


def _targets(edge: Edge) -> list[tuple[str, ProbeSpec]]:
    return [
        (f"/{name}", ProbeSpec(path=path, port=port, timeout=timeout))
        for name, path, port, timeout in [
            ("ok", "/ok", edge.port, 2.0),
            ("moved", "/moved", edge.port, 2.0),
            ("unavailable", "/unavailable", edge.port, 2.0),
            ("missing", "/missing", edge.port, 2.0),
            ("big", "/big", edge.port, 2.0),
            ("slow", "/slow", edge.port, 0.3),
            ("slow-enough", "/slow", edge.port, 2.0),
            ("refused", "/ok", edge.closed, 2.0),
            ("silent", "/ok", edge.silent, 0.3),
        ]
    ]


def test_contract_edge_prober_gives_http_probers_verdicts(edge: Edge) -> None:
    """Pins the edge probe to the real prober: same target, same ok, same wording."""
    direct, via_edge = HttpProber(), EdgeProber([edge.socket])
    for name, spec in _targets(edge):
        want = direct.probe("127.0.0.1", spec)
        got = via_edge.probe("127.0.0.1", spec)
        assert got.ok == want.ok, (name, want, got)
        if want.detail.startswith("timeout after"):
            prefix = want.detail.split(":")[0] + ":"
            assert got.detail.startswith(prefix), (name, want, got)
        else:
            assert got.detail == want.detail, (name, want, got)
