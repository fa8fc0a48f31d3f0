"""Rendering (and reading back) the nginx upstream file that Berth owns.

Backends are explicit IP:port pairs: nginx resolves names once at start and caches them, so a
DNS name would keep pointing at a container that is gone. Each server line carries a comment
naming the container, which makes the file itself an observation: a controller restarted
mid-rollout reads which containers receive traffic from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HEADER = "# Managed by Berth; do not edit: rewritten at every cut-over.\n"
PLACEHOLDER = "    server 127.0.0.1:9 down;  # berth: no healthy backend yet\n"
_SERVER = re.compile(
    r"^\s*server\s+(?P<addr>[0-9.]+):(?P<port>\d+)\b[^#]*#\s*berth\s+container=(?P<name>\S+)"
    r"\s+id=(?P<id>[0-9a-f]+)"
)
_UPSTREAM = re.compile(r"^\s*upstream\s+(?P<name>[A-Za-z0-9_.-]+)\s*\{")


@dataclass(frozen=True)
class Backend:
    container_id: str
    container_name: str
    address: str
    port: int


def render_upstreams(upstreams: Mapping[str, Sequence[Backend]], *, keepalive: int = 32) -> str:
    """One `upstream` block per proxied service, sorted so equal input gives equal bytes."""
    out = [HEADER]
    for name in sorted(upstreams):
        out.append(f"upstream {name} {{\n    least_conn;\n")
        backends = sorted(upstreams[name], key=lambda b: (b.container_name, b.container_id))
        if not backends:
            out.append(PLACEHOLDER)
        for b in backends:
            out.append(
                f"    server {b.address}:{b.port};  "
                f"# berth container={b.container_name} id={b.container_id[:12]}\n"
            )
        out.append(f"    keepalive {keepalive};\n}}\n")
    return "".join(out)


def parse_upstreams(text: str) -> dict[str, list[Backend]]:
    """Read back which containers each upstream routes to (lines Berth wrote)."""
    result: dict[str, list[Backend]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _UPSTREAM.match(line)
        if m:
            current = m.group("name")
            result[current] = []
            continue
        s = _SERVER.match(line)
        if s and current is not None:
            result[current].append(
                Backend(s.group("id"), s.group("name"), s.group("addr"), int(s.group("port")))
            )
        if line.strip() == "}":
            current = None
    return result
