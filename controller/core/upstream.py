"""Rendering (and reading back) the nginx upstream file that Berth owns.

Backends are explicit IP:port pairs: nginx resolves names once at start and caches them, so a
DNS name would keep pointing at a container that is gone. Each server line carries a comment
naming the container, which makes the file itself an observation: a controller restarted
mid-rollout reads which containers receive traffic from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from controller.core.plan import ActionKind

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


def steady_revisions(kind: ActionKind, desired: str, routed: Collection[str]) -> frozenset[str]:
    """The revisions a steady service's routes follow: its desired revision; while that
    one is quarantined (it failed and the last good one kept serving), the revisions nginx
    routes now. So the version that serves is still healed: a container of it that Docker
    restarted on a new address, or Swarm rescheduled after a node loss, is routed again,
    and one that stopped is dropped."""
    return frozenset(routed) if kind is ActionKind.QUARANTINED else frozenset({desired})


@dataclass(frozen=True)
class Candidate:
    """A container of a steady proxied service, as one pass sees it."""

    container_id: str
    container_name: str
    address: str | None  # on the network nginx shares with it, now
    serving: bool  # running, at the desired revision, not reported starting/unhealthy


def healed_routes(
    routed: Sequence[Backend],
    candidates: Sequence[Candidate],
    ready: Callable[[Candidate], bool],
    *,
    probe_routed: bool = False,
) -> tuple[list[Candidate], list[str]] | None:
    """Which containers a steady service's upstream should route to, or None to leave it.

    Between rollouts the file can drift from the containers: Docker's restart policy brings
    a crashed container back on a new endpoint (possibly a new IP, so nginx would connect
    to an address nobody or some other container holds), or a routed container stops or
    turns unhealthy. A routed container still serving at the same address stays routed
    (no probe: passive failures are nginx's). Any other serving container (a new address,
    or healthy again after a restart) is routed only if `ready` (its probe) says so: no
    traffic before healthy. Routed containers that stopped serving are dropped. The
    upstream is never emptied: with nothing better to route to it is left as it is.
    `probe_routed` (the Swarm backend, whose manager sees a lost node's tasks as running
    for several seconds): a routed container stays routed only while its probe passes.
    Returns the containers to route and one reason per change."""
    by_id = {b.container_id[:12]: b for b in routed}
    keep: list[Candidate] = []
    reasons: dict[str, str] = {}  # short id -> why its route changes
    for c in candidates:
        cid = c.container_id[:12]
        b = by_id.get(cid)
        if not c.serving or not c.address:
            continue
        if b is not None and b.address == c.address:
            if not probe_routed or ready(c):
                keep.append(c)
            else:
                reasons[cid] = f"{c.container_name}: its probe failed"
        elif ready(c):
            keep.append(c)
            reasons[cid] = (
                f"{c.container_name}: address {b.address} -> {c.address}"
                if b is not None
                else f"{c.container_name}: serving again"
            )
        elif b is not None:
            reasons[cid] = f"{c.container_name}: new address {c.address} not ready yet"
    kept = {c.container_id[:12] for c in keep}
    for cid, b in by_id.items():
        if cid not in kept:
            reasons.setdefault(cid, f"{b.container_name}: no longer serving")
    if not keep or not reasons:
        return None
    return keep, list(reasons.values())
