"""Requests of the daemon's HTTP server (httpd.py): what the server asks the daemon
(`Endpoints`, `Hook`), one request parsed from its complete head (and body) and answered
into memory, the canned refusals, and the head parsing the selector thread needs."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from controller.errors import BerthError

log = logging.getLogger("berth.http")

STATUS_SLOTS = 4  # of the 8 workers (Limits.workers)
HOOK_PATH = "/hooks/git"
_GET_PATHS = ("/metrics", "/healthz", "/readyz", "/status", "/status/source", "/status/updates")


class Hook(Protocol):
    """POST /hooks/git: `handle` judges a complete delivery; `too_large` counts one refused
    by its Content-Length alone."""

    max_body: int

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]: ...

    def too_large(self) -> None: ...


class Endpoints:
    """What the server asks the daemon; kept narrow so the server is trivial to test."""

    def __init__(
        self,
        *,
        metrics: Callable[[], tuple[bytes, str]],
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        status: Callable[[], Any],
        source: Callable[[], Any] | None = None,
        hook: Hook | None = None,
        updates: Callable[[], Any] | None = None,
    ) -> None:
        self.metrics, self.alive, self.ready, self.status = metrics, alive, ready, status
        self.source, self.hook, self.updates = source, hook, updates
        # /status asks Docker, which may hang for its whole timeout: at most this many at
        # once, so the workers always have room left for /healthz and /metrics
        self.slow_slots = threading.BoundedSemaphore(STATUS_SLOTS)


# -- requests ---------------------------------------------------------------------------


class Request(BaseHTTPRequestHandler):
    """One request parsed from a complete head, answered into memory (`response`).

    The stdlib handler does the HTTP parsing and error replies (400, 414, 501); it never
    touches the socket here, so it cannot block on a client or die of one."""

    # The stdlib answers a request line it cannot parse (`HTTP/2.0`, `HTTP/1.a`, the HTTP/2
    # preface) in the version it assumed, 0.9 by default: a body with no status line.
    default_request_version = "HTTP/1.0"

    def version_string(self) -> str:
        return "berth"  # no Python version in the Server header

    def __init__(self, head: bytes, client: tuple[str, int], ep: Endpoints) -> None:
        self.ep = ep
        self.client_address = client
        self.rfile = io.BytesIO(head)
        self._out = self.wfile = io.BytesIO()
        self.close_connection = True
        self.handle_one_request()

    @property
    def response(self) -> bytes:
        return self._out.getvalue()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            code, body, ctype = self._route(path)
        except BerthError as exc:  # e.g. Docker unreachable for /status: not a bug
            log.warning("http: GET %s failed: %s", path, one_line(str(exc)))
            code, body, ctype = 500, f"error: {one_line(str(exc))}\n".encode(), TEXT
        except Exception as exc:  # an endpoint must answer, never hang the scraper
            log_bug(f"GET {path}", exc)
            code, body, ctype = 500, f"error: {one_line(str(exc))}\n".encode(), TEXT
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        hook = self.ep.hook
        if path == HOOK_PATH and hook is not None:
            length = int(self.headers.get("Content-Length", "0"))  # checked by the server
            try:
                code, body = hook.handle(dict(self.headers.items()), self.rfile.read(length))
            except Exception as exc:
                log_bug(f"POST {path}", exc)
                code, body = 500, f"error: {one_line(str(exc))}\n".encode()
        elif path in _GET_PATHS:
            code, body = 405, b"method not allowed\n"
        else:
            code, body = 404, b"not found\n"
        self.send_response(code)
        if code == 405:
            self.send_header("Allow", "GET")
        self.send_header("Content-Type", TEXT)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, path: str) -> tuple[int, bytes, str]:
        ep = self.ep
        if path == "/status/source" and ep.source is not None:
            data = json.dumps(ep.source(), indent=2, default=str).encode() + b"\n"
            return 200, data, "application/json"
        if path == "/status/updates" and ep.updates is not None:
            data = json.dumps(ep.updates(), indent=2, default=str).encode() + b"\n"
            return 200, data, "application/json"
        if path == "/metrics":
            body, ctype = ep.metrics()
            return 200, body, ctype
        if path == "/healthz":
            ok = ep.alive()
            return (200, b"ok\n", TEXT) if ok else (503, b"loop stalled\n", TEXT)
        if path == "/readyz":
            ok = ep.ready()
            return (200, b"ready\n", TEXT) if ok else (503, b"not ready\n", TEXT)
        if path == "/status":
            if not ep.slow_slots.acquire(blocking=False):
                return 503, b"busy: too many /status requests in flight\n", TEXT
            try:
                data = json.dumps(ep.status(), indent=2, default=str).encode() + b"\n"
            finally:
                ep.slow_slots.release()
            return 200, data, "application/json"
        return 404, b"not found\n", TEXT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s %s", self.client_address[0], one_line(format % args))


TEXT = "text/plain; charset=utf-8"


def status_line(code: int, reason: str) -> bytes:
    body = f"{reason}\n".encode()
    return (
        f"HTTP/1.0 {code} {reason}\r\nContent-Type: {TEXT}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


REFUSALS = {
    400: status_line(400, "Bad Request"),
    408: status_line(408, "Request Timeout"),
    411: status_line(411, "Length Required"),
    413: status_line(413, "Content Too Large"),
    431: status_line(431, "Request Header Fields Too Large"),
    503: status_line(503, "Service Unavailable"),
}


def one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def log_bug(where: str, exc: BaseException) -> None:
    """A genuine bug: one structured log line with where it was raised, no raw traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    error = f"{type(exc).__name__}: {one_line(str(exc))}{at}"
    log.error("http: %s failed: %s", where, error, extra={"error": error})


def head_end(buf: bytearray) -> int | None:
    """Where the head ends (after its blank line), or None while it is incomplete."""
    crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    ends = [i + n for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
    return min(ends) if ends else None


def content_length(head: bytes) -> int | None:
    """The Content-Length of a head: None when absent (or a chunked body), -1 when invalid
    or given twice with different values, or when the head folds a line (obsolete, RFC 9112
    5.2: a 400): the stdlib's parser, which the request is answered from, would read a
    folded line as part of the one before, and the two would disagree on the length."""
    values = set()
    for raw in head.split(b"\n")[1:]:
        if raw[:1] in (b" ", b"\t"):
            return -1
        name, sep, value = raw.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            values.add(value.strip())
    if not values:
        return None
    if len(values) > 1:
        return -1
    (value,) = values
    if not value.isdigit() or len(value) > 40:
        return -1
    return int(value)
