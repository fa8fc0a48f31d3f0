"""The daemon's HTTP endpoints: /metrics, /healthz, /readyz, /status (DESIGN §6)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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


def serve(listen: str, ep: Endpoints) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    body, ctype = ep.metrics()
                    self._send(200, body, ctype)
                elif path == "/healthz":
                    ok = ep.alive()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"loop stalled\n")
                elif path == "/readyz":
                    ok = ep.ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                elif path == "/status":
                    data = json.dumps(ep.status(), indent=2, default=str).encode() + b"\n"
                    self._send(200, data, "application/json")
                else:
                    self._send(404, b"not found\n")
            except Exception as exc:  # an endpoint must answer, never hang the scraper
                self._send(500, f"error: {exc}\n".encode())

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # scrapes every 15 s would drown the log

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="berth-http", daemon=True).start()
    return server
