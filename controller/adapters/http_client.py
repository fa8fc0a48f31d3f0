"""The HttpClient port (smoke checks): one request straight to a new container, on the
standard library like HttpProber.

The whole exchange is bounded by `timeout` (controller/adapters/_http_wire.py), and the
body is read up to `limit` bytes and no further: a smoke check answers within its time
whatever the container does, trickling or flooding. No proxy variables are read (a
container's bridge IP is never behind HTTP_PROXY) and redirects are not followed (a 3xx
is an answer like any other, for the check to judge).
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping

from controller.adapters import _http_wire as wire
from controller.errors import ProbeError, printable
from controller.task_ports import HttpAnswer

USER_AGENT = "berth-smoke"
_FRAMING = ("connection", "content-length", "transfer-encoding")  # the client's own
_WITH_BODY = ("POST", "PUT", "PATCH")


class HttpClient:
    """Thread-safe: nothing is shared between requests."""

    def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
        limit: int = 1 << 20,
    ) -> HttpAnswer:
        """The answer, whatever its status. ProbeError (and nothing else) when the
        request cannot be sent, the connection fails, the time runs out or the answer
        is not HTTP."""
        host = host.strip("[]")  # an IPv6 literal, bracketed or not
        try:
            target = wire.request_target(path)
        except ValueError as exc:
            raise ProbeError(str(exc)) from None
        fields = _fields(host, port, method, headers, body)
        deadline = wire.Deadline(timeout)
        sock = None
        try:
            sock = wire.connect(host, port, deadline)
            wire.send(sock, deadline, f"{method} {target} HTTP/1.1", fields, body)
            status, answer_headers, answer_body = wire.receive(sock, deadline, method, limit)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise ProbeError(wire.describe(exc, timeout)) from None
        finally:
            if sock is not None:
                sock.close()
        return HttpAnswer(status=status, headers=answer_headers, body=answer_body)


def _fields(
    host: str, port: int, method: str, headers: Mapping[str, str], body: bytes | None
) -> list[tuple[str, str]]:
    """Berth's defaults, the check's headers over them (Host too), then the framing that
    only the client may set: Connection: close and the body's Content-Length."""
    if not wire.is_token(method):
        raise ProbeError(f"invalid method {printable(method[:40])!r}")
    problem = wire.checked_headers(headers)
    if problem:
        raise ProbeError(problem)
    fields = {
        "host": ("Host", wire.host_header(host, port, 80)),
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "*/*"),
    }
    for name, value in headers.items():
        if name.lower() not in _FRAMING:
            fields[name.lower()] = (name, value)
    fields["connection"] = ("Connection", "close")
    if body is not None or method.upper() in _WITH_BODY:
        fields["content-length"] = ("Content-Length", str(len(body or b"")))
    return list(fields.values())
