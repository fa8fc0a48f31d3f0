"""The daemon's HTTP server on real sockets (127.0.0.1, port 0): --listen parsing and
binding errors, the endpoints, idle and slow clients that must not cost threads, clients
that vanish mid-request or mid-response, bugs logged as one line, and /healthz of a
Daemon whose loop stalls."""

from __future__ import annotations

import contextlib
import http.client
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.shell.daemon.httpd import STATUS_SLOTS, Endpoints, HttpServer, Limits, serve
from controller.shell.daemon.listen import ListenError, parse_listen, probe, show
from controller.shell.daemon.manager import Daemon
from controller.shell.wiring import Context

GOOD = [
    ("127.0.0.1:9180", ("127.0.0.1", 9180)),
    ("0.0.0.0:1", ("0.0.0.0", 1)),
    (":9180", ("127.0.0.1", 9180)),  # an empty host is loopback, never every interface
    ("localhost:65535", ("localhost", 65535)),
    ("berth-controller.internal.:80", ("berth-controller.internal.", 80)),
    ("[::1]:9180", ("::1", 9180)),
    ("[::]:9180", ("::", 9180)),
    ("[fe80::1%eth0]:9180", ("fe80::1%eth0", 9180)),
]

BAD = [
    "",
    "nohost",
    "9180",
    "1.2.3.4:99999",
    "1.2.3.4:0",
    ":abc",
    "host:",
    "host:-1",
    "host:+80",
    "host: 80",
    "host:٣",  # a digit, but not an ASCII one
    "[::1",
    "[::1]",
    "[::1]:",
    "[::1]9180",
    "[nothex]:9180",
    "[]:9180",
    "::1:9180",
    "999.1.1.1:9180",
    "1.2.3:9180",
    "a b:9180",
    "-bad-.example:9180",
    "host\n:9180",
    "x" * 300 + ":9180",
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_parse_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", BAD)
def test_parse_listen_refuses_with_one_line_naming_the_value(text: str) -> None:
    with pytest.raises(ListenError) as info:
        parse_listen(text)
    message = str(info.value)
    assert message.startswith(f"--listen {text!r}: "), message
    assert "\n" not in message


def test_show_brackets_ipv6() -> None:
    assert show(("::1", 9180)) == "[::1]:9180"
    assert show(("127.0.0.1", 9180)) == "127.0.0.1:9180"


# -- binding ----------------------------------------------------------------------------


def fake_endpoints(**overrides: Callable[..., Any]) -> Endpoints:
    calls: dict[str, Callable[..., Any]] = {
        "metrics": lambda: (b"berth_up 1\n", "text/plain; version=0.0.4"),
        "alive": lambda: True,
        "ready": lambda: True,
        "status": lambda: [{"service": "api"}],
    }
    calls.update(overrides)
    return Endpoints(**calls)


@contextlib.contextmanager
def running(
    ep: Endpoints | None = None, *, host: str = "127.0.0.1", limits: Limits | None = None
) -> Iterator[HttpServer]:
    server = serve((host, 0), ep or fake_endpoints(), limits=limits)
    try:
        yield server
    finally:
        server.shutdown()


def test_port_in_use_is_one_line() -> None:
    with running() as server, pytest.raises(ListenError, match="already in use") as info:
        serve(server.address, fake_endpoints())
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        (("192.0.2.1", 9180), "not an address of this host"),  # TEST-NET-1: never assigned
        (("berth-no-such-host.invalid", 9180), "cannot resolve"),  # .invalid never resolves
    ],
)
def test_unbindable_address_is_one_line(address: tuple[str, int], why: str) -> None:
    with pytest.raises(ListenError, match=why) as info:
        serve(address, fake_endpoints())
    assert str(info.value).startswith(f"--listen {show(address)!r}: ")
    assert "\n" not in str(info.value)


# -- the endpoints ----------------------------------------------------------------------


