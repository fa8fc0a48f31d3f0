"""The HealthProber port through the edge nginx: the probe is made by nginx, not by Berth.

In Docker Swarm a task's IP lives on an overlay network that the host where Berth runs
cannot reach, but the stack's edge nginx (a task attached to those overlays) can. Berth
asks it over its control socket (`GET /berth/probe`, berth_balancer.lua) to open a fresh
connection to IP:port and send one GET, and gets back HttpProber's verdict and wording:
ok for 2xx and 3xx, "HTTP 503", "connection refused", "timeout after 2s: ...". nginx
accepts an IP literal only (never a name: it would resolve nothing), a port 1..65535, a
path of at most 1024 bytes without spaces or control characters, and a timeout in
(0, 30] seconds; it bounds the whole exchange by that timeout, and Berth waits two seconds
more for its answer. One control socket per swarm stack: the first that exists and answers
is used; a socket that is absent, refuses or times out is passed over, while an answer that
is an error (bad arguments, an edge without the endpoint) is the probe's failure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from controller.adapters.nginx_control import ControlUnreachable, NginxControl
from controller.core.model import ProbeSpec
from controller.errors import ProxyError
from controller.ports import ProbeResult

MAX_TIMEOUT = 30.0  # the edge refuses longer probes; a longer x-berth.health.timeout is cut


class EdgeProber:
    """Stateless and thread-safe: a new control connection per probe."""

    def __init__(self, sockets: Sequence[str]) -> None:
        self.sockets = tuple(sockets)

    def probe(self, host: str, spec: ProbeSpec) -> ProbeResult:
        """ok for 2xx and 3xx, as HttpProber; never raises."""
        host = host.strip("[]")
        path = spec.path if spec.path.startswith("/") else "/" + spec.path
        missed: list[str] = []
        for sock in self.sockets:
            if not os.path.exists(sock):
                missed.append(f"{sock}: no such socket")
                continue
            try:
                answer = NginxControl(sock).probe(
                    host, spec.port, path, min(spec.timeout, MAX_TIMEOUT)
                )
            except ControlUnreachable as exc:
                missed.append(str(exc))
                continue
            except ProxyError as exc:
                return ProbeResult(ok=False, detail=f"edge nginx control: {exc}")
            return ProbeResult(ok=answer["ok"], detail=answer["detail"])
        why = "; ".join(missed) or "no control socket configured"
        return ProbeResult(ok=False, detail=f"edge nginx control: {why}")

    def close(self) -> None:
        """Nothing to release (kept for the port's lifecycle)."""
