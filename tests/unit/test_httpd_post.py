"""POST /hooks/git on the daemon's HTTP server (real sockets): the body is read in the
selector loop and bounded (411 without a length, 413 before reading a body too large, 408
for a body that never completes), wrong methods and unconfigured hooks; and GitHook, the
real handler, with its metric, over the same server."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controller.shell.daemon.git_metrics import GitMetrics
from controller.shell.daemon.hooks import GitHook
from controller.shell.daemon.httpd import Limits
from tests.unit.test_httpd import fake_endpoints, read_all, running


class FakeHook:
    def __init__(self, max_body: int = 100) -> None:
        self.max_body = max_body
        self.bodies: list[bytes] = []
        self.refused = 0

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.bodies.append(body)
        return 202, b"ok\n"

    def too_large(self) -> None:
        self.refused += 1


def send(server: Any, raw: bytes, *, linger: float = 0.0) -> bytes:
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(raw)
        if linger:
            time.sleep(linger)
        return read_all(s)


def post(body: bytes, *, length: int | None = None, extra: str = "") -> bytes:
    n = len(body) if length is None else length
    return (
        f"POST /hooks/git HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n{extra}\r\n".encode() + body
    )


def test_body_split_across_packets_reaches_the_hook() -> None:
    hook = FakeHook()
    with running(_ep(hook)) as server, socket.create_connection(server.address, timeout=5) as s:
        raw = post(b"0123456789")
        s.sendall(raw[:-6])
        time.sleep(0.1)
        s.sendall(raw[-6:])
        assert read_all(s).startswith(b"HTTP/1.0 202 ")
    assert hook.bodies == [b"0123456789"]


def _ep(hook: Any) -> Any:
    ep = fake_endpoints()
    ep.hook = hook
    return ep


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /hooks/git HTTP/1.1\r\nHost: x\r\n\r\n", b"411"),
        (
            b"POST /hooks/git HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            b"411",
        ),
        (post(b"x", length=-1), b"400"),
        (post(b"", extra="Content-Length: 7\r\n"), b"400"),  # two different lengths
        # a folded line continues Content-Length for the stdlib's parser (int() of "3\r\n x"
        # failed: no answer, and an error logged as a bug), not for the server's
        (post(b"abc", extra=" x\r\n"), b"400"),
        (post(b"abc", extra="X-A: 1\r\n\tContent-Length: 3\r\n"), b"400"),
        (post(b"", length=10**15), b"413"),
        (post(b"x" * 101), b"413"),
        (b"GET /hooks/git HTTP/1.0\r\n\r\n", b"404"),
        (b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"POST /nowhere HTTP/1.0\r\nContent-Length: 0\r\n\r\n", b"404"),
    ],
)
def test_refusals(raw: bytes, status: bytes) -> None:
    hook = FakeHook()
    with running(_ep(hook)) as server:
        assert send(server, raw).startswith(b"HTTP/1.0 " + status + b" ")
    assert hook.bodies == []
    assert hook.refused == (1 if status == b"413" else 0)


def test_too_large_is_refused_before_the_body_is_sent() -> None:
    hook = FakeHook(max_body=1000)
    with running(_ep(hook)) as server, socket.create_connection(server.address, timeout=5) as s:
        s.sendall(b"POST /hooks/git HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.0 413 ")  # no byte of the body was sent


def test_a_body_that_never_completes_times_out() -> None:
    hook = FakeHook()
    with running(_ep(hook), limits=Limits(read_timeout=0.5)) as server:
        assert send(server, post(b"abc", length=50), linger=0.1).startswith(b"HTTP/1.0 408 ")
    assert hook.bodies == []


def test_without_a_hook_post_is_404_and_nothing_is_read() -> None:
    with running() as server:
        assert send(server, post(b"{}")).startswith(b"HTTP/1.0 404 ")


def test_extra_bytes_after_the_body_are_not_passed_on() -> None:
    hook = FakeHook()
    with running(_ep(hook)) as server:
        send(server, post(b"abc") + b"GARBAGE")
    assert hook.bodies == [b"abc"]


def test_git_hook_over_the_server_counts_every_verdict() -> None:
    registry = CollectorRegistry()
    metrics = GitMetrics(registry, interval=60, webhook=True)
    synced: list[int] = []
    hook = GitHook(b"k", branch="main", max_body=4096, sync=lambda: synced.append(1),
                   metrics=metrics)  # fmt: skip
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    good = "X-Gitea-Signature: " + hmac.new(b"k", body, hashlib.sha256).hexdigest() + "\r\n"
    with running(_ep(hook)) as server:
        assert send(server, post(body, extra=good + "X-Gitea-Delivery: 1\r\n")).startswith(
            b"HTTP/1.0 202 "
        )
        assert send(server, post(body, extra=good + "X-Gitea-Delivery: 1\r\n")).startswith(
            b"HTTP/1.0 409 "
        )
        bad = "X-Gitea-Signature: " + "0" * 64 + "\r\n"
        assert send(server, post(body, extra=bad)).startswith(b"HTTP/1.0 403 ")
        assert send(server, post(b"x" * 5000)).startswith(b"HTTP/1.0 413 ")
    assert synced == [1]
    text = generate_latest(registry).decode()
    for result, n in (("accepted", 1), ("replayed", 1), ("bad_signature", 1), ("too_large", 1),
                      ("ignored", 0)):  # fmt: skip
        assert f'berth_webhooks_total{{result="{result}"}} {n}.0' in text