def get(server: HttpServer, path: str, *, timeout: float = 5.0) -> http.client.HTTPResponse:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def body(server: HttpServer, path: str) -> tuple[int, bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", path)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def test_endpoints_answer() -> None:
    state = {"alive": True, "ready": False}
    ep = fake_endpoints(alive=lambda: state["alive"], ready=lambda: state["ready"])
    with running(ep) as server:
        assert body(server, "/healthz") == (200, b"ok\n")
        assert body(server, "/readyz") == (503, b"not ready\n")
        state.update(alive=False, ready=True)
        assert body(server, "/healthz") == (503, b"loop stalled\n")
        assert body(server, "/readyz") == (200, b"ready\n")
        assert body(server, "/metrics") == (200, b"berth_up 1\n")
        assert body(server, "/status?x=1")[1] == b'[\n  {\n    "service": "api"\n  }\n]\n'
        assert body(server, "/nothing")[0] == 404
        resp = get(server, "/metrics")
        assert resp.getheader("Content-Type") == "text/plain; version=0.0.4"
        assert resp.getheader("Server") == "berth"  # no Python version disclosed


def test_ipv6_loopback() -> None:
    with running(host="::1") as server:
        assert server.address[0] == "::1"
        assert get(server, "/healthz").status == 200


def test_one_request_per_connection() -> None:
    """HTTP/1.0 close-after-response: a keep-alive request does not hold the connection."""
    with running() as server, socket.create_connection(server.address, timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        data = read_all(s)
    assert data.startswith(b"HTTP/1.0 200 ")
    assert data.endswith(b"ok\n")  # and then EOF: the server closed it


def test_bytes_after_the_head_do_not_reset_the_answer() -> None:
    """Closing with unread input makes the kernel send a reset, which destroys what of the
    answer is still in flight (here a /metrics larger than the socket buffers)."""
    big = b"x" * (8 << 20)
    with running(fake_endpoints(metrics=lambda: (big, "text/plain"))) as server:
        for _ in range(3):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a slow reader
                s.settimeout(5)
                s.connect(server.address)
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                first = s.recv(65536)  # the answer has begun: the head was read
                s.sendall(b"GET /status HTTP/1.1\r\n\r\n")  # a pipelined request
                assert (first + read_all(s)).endswith(big)


def read_all(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (b"GET /a b c HTTP/1.0\r\n\r\n", b"400"),
        (b"POST /status HTTP/1.0\r\n\r\n", b"405"),
        (b"PUT /status HTTP/1.0\r\n\r\n", b"501"),
    ],
)
def test_malformed_request_is_refused(request_: bytes, status: bytes) -> None:
    with running() as server, socket.create_connection(server.address, timeout=5) as s:
        s.sendall(request_)
        assert read_all(s).startswith(b"HTTP/1.0 " + status + b" ")


# -- logging: client errors silent, bugs one line ---------------------------------------


@pytest.fixture()
def records() -> Iterator[list[logging.LogRecord]]:
    """Records of berth.http, whatever another test did to the `berth` logger."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    logger = logging.getLogger("berth.http")
    handler, level = Keep(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield got
    logger.removeHandler(handler)
    logger.setLevel(level)


def loud(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def test_endpoint_bug_is_500_and_one_log_line(
    records: list[logging.LogRecord], capfd: pytest.CaptureFixture[str]
) -> None:
    def broken() -> Any:
        raise KeyError("multi\nline")

    with running(fake_endpoints(status=broken)) as server:
        status, data = body(server, "/status")
        assert get(server, "/healthz").status == 200  # the server is fine afterwards
    assert status == 500 and data.startswith(b"error: ")
    [line] = loud(records)
    assert "GET /status failed: KeyError" in line and "test_httpd.py:" in line, line
    assert "\n" not in line
    assert "Traceback" not in capfd.readouterr().err


def test_client_gone_mid_request_is_silent(
    records: list[logging.LogRecord], capfd: pytest.CaptureFixture[str]
) -> None:
    with running() as server:
        for partial in (b"", b"GE", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):
            with socket.create_connection(server.address, timeout=5) as s:
                s.sendall(partial)
                reset_on_close(s)
        assert get(server, "/healthz").status == 200
    assert loud(records) == []
    assert capfd.readouterr().err == ""


def reset_on_close(s: socket.socket) -> None:
    """close() then sends RST instead of FIN: the abrupt end of a killed client."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_client_gone_mid_response_is_silent(
    records: list[logging.LogRecord], capfd: pytest.CaptureFixture[str]
) -> None:
    big = b"x" * (32 << 20)  # far more than the socket buffers: the send is still going
    with running(fake_endpoints(metrics=lambda: (big, "text/plain"))) as server:
        for _ in range(3):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(5)
            s.connect(server.address)
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert s.recv(16).startswith(b"HTTP/1.0 200")  # the response has begun
            reset_on_close(s)
            s.close()
        assert get(server, "/healthz").status == 200
        wait_until(lambda: any("client went away" in r.getMessage() for r in records))
    assert loud(records) == []
    assert capfd.readouterr().err == ""


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


