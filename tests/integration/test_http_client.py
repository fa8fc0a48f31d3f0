"""Contract of the HttpClient port (smoke checks) on controller/adapters/http_client.py,
against real servers on loopback: a threaded http.server for the answers a check judges,
and raw sockets for the hostile ones (trickled, never sent, endless, malformed, floods).

What a fake HttpClient must mirror: status and headers returned for every status (a 3xx
or 5xx is an answer, not an error; redirects are not followed), header names lower-cased
and repeated ones joined with ", ", the body cut at `limit`, and ProbeError with these
messages for everything else: "connection refused", "timed out after 0.3s",
"connection closed without a response", "malformed response: ...".
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from controller.adapters.http_client import HttpClient
from controller.errors import ProbeError
from controller.task_ports import HttpAnswer
from tests.support.daemon import free_port
from tests.support.wire import HOLD, raw_server, read_head, recorder

Handler = Callable[[socket.socket, threading.Event], None]
client = HttpClient()


def get(
    port: int,
    path: str = "/",
    *,
    host: str = "127.0.0.1",
    timeout: float = 2.0,
    limit: int = 1 << 20,
) -> HttpAnswer:
    return client.request(
        host, port, "GET", path, headers={}, body=None, timeout=timeout, limit=limit
    )


def failure(handler: Handler, timeout: float = 2.0) -> tuple[str, float]:
    """The ProbeError's message for a request to a raw server, and the seconds it took."""
    with raw_server(handler) as server:
        started = time.monotonic()
        with pytest.raises(ProbeError) as caught:
            get(server.port, timeout=timeout)
        return str(caught.value), time.monotonic() - started


def test_answer_status_headers_and_body_as_sent() -> None:
    with recorder() as rec:
        rec.routes["/items?x=1"] = (
            201,
            [("X-Twice", "a"), ("X-Twice", "b"), ("Content-Type", "application/json")],
            b'{"items": []}',
        )
        answer = client.request(
            "127.0.0.1", rec.port, "GET", "/items?x=1",
            headers={"Accept": "application/json", "Host": "app.example"},
            body=None, timeout=2.0,
        )  # fmt: skip
    assert answer.status == 201
    assert answer.body == b'{"items": []}'
    assert answer.headers["x-twice"] == "a, b"
    assert answer.headers["content-type"] == "application/json"
    seen = rec.seen[0]
    assert (seen.method, seen.path) == ("GET", "/items?x=1")
    assert seen.header("User-Agent") == "berth-smoke"
    assert seen.header("Connection") == "close"
    assert seen.header("Accept") == "application/json"
    assert seen.header("Host") == "app.example"  # the check's own Host wins


def test_post_body_is_framed_by_content_length() -> None:
    with recorder() as rec:
        rec.routes["/echo"] = (200, [], b"ok")
        client.request(
            "127.0.0.1", rec.port, "POST", "/echo",
            headers={"Content-Length": "999", "Transfer-Encoding": "chunked"},
            body=b'{"a": 1}', timeout=2.0,
        )  # fmt: skip
    seen = rec.seen[0]
    assert seen.body == b'{"a": 1}'
    assert seen.header("Content-Length") == "8"
    assert seen.header("Transfer-Encoding") is None


def test_errors_and_redirects_are_answers_not_followed() -> None:
    with recorder() as rec:
        rec.routes["/old"] = (302, [("Location", "/new")], b"")
        rec.routes["/boom"] = (500, [], b"trace")
        moved, boom = get(rec.port, "/old"), get(rec.port, "/boom")
        head = client.request(
            "127.0.0.1", rec.port, "HEAD", "/boom", headers={}, body=None, timeout=2.0
        )
    assert (moved.status, moved.headers["location"]) == (302, "/new")
    assert (boom.status, boom.body) == (500, b"trace")
    assert (head.status, head.body) == (500, b"")
    assert [s.path for s in rec.seen] == ["/old", "/boom", "/boom"]  # /new never asked


