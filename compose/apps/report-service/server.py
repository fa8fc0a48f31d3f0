"""gesalps report-service: `/report/{id}` answers a small generated PDF; `/health` for gates.

Standard library only (ThreadingHTTPServer). The PDF is written by hand: one page, one line
of Helvetica text, with a correct cross-reference table, so any PDF reader opens it.
SIGTERM stops accepting connections, lets in-flight requests finish, and exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

APP_VERSION = os.environ.get("APP_VERSION", "0.0.0-dev")
PORT = int(os.environ.get("PORT", "8001"))
REPORT_ID = re.compile(r"^/report/([A-Za-z0-9_-]{1,64})$")

log = logging.getLogger("report-service")


def _pdf_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def render_pdf(report_id: str, *, when: datetime) -> bytes:
    """A minimal, valid one-page PDF 1.4 saying which report and release produced it."""
    line = _pdf_text(f"gesalps report {report_id} - {when:%Y-%m-%d %H:%M:%S} UTC - v{APP_VERSION}")
    stream = f"BT /F1 14 Tf 72 770 Td ({line}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


class Handler(BaseHTTPRequestHandler):
    server_version = f"gesalps-report/{APP_VERSION}"
    protocol_version = "HTTP/1.1"  # keep-alive with nginx's upstream pool
    # An idle keep-alive connection holds a thread; close it after 5 s, so shutdown (which
    # joins request threads) is bounded well inside the 30 s stop_grace_period.
    timeout = 5

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send(200, "application/json", json.dumps({"status": "ok"}).encode())
            return
        if path == "/version":
            self._send(200, "application/json", json.dumps({"version": APP_VERSION}).encode())
            return
        match = REPORT_ID.match(path)
        if match:
            pdf = render_pdf(match.group(1), when=datetime.now(UTC))
            self._send(200, "application/pdf", pdf, filename=f"report-{match.group(1)}.pdf")
            return
        self._send(404, "application/json", json.dumps({"detail": "Not Found"}).encode())

    def _send(self, status: int, ctype: str, body: bytes, *, filename: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if filename:
            self.send_header("Content-Disposition", f'inline; filename="{filename}"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = False  # server_close() joins in-flight request threads

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("got %s: draining and exiting", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("report-service %s listening on :%d", APP_VERSION, PORT)
    server.serve_forever()
    server.server_close()
    log.info("report-service stopped cleanly")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
