"""A real HTTP receiver for notification tests: Apprise's `json://127.0.0.1:PORT/` posts
here. It records each JSON payload; `mode` makes it answer 200, 500, or hang (hold the
request until `release()`, bounded so a failed test cannot hang the suite)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_BOUND = 60.0  # seconds a hung request is held at most


class Receiver:
    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | 500 | hang
        self.arrived = threading.Event()  # a request came in (set for every mode)
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def release(self) -> None:
        self._release.set()

    def titles(self) -> list[str]:
        with self._lock:
            return [str(p.get("title")) for p in self.payloads]

    def record(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self.payloads.append(payload)
        self.arrived.set()


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {"raw": body.decode(errors="replace")}
            rx.record(payload)
            if rx.mode == "hang":
                rx._release.wait(HANG_BOUND)
            code = 500 if rx.mode == "500" else 200
            try:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the client gave up (its timeout): fine
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    server.daemon_threads = True
    rx.port = int(server.server_address[1])
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield rx
    finally:
        rx.release()
        server.shutdown()
        server.server_close()