# -- bounded threads and connections ----------------------------------------------------


def open_idle(address: tuple[str, int], n: int) -> list[socket.socket]:
    return [socket.create_connection(address, timeout=5) for _ in range(n)]


def test_300_idle_connections_cost_no_threads() -> None:
    before = threading.active_count()
    with running() as server:
        idle = open_idle(server.address, 300)
        try:
            for _ in range(20):  # answered in turn, after every idle one was accepted
                assert get(server, "/healthz", timeout=5).status == 200
            grown = threading.active_count() - before
        finally:
            for s in idle:
                s.close()
    # the selector thread and at most `workers` workers, however many connections
    assert grown <= 1 + Limits().workers, grown


def test_past_max_connections_the_oldest_idle_one_goes() -> None:
    with running(limits=Limits(max_connections=4)) as server:
        idle = open_idle(server.address, 10)
        try:
            assert get(server, "/healthz").status == 200
            assert idle[0].recv(1) == b""  # closed by the server to make room
        finally:
            for s in idle:
                s.close()


def test_full_of_requests_answers_503_at_once() -> None:
    release = threading.Event()

    def slow_status() -> Any:
        release.wait(10)
        return []

    limits = Limits(max_connections=2, workers=1)
    with running(fake_endpoints(status=slow_status), limits=limits) as server:
        held = [threading.Thread(target=get, args=(server, "/status")) for _ in range(2)]
        for t in held:
            t.start()
        try:
            wait_until(lambda: server_busy(server) == 2)
            assert get(server, "/healthz").status == 503
        finally:
            release.set()
            for t in held:
                t.join()
        assert get(server, "/healthz").status == 200


def server_busy(server: HttpServer) -> int:
    return server._busy


def test_slow_head_is_timed_out_with_408_by_a_total_deadline() -> None:
    """One byte at a time keeps a per-recv timeout happy forever; the deadline is total."""
    with (
        running(limits=Limits(read_timeout=0.5)) as server,
        socket.create_connection(server.address, timeout=5) as s,
    ):
        for b in b"GET /healthz HTTP/1.1\r\nHost: a-very-long-host-name\r\n":
            if select.select([s], [], [], 0.1)[0]:  # 50 bytes: 5 s, ten times the deadline
                break
            s.send(bytes([b]))
        else:
            raise AssertionError("still open after 5 s of a byte every 0.1 s")
        assert read_all(s).startswith(b"HTTP/1.0 408 ")


def test_idle_connection_is_closed_after_the_read_timeout() -> None:
    with (
        running(limits=Limits(read_timeout=0.3)) as server,
        socket.create_connection(server.address, timeout=5) as s,
    ):
        assert read_all(s).startswith(b"HTTP/1.0 408 ")


