"""The HealthProber port on httpx: Berth's own HTTP gate probe against a container IP."""

from __future__ import annotations

import httpx

from controller.core.model import ProbeSpec
from controller.ports import ProbeResult


class HttpProber:
    """One shared client for all probes (thread-safe). No proxy variables from the
    environment: an HTTP_PROXY meant for pulls must not swallow probes of bridge IPs. No
    keep-alive: a reused socket to a dying backend could answer from a stale connection, and
    each probe must see whether a *new* connection is accepted, like nginx's will be."""

    def __init__(self) -> None:
        self._client = httpx.Client(
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"Connection": "close", "User-Agent": "berth-probe"},
        )

    def probe(self, host: str, spec: ProbeSpec) -> ProbeResult:
        """ok for 2xx and 3xx (a redirect proves the app is serving); never raises."""
        netloc = f"[{host}]" if ":" in host and not host.startswith("[") else host
        path = spec.path if spec.path.startswith("/") else "/" + spec.path
        url = f"http://{netloc}:{spec.port}{path}"
        try:
            resp = self._client.get(url, timeout=spec.timeout)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return ProbeResult(ok=False, detail=f"{type(exc).__name__}: {exc}".rstrip(": "))
        ok = 200 <= resp.status_code < 400
        return ProbeResult(ok=ok, detail=f"HTTP {resp.status_code}")

    def close(self) -> None:
        self._client.close()
