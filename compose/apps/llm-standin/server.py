"""STAND-IN for the Ollama LLM server -- this is NOT Ollama.

The example stack's `ollama` service runs the real `ollama/ollama` image where it can be
pulled (and a GPU exists). Here no public registry is reachable, so this tiny server answers
the endpoints the stack and its health checks use, on Ollama's port 11434:

    GET  /             "Ollama is running"   (the liveness check the original system used)
    HEAD /             200
    GET  /api/tags     {"models": []}
    GET  /api/version  {"version": "0.0.0-standin"}

Select it with OLLAMA_IMAGE=berth-demo/llm-standin. It runs no models.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

STANDIN_VERSION = "0.0.0-standin"
APP_VERSION = os.environ.get("APP_VERSION", "0.0.0-dev")


def _listen_address() -> tuple[str, int]:
    """OLLAMA_HOST as Ollama reads it: "host", "host:port" or ":port" (default 127.0.0.1)."""
    raw = os.environ.get("OLLAMA_HOST", "0.0.0.0:11434").removeprefix("http://")
    host, _, port = raw.rpartition(":") if ":" in raw else (raw, "", "11434")
    return host or "0.0.0.0", int(port or 11434)


log = logging.getLogger("llm-standin")


class Handler(BaseHTTPRequestHandler):
    server_version = "llm-standin (NOT Ollama)"
    protocol_version = "HTTP/1.1"
    timeout = 5

    def do_HEAD(self) -> None:
        self._send(200, "text/plain; charset=utf-8", b"", head=True)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, "text/plain; charset=utf-8", b"Ollama is running")
        elif path == "/api/tags":
            self._json(200, {"models": []})
        elif path == "/api/version":
            self._json(200, {"version": STANDIN_VERSION})
        else:
            self._json(404, {"error": f"{path} is not served by the llm stand-in (not Ollama)"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._json(501, {"error": "llm stand-in: no models, generation is not available"})

    def _json(self, status: int, doc: object) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(doc).encode())

    def _send(self, status: int, ctype: str, body: bytes, *, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Berth-Standin", "llm-standin; not ollama")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    host, port = _listen_address()
    server = ThreadingHTTPServer((host, port), Handler)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("got %s: exiting", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.warning(
        "STAND-IN for Ollama, NOT Ollama: llm-standin (image %s) answers Ollama's health "
        "endpoints on %s:%d and runs no models",
        APP_VERSION,
        host,
        port,
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
