"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status (DESIGN §6), and with
a git source /status/source and the webhook POST /hooks/git (docs/git-source.md).

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
- The one POST (the webhook) carries a body, read by the same selector thread: it needs a
  Content-Length (else 411), one above the hook's `max_body` is refused with 413 before a
  byte of it is read, and the body has its own total deadline of `read_timeout` from the
  end of the head (else 408). Without a webhook configured, POST /hooks/git is 404.

A client that goes away (reset, broken pipe, timeout) is routine and logged at debug; an
exception anywhere else is a bug and is logged as one line (type, message, file:line)
through `logging`, never printed raw to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from controller.shell.daemon.http_request import (
    HOOK_PATH,
    REFUSALS,
    STATUS_SLOTS,
    Endpoints,
    Hook,
    Request,
    content_length,
    head_end,
    log_bug,
)
from controller.shell.daemon.listen import bind

__all__ = ["STATUS_SLOTS", "Endpoints", "Hook", "HttpServer", "Limits", "serve"]

log = logging.getLogger("berth.http")


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


# -- the server -------------------------------------------------------------------------


@dataclass
class _Pending:
    """A connection still sending its request head."""

    client: tuple[str, int]
    deadline: float
    head: bytearray = field(default_factory=bytearray)  # the head, then the body after it
    need: int | None = None  # bytes of head + body, once the head said how long the body is


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
                log_bug("http server loop", exc)
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
        if p.need is None:
            end = head_end(p.head)
            if end is None:
                if len(p.head) > self._limits.max_head:
                    self._drop(conn, 431)
                return
            code = self._body_plan(conn, p, end)
            if code is not None:
                self._drop(conn, code)
                return
        if p.need is None or len(p.head) >= p.need:
            if p.need is not None:
                del p.head[p.need :]
            self._sel.unregister(conn)
            del self._pending[conn]
            self._dispatch(conn, p)

    def _body_plan(self, conn: socket.socket, p: _Pending, end: int) -> int | None:
        """A complete head: whether a body follows (sets `need` and the body's deadline),
        or the status to refuse it with."""
        if end > self._limits.max_head:
            return 431
        hook = self._ep.hook
        line = bytes(p.head[: p.head.find(b"\n")])
        if hook is None or not line.startswith(b"POST " + HOOK_PATH.encode()):
            return None
        length = content_length(bytes(p.head[:end]))
        if length is None:
            return 411
        if length < 0:
            return 400
        if length > hook.max_body:
            hook.too_large()
            return 413
        p.need = end + length
        p.deadline = time.monotonic() + self._limits.read_timeout
        self._pending.move_to_end(conn)  # the latest deadline: the order stays by deadline
        return None

    def _drop(self, conn: socket.socket, code: int | None = None) -> None:
        self._sel.unregister(conn)
        del self._pending[conn]
        self._refuse(conn, code)

    @staticmethod
    def _refuse(conn: socket.socket, code: int | None) -> None:
        """Best effort: a short reply that fits the socket buffer, then close."""
        if code is not None:
            with contextlib.suppress(OSError):
                conn.send(REFUSALS[code])
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
            response = Request(bytes(p.head), p.client, self._ep).response
            conn.settimeout(self._limits.write_timeout)  # sendall: a total deadline
            conn.sendall(response)
        except OSError as exc:  # reset, broken pipe, timeout: the client's business
            log.debug("http: client went away: %s", exc)
        except Exception as exc:
            log_bug("http request", exc)


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
