"""The control channel of Berth's dynamic upstreams in nginx (berth_balancer.lua).

nginx serves it on a unix socket in the upstreams directory and nowhere else: no
application network and no public listener reaches it, only processes that can open that
directory (Berth, root).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Mapping
from typing import Any

from controller.errors import ProxyError

SOCKET_NAME = "control.sock"


class ControlUnreachable(ProxyError):
    """The control socket gave no answer (absent, refused, timed out, cut off), as opposed
    to an answer that is an error."""


def _seconds(value: float) -> str:
    """A plain decimal (nginx takes no exponent): 2.0 -> "2", 0.0125 -> "0.0125"."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            if len(self._path.encode()) < 100:
                sock.connect(self._path)
            else:  # past sun_path's 108 bytes: reach it through the open directory
                directory, name = os.path.split(self._path)
                fd = os.open(directory, os.O_PATH)
                try:
                    sock.connect(f"/proc/self/fd/{fd}/{name}")
                finally:
                    os.close(fd)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class NginxControl:
    def __init__(self, socket_path: str, *, timeout: float = 3.0) -> None:
        self.path = socket_path
        self.timeout = timeout

    def state(self) -> dict[str, Any]:
        """{"structure", "upstreams": {name: peer set}, "inflight": {addr: n}, "pid"}."""
        return self._call("GET", "/berth/state")

    def stats(self) -> dict[str, Any]:
        """{"requests": {"UP|REV|CLASS": n}, "latency": {"UP|REV|LE": n},
        "latency_sum": {"UP|REV": seconds}} since nginx started."""
        return self._call("GET", "/berth/stats")

    def put(self, upstream: str, peers: Mapping[str, Any]) -> dict[str, Any]:
        """Set an upstream's peer set; returns what nginx stored."""
        out = self._call("PUT", f"/berth/upstreams/{upstream}", json.dumps(peers).encode())
        applied = out.get("applied")
        if not isinstance(applied, dict):
            raise ProxyError(f"nginx control: no applied peer set in the answer for {upstream}")
        return applied

    def probe(self, host: str, port: int, path: str, timeout: float) -> dict[str, Any]:
        """nginx probes http://host:port/path (host an IP literal) within `timeout` seconds:
        {"ok": bool, "status": int | None, "detail": str, "ms": number}. Bad arguments are
        nginx's 400, raised as ProxyError."""
        query = urllib.parse.urlencode(
            {"host": host, "port": str(port), "path": path, "timeout": _seconds(timeout)},
            quote_via=urllib.parse.quote,  # %20 and %2B: nothing for nginx to read as a "+"
        )
        # the socket's own timeout outlasts the probe's, which nginx bounds
        conn_timeout = max(self.timeout, timeout + 2)
        out = self._call("GET", f"/berth/probe?{query}", timeout=conn_timeout)
        ok, status, detail = out.get("ok"), out.get("status"), out.get("detail")
        if (
            not isinstance(ok, bool)
            or not isinstance(detail, str)
            or not (status is None or (isinstance(status, int) and not isinstance(status, bool)))
        ):
            raise ProxyError(f"nginx control: not a probe answer for {host}:{port}")
        return out

    def _call(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        conn = _UnixConnection(self.path, self.timeout if timeout is None else timeout)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            res = conn.getresponse()
            raw = res.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ControlUnreachable(f"nginx control socket {self.path}: {exc}") from exc
        finally:
            conn.close()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ProxyError(f"nginx control {method} {path}: not JSON ({res.status})") from exc
        if res.status != 200 or not isinstance(data, dict):
            why = data.get("error") if isinstance(data, dict) else data
            raise ProxyError(f"nginx control {method} {path}: {res.status} {why}")
        return data