def test_ipv6_literal() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        ctx = recorder("::1")
        rec = ctx.__enter__()
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        rec.routes["/"] = (200, [], b"six")
        assert get(rec.port, host="[::1]").body == b"six"
        assert get(rec.port, host="::1").status == 200
        assert rec.seen[0].header("Host") == f"[::1]:{rec.port}"
    finally:
        ctx.__exit__(None, None, None)


def test_proxy_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    with raw_server(lambda conn, stop: None) as proxy, recorder() as rec:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        rec.routes["/"] = (200, [], b"direct")
        assert get(rec.port).body == b"direct"
    assert proxy.accepted == 0


def test_body_is_read_up_to_the_limit_only() -> None:
    sent = []

    def endless(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        while not stop.is_set():
            conn.sendall(b"x" * 65536)
            sent.append(1)

    with raw_server(endless) as server:
        started = time.monotonic()
        answer = get(server.port, limit=100_000)
        took = time.monotonic() - started
    assert answer.body == b"x" * 100_000
    assert took < 1.0


def test_chunked_body_is_cut_at_the_limit() -> None:
    def chunked(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    with raw_server(chunked) as server:
        assert get(server.port).body == b"hello world"
        assert get(server.port, limit=7).body == b"hello w"


def test_connection_refused() -> None:
    with pytest.raises(ProbeError, match=r"^connection refused$"):
        get(free_port())


def test_a_server_that_never_answers_times_out_on_time() -> None:
    def silent(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        stop.wait(HOLD)

    message, took = failure(silent, timeout=0.3)
    assert message == "timed out after 0.3s"
    assert 0.3 <= took < 0.8


@pytest.mark.parametrize("where", ["status line", "body"])
def test_a_trickling_server_cannot_hold_the_request_past_its_timeout(where: str) -> None:
    """Each byte comes well within a socket timeout; only the overall deadline stops it."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"

    def trickle(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        if where == "body":
            conn.sendall(head)
        for byte in head if where == "status line" else b"x" * 1000:
            if stop.wait(0.05):
                return
            conn.sendall(bytes([byte]))

    message, took = failure(trickle, timeout=0.5)
    assert message == "timed out after 0.5s"
    assert took < 1.0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"hello world\r\n\r\n", "malformed response: hello world"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed response: HTTP/1.1 abc OK"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Flood: y\r\n" * 200 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"y" * 70000 + b"\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 " + b"y" * 70000, "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "malformed response: Incomp"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed response"),
        (b"", "connection closed without a response"),
    ],
)
def test_a_malformed_answer_is_a_probe_error(answer: bytes, expected: str) -> None:
    def reply(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        conn.sendall(answer)

    message, _ = failure(reply)
    assert expected in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/", {"X-A": "1\r\nX-Injected: 1"}, "control character"),
        ("GET", "/", {"X-A\r\nX-B": "1"}, "invalid header name"),
        ("GET", "/", {"X-A": "caf\u00e9 \u2603"}, "not latin-1"),
        ("GET", "/a b", {}, "invalid path"),
        ("GET", "/a\r\nX: y", {}, "invalid path"),
        ("GET", "relative", {}, "must start with /"),
        ("GET /x HTTP/1.1\r\n", "/", {}, "invalid method"),
    ],
)
def test_a_request_that_could_split_is_refused_before_connecting(
    method: str, path: str, headers: dict[str, str], expected: str
) -> None:
    with raw_server(lambda conn, stop: None) as server, pytest.raises(ProbeError, match=expected):
        client.request(
            "127.0.0.1", server.port, method, path, headers=headers, body=None, timeout=1
        )
    assert server.accepted == 0


def test_non_ascii_path_is_percent_encoded() -> None:
    with recorder() as rec:
        get(rec.port, "/caf\u00e9?q=\u2603")
    assert rec.seen[0].path == "/caf%C3%A9?q=%E2%98%83"
