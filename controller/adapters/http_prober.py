"""The HealthProber port on http.client: Berth's own HTTP gate probe against a container IP.

The standard library on purpose: a probe is one GET on a fresh connection, and httpx (with
rich, which it imports when installed) cost every `berth` start-up ~50 ms.
"""

from __future__ import annotations

import http.client
import socket

from controller.core.model import ProbeSpec
from controller.ports import ProbeResult

_HEADERS = {"Connection": "close", "User-Agent": "berth-probe", "Accept": "*/*"}


class HttpProber:
    """A fresh connection per probe, no keep-alive: a reused socket to a dying backend
    could answer from a stale connection, and each probe must see whether a *new*
    connection is accepted, like nginx's will be. No proxy variables are read (an
    HTTP_PROXY meant for pulls must not swallow probes of bridge IPs), and redirects are
    not followed. Thread-safe: nothing is shared between probes."""

    def probe(self, host: str, spec: ProbeSpec) -> ProbeResult:
        """ok for 2xx and 3xx (a redirect proves the app is serving); never raises."""
        host = host.strip("[]")  # http.client brackets an IPv6 literal in Host itself
        path = spec.path if spec.path.startswith("/") else "/" + spec.path
        conn = http.client.HTTPConnection(host, spec.port, timeout=spec.timeout)
        try:
            conn.request("GET", path, headers=_HEADERS)
            resp = conn.getresponse()
            resp.read(64 * 1024)  # a bounded drain; the body does not matter
            status = resp.status
        except TimeoutError as exc:
            return ProbeResult(ok=False, detail=f"timeout after {spec.timeout:g}s: {exc}")
        except ConnectionRefusedError:
            return ProbeResult(ok=False, detail="connection refused")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            kind = "DNS" if isinstance(exc, socket.gaierror) else type(exc).__name__
            return ProbeResult(ok=False, detail=f"{kind}: {exc}".rstrip(": "))
        finally:
            conn.close()
        return ProbeResult(ok=200 <= status < 400, detail=f"HTTP {status}")

    def close(self) -> None:
        """Nothing to release (kept for the port's lifecycle)."""