def test_oversized_head_gets_431() -> None:
    with (
        running(limits=Limits(max_head=1024)) as server,
        socket.create_connection(server.address, timeout=5) as s,
    ):
        s.sendall(b"GET / HTTP/1.0\r\nX: " + b"y" * 4096)
        assert read_all(s).startswith(b"HTTP/1.0 431 ")


# -- the image's HEALTHCHECK ------------------------------------------------------------


def test_probe() -> None:
    state = {"alive": True}
    with running(fake_endpoints(alive=lambda: state["alive"])) as server:
        listen = show(server.address)
        assert probe(listen) == 0
        state["alive"] = False
        assert probe(listen) == 1
    assert probe(listen) == 1  # nothing listens any more
    assert probe("nonsense") == 1


# -- /healthz of the real Daemon --------------------------------------------------------


@pytest.fixture()
def daemon(tmp_path: Path) -> Daemon:
    (tmp_path / "desired").mkdir()
    ctx = Context(str(tmp_path / "desired"), str(tmp_path / "state"), "tcp://127.0.0.1:1")
    return Daemon(ctx, resync=1.0)


def test_healthz_of_a_fresh_daemon_is_200(daemon: Daemon) -> None:
    """Before any thread or pass exists (start-up) the loop counts as alive."""
    with running(daemon.endpoints()) as server:
        assert get(server, "/healthz").status == 200


def test_healthz_of_a_stalled_loop_is_503(daemon: Daemon) -> None:
    with running(daemon.endpoints()) as server:
        daemon._heartbeat = time.monotonic() - daemon.stall_after - 1  # no tick, no pass
        assert get(server, "/healthz").status == 503
        daemon._heartbeat = time.monotonic()
        assert get(server, "/healthz").status == 200
        dead = threading.Thread(target=lambda: None)
        dead.start()
        dead.join()
        daemon._threads = [dead]  # e.g. the event follower died
        assert get(server, "/healthz").status == 503
        daemon._threads = []
        daemon.stopping.set()
        assert get(server, "/healthz").status == 503


def test_a_resync_tick_is_a_heartbeat(daemon: Daemon) -> None:
    seen: list[bool] = []
    daemon.reload = lambda reason: seen.append(daemon.alive())  # type: ignore[method-assign]
    daemon._heartbeat = time.monotonic() - daemon.stall_after - 1
    assert not daemon.alive()
    daemon._resync()
    assert seen == [True]  # beaten before the reload, which is what may hang
    assert daemon.alive()


def test_a_hanging_status_never_starves_healthz() -> None:
    """/status asks Docker, which may hang for a minute: eight of them in flight must
    leave /healthz answering at once (the slow ones get 503 past STATUS_SLOTS)."""
    release = threading.Event()

    def hanging() -> list[object]:
        release.wait(30)
        return []

    with running(fake_endpoints(status=hanging)) as server:
        results: list[int] = []

        def slow() -> None:
            with contextlib.suppress(OSError, http.client.HTTPException):
                results.append(get(server, "/status", timeout=40).status)

        threads = [threading.Thread(target=slow) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        try:
            assert get(server, "/healthz", timeout=3).status == 200
        finally:
            release.set()
            for t in threads:
                t.join(40)
        assert results.count(503) == 8 - STATUS_SLOTS and results.count(200) == STATUS_SLOTS


@pytest.mark.parametrize(
    "line",
    [
        b"GET /healthz HTTP/2.0\r\n\r\n",
        b"GET /healthz HTTP/1.a\r\n\r\n",
        b"GET /healthz HTTP/1.0 x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
)
def test_an_unparsable_request_line_gets_a_well_formed_reply(line: bytes) -> None:
    with running() as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(line)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 "), reply[:80]
        status = int(reply.split(b" ", 2)[1])
        assert 400 <= status < 600 and b"\r\n\r\n" in reply
