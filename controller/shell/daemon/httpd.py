"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status (DESIGN §6).

Why the server is shaped this way (the stdlib ThreadingHTTPServer spawned a thread per
connection and never timed an idle one out: 300 idle connections held 300 threads):

- One selector thread accepts connections and reads request heads without blocking. An
  idle or slow client costs a file descriptor and a small buffer, never a thread, so a
  port scan, a stuck scraper or a slowloris client cannot starve /healthz.
- A connection must deliver its whole request head within `read_timeout` of being
  accepted. It is a total deadline, not one per recv: a byte every few seconds does not
  keep a connection open. Late ones get 408 and are closed.
- A complete request goes to a small pool of worker threads (at most `workers`, started
  as load needs them). A worker builds the whole response in memory and sends it with one
  `sendall` bounded by `write_timeout`: it never waits for a client to send, and at most
  `write_timeout` for one that does not read.
- At most `max_connections` are open at once, which bounds file descriptors and the work
  queue. Past it, the oldest connection still sending its head is closed to make room:
  the newest connection is the likeliest to be a real scrape, and a half-sent request loses
  only a retry. When every open connection is a complete request, the new one gets 503 at
  once instead of waiting in an unbounded queue.
- HTTP/1.0, one request per connection: a scrape every 15 s gains nothing from keep-alive,
  and no connection outlives its request.

A client that goes away (reset, broken pipe, timeout) is routine and logged at debug; an
exception anywhere else is a bug and is logged as one line (type, message, file:line)
through `logging`, never printed raw to stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import selectors
import socket
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from controller.errors import BerthError
from controller.shell.daemon.listen import bind

log = logging.getLogger("berth.http")

STATUS_SLOTS = 4  # of the 8 workers (Limits.workers)


class Endpoints:
    """What the server asks the daemon; kept narrow so the server is trivial to test."""

    def __init__(
        self,
        *,
        metrics: Callable[[], tuple[bytes, str]],
        alive: Callable[[], bool],
        ready: Callable[[], bool],
        status: Callable[[], Any],
    ) -> None:
        self.metrics, self.alive, self.ready, self.status = metrics, alive, ready, status
        # /status asks Docker, which may hang for its whole timeout: at most this many at
        # once, so the workers always have room left for /healthz and /metrics
        self.slow_slots = threading.BoundedSemaphore(STATUS_SLOTS)


@dataclass(frozen=True)
class Limits:
    """Bounds of the server (see the module docstring); tests shrink them."""

    read_timeout: float = 10.0
    write_timeout: float = 10.0
    workers: int = 8
    max_connections: int = 256
    max_head: int = 16384

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_connections < 1:
            raise ValueError("workers and max_connections must be >= 1")


# -- requests ---------------------------------------------------------------------------


class _Request(BaseHTTPRequestHandler):
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
            log.warning("http: GET %s failed: %s", path, _one_line(str(exc)))
            code, body, ctype = 500, f"error: {_one_line(str(exc))}\n".encode(), _TEXT
        except Exception as exc:  # an endpoint must answer, never hang the scraper
            _log_bug(f"GET {path}", exc)
            code, body, ctype = 500, f"error: {_one_line(str(exc))}\n".encode(), _TEXT
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, path: str) -> tuple[int, bytes, str]:
        ep = self.ep
        if path == "/metrics":
            body, ctype = ep.metrics()
            return 200, body, ctype
        if path == "/healthz":
            ok = ep.alive()
            return (200, b"ok\n", _TEXT) if ok else (503, b"loop stalled\n", _TEXT)
        if path == "/readyz":
            ok = ep.ready()
            return (200, b"ready\n", _TEXT) if ok else (503, b"not ready\n", _TEXT)
        if path == "/status":
            if not ep.slow_slots.acquire(blocking=False):
                return 503, b"busy: too many /status requests in flight\n", _TEXT
            try:
                data = json.dumps(ep.status(), indent=2, default=str).encode() + b"\n"
            finally:
                ep.slow_slots.release()
            return 200, data, "application/json"
        return 404, b"not found\n", _TEXT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s %s", self.client_address[0], _one_line(format % args))


_TEXT = "text/plain; charset=utf-8"


