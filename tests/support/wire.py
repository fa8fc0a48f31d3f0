"""Real servers for the HTTP adapters' contract tests (smoke client, webhooks).

- `Recorder`: a threaded http.server that records every request (method, path, headers,
  body) and answers from a table of routes.
- `RawServer`: a TCP listener that hands each connection to a function, for the answers
  no well-behaved server gives (trickled, never sent, malformed, endless).
Both are bounded: a handler that waits gives up when the server stops or after `HOLD`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD = 10.0  # seconds a handler holds a connection at most

Route = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Recorder:
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0


def _handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec.seen.append(Seen(self.command, self.path, list(self.headers.items()), body))
            status, headers, payload = rec.routes.get(self.path, (404, [], b"no route\n"))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)


@contextlib.contextmanager
def recorder(host: str = "127.0.0.1") -> Iterator[Recorder]:
    rec = Recorder()
    server = _Server((host, 0), _handler(rec))
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


class RawServer:
    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self._handle = handle
        self.stopped = threading.Event()
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self._handle(conn, self.stopped)

    def stop(self) -> None:
        self.stopped.set()
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[RawServer]:
    server = RawServer(handle)
    try:
        yield server
    finally:
        server.stop()


def read_head(conn: socket.socket) -> bytes:
    """The request up to its blank line (bounded)."""
    data = b""
    conn.settimeout(HOLD)
    while b"\r\n\r\n" not in data and len(data) < 1 << 16:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
