"""HttpProber against a real local HTTP server: the verdicts the gate relies on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.adapters.http_prober import HttpProber
from controller.core.model import ProbeSpec


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        code = {"/ok": 200, "/fail": 500, "/moved": 302, "/slow": 200}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        if code == 302:
            self.send_header("Location", "/ok")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def prober() -> Iterator[HttpProber]:
    p = HttpProber()
    yield p
    p.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_200_is_ok(prober: HttpProber, port: int) -> None:
    res = prober.probe("127.0.0.1", ProbeSpec(path="/ok", port=port))
    assert res.ok and res.detail == "HTTP 200"


def test_redirect_is_ok_and_not_followed(prober: HttpProber, port: int) -> None:
    res = prober.probe("127.0.0.1", ProbeSpec(path="/moved", port=port))
    assert res.ok and res.detail == "HTTP 302"


@pytest.mark.parametrize(("path", "code"), [("/fail", 500), ("/missing", 404)])
def test_errors_are_not_ok(prober: HttpProber, port: int, path: str, code: int) -> None:
    res = prober.probe("127.0.0.1", ProbeSpec(path=path, port=port))
    assert not res.ok and res.detail == f"HTTP {code}"


def test_connection_refused_is_not_ok(prober: HttpProber) -> None:
    res = prober.probe("127.0.0.1", ProbeSpec(path="/ok", port=_free_port()))
    assert not res.ok and res.detail == "connection refused"


def test_timeout_is_not_ok_and_bounded(prober: HttpProber, port: int) -> None:
    t0 = time.monotonic()
    res = prober.probe("127.0.0.1", ProbeSpec(path="/slow", port=port, timeout=0.2))
    assert not res.ok and res.detail.startswith("timeout after 0.2s")
    assert time.monotonic() - t0 < 0.9


def test_proxy_environment_is_ignored(
    prober: HttpProber, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    fresh = HttpProber()
    assert fresh.probe("127.0.0.1", ProbeSpec(path="/ok", port=port)).ok
    fresh.close()


def test_a_garbage_answer_is_not_ok(prober: HttpProber) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)

        def answer() -> None:
            conn, _ = srv.accept()
            conn.recv(1024)
            conn.sendall(b"this is not HTTP\r\n\r\n")
            conn.close()

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        res = prober.probe("127.0.0.1", ProbeSpec(path="/ok", port=srv.getsockname()[1]))
        t.join(5)
    assert not res.ok and res.detail.startswith("BadStatusLine")


def test_ipv6_literal(prober: HttpProber) -> None:
    try:
        server = ThreadingHTTPServer(("::1", 0), _Handler, bind_and_activate=False)
        server.address_family = socket.AF_INET6
        server.socket = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.server_bind()
        server.server_activate()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for host in ("::1", "[::1]"):
            res = prober.probe(host, ProbeSpec(path="/ok", port=server.server_address[1]))
            assert res.ok, res.detail
    finally:
        server.shutdown()
        server.server_close()