def _status_line(code: int, reason: str) -> bytes:
    body = f"{reason}\n".encode()
    return (
        f"HTTP/1.0 {code} {reason}\r\nContent-Type: {_TEXT}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


_REFUSALS = {
    408: _status_line(408, "Request Timeout"),
    431: _status_line(431, "Request Header Fields Too Large"),
    503: _status_line(503, "Service Unavailable"),
}


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _log_bug(where: str, exc: BaseException) -> None:
    """A genuine bug: one structured log line with where it was raised, no raw traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    error = f"{type(exc).__name__}: {_one_line(str(exc))}{at}"
    log.error("http: %s failed: %s", where, error, extra={"error": error})


# -- the server -------------------------------------------------------------------------


@dataclass
class _Pending:
    """A connection still sending its request head."""

    client: tuple[str, int]
    deadline: float
    head: bytearray = field(default_factory=bytearray)


class HttpServer:
    """The selector thread and its worker pool (see the module docstring)."""

    def __init__(self, listener: socket.socket, ep: Endpoints, limits: Limits) -> None:
        self._listener, self._ep, self._limits = listener, ep, limits
        self.address: tuple[str, int] = listener.getsockname()[:2]
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pending: OrderedDict[socket.socket, _Pending] = OrderedDict()
        self._jobs: queue.SimpleQueue[tuple[socket.socket, _Pending] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._busy = 0  # complete requests queued or being answered
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="berth-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every open connection, let the workers end."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout)
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            self._jobs.put(None)
        for t in workers:
            t.join(max(0.0, timeout))

    # -- the selector thread ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # a bug here must not end the server in silence
                _log_bug("http server loop", exc)
                self._stop.wait(0.1)
        for conn in list(self._pending):
            self._drop(conn)
        self._sel.close()
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    def _step(self) -> None:
        oldest = next(iter(self._pending.values()), None)
        wait = None if oldest is None else max(0.0, oldest.deadline - time.monotonic())
        for key, _ in self._sel.select(wait):
            if key.data == "accept":
                self._accept()
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]
        now = time.monotonic()
        while self._pending:
            conn, p = next(iter(self._pending.items()))
            if p.deadline > now:
                break
            self._drop(conn, 408)

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE and friends: make room, try again a bit later
                log.warning("http: accept failed: %s", exc, extra={"error": str(exc)})
                if self._pending:
                    self._drop(next(iter(self._pending)))
                self._stop.wait(0.1)  # the listener stays readable: no busy loop meanwhile
                return
            conn.setblocking(False)
            with self._lock:
                full = len(self._pending) + self._busy >= self._limits.max_connections
            if full and not self._pending:
                self._refuse(conn, 503)
                continue
            if full:
                self._drop(next(iter(self._pending)))  # the oldest still sending its head
            deadline = time.monotonic() + self._limits.read_timeout
            self._pending[conn] = _Pending((str(addr[0]), int(addr[1])), deadline)
            self._sel.register(conn, selectors.EVENT_READ, "conn")

    def _read(self, conn: socket.socket) -> None:
        p = self._pending.get(conn)
        if p is None:  # dropped earlier in this same batch of events
            return
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            log.debug("http: client went away: %s", exc)
            self._drop(conn)
            return
        if not data:  # closed before finishing its request
            self._drop(conn)
            return
        p.head += data
        if b"\r\n\r\n" in p.head or b"\n\n" in p.head:
            self._sel.unregister(conn)
            del self._pending[conn]
            self._dispatch(conn, p)
        elif len(p.head) > self._limits.max_head:
            self._drop(conn, 431)

    def _drop(self, conn: socket.socket, code: int | None = None) -> None:
        self._sel.unregister(conn)
        del self._pending[conn]
        self._refuse(conn, code)

    @staticmethod
    def _refuse(conn: socket.socket, code: int | None) -> None:
        """Best effort: a short reply that fits the socket buffer, then close."""
        if code is not None:
            with contextlib.suppress(OSError):
                conn.send(_REFUSALS[code])
        _close(conn)

    # -- the workers --------------------------------------------------------------------

    def _dispatch(self, conn: socket.socket, p: _Pending) -> None:
        """Queue a complete request; one more worker when every one has a request already
        (more requests than workers) and the pool is not at its size yet."""
        with self._lock:
            self._busy += 1
            grow = len(self._workers) < min(self._busy, self._limits.workers)
            if grow:
                t = threading.Thread(
                    target=self._work, name=f"berth-http-{len(self._workers)}", daemon=True
                )
                self._workers.append(t)
        if grow:
            t.start()
        self._jobs.put((conn, p))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            conn, p = job
            try:
                self._answer(conn, p)
            finally:
                _close(conn)
                with self._lock:
                    self._busy -= 1

    def _answer(self, conn: socket.socket, p: _Pending) -> None:
        try:
            response = _Request(bytes(p.head), p.client, self._ep).response
            conn.settimeout(self._limits.write_timeout)  # sendall: a total deadline
            conn.sendall(response)
        except OSError as exc:  # reset, broken pipe, timeout: the client's business
            log.debug("http: client went away: %s", exc)
        except Exception as exc:
            _log_bug("http request", exc)


def _close(conn: socket.socket) -> None:
    """Close after reading away what the client sent beyond its head (a few non-blocking
    reads): closing with unread data makes the kernel send a reset, which destroys the
    reply still in flight."""
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        for _ in range(16):
            if not conn.recv(65536):
                break
    conn.close()


def serve(address: tuple[str, int], ep: Endpoints, *, limits: Limits | None = None) -> HttpServer:
    """Bind `address` (ListenError if it cannot be) and answer on it from now on."""
    server = HttpServer(bind(address), ep, limits or Limits())
    server.start()
    return server
