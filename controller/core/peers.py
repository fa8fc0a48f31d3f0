"""Peer sets of the dynamic switch, and the upstreams file that records them.

In dynamic mode nginx picks each request's peer in Lua (berth_balancer.lua) from a peer set
Berth sets at run time, so moving traffic needs no reload. The upstreams file still exists:
it declares the upstream blocks (their set changes only with the compose file) and it
records the current peer sets, which nginx loads at every start or reload. The file stays
the record of who is routed, so a controller restarted mid-rollout reads it back.

A peer set has sides, one per revision, each with a weight: a canary is two sides. The
balancer first picks a side by weight (or by the sticky cookie), then the peer of that side
with the fewest requests in flight (least_conn).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.core.model import ProxySpec, ServiceSpec
from controller.core.upstream import HEADER, Backend, parse_upstreams

LUA_FILE = "berth_balancer.lua"
SOCKET_FILE = "control.sock"
SUN_PATH_MAX = 107  # bytes of a unix socket path nginx can bind
DYNAMIC_MARK = "# berth: dynamic switch"
_STATE = re.compile(r"berth\.init\(\[(?P<level>=+)\[(?P<json>.*?)\](?P=level)\]", re.S)
_FORMAT = "1"  # bump when the rendered structure changes meaning


@dataclass(frozen=True)
class Side:
    revision: str
    weight: float  # relative share of requests, 0..100
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class PeerSet:
    gen: int
    sides: tuple[Side, ...]
    sticky: bool = False

    def backends(self) -> list[Backend]:
        """Every peer that can receive a request (sides with weight 0 receive none)."""
        return [b for s in self.sides if s.weight > 0 or len(self.sides) == 1 for b in s.backends]

    def addresses(self) -> set[str]:
        return {f"{b.address}:{b.port}" for s in self.sides for b in s.backends}

    def same_routes(self, other: PeerSet) -> bool:
        return bool(_routes(self) == _routes(other))


def _routes(p: PeerSet) -> Any:
    return (
        p.sticky,
        sorted(
            (
                s.revision,
                s.weight,
                sorted((b.address, b.port, b.container_id[:12]) for b in s.backends),
            )
            for s in p.sides
        ),
    )


def by_revision(
    backends: Sequence[tuple[Backend, str]], *, gen: int, sticky: bool = False
) -> PeerSet:
    """One side per revision, weighted by its number of peers: every peer gets an equal
    share, as nginx's own balancing would give it."""
    groups: dict[str, list[Backend]] = {}
    for b, rev in backends:
        groups.setdefault(rev, []).append(b)
    total = sum(len(v) for v in groups.values())
    sides = tuple(
        Side(rev, round(100.0 * len(bs) / total, 3), tuple(sorted(bs, key=_order)))
        for rev, bs in sorted(groups.items())
    )
    return PeerSet(gen, sides, sticky)


def _order(b: Backend) -> tuple[str, str]:
    return (b.container_name, b.container_id)


def to_wire(p: PeerSet) -> dict[str, Any]:
    """The JSON nginx stores (and the file records)."""
    return {
        "gen": p.gen,
        "sticky": p.sticky,
        "sides": [
            {
                "rev": s.revision,
                "weight": s.weight,
                "peers": [
                    {
                        "addr": f"{b.address}:{b.port}",
                        "id": b.container_id[:12],
                        "name": b.container_name,
                    }
                    for b in s.backends
                ],
            }
            for s in p.sides
        ],
    }


def from_wire(data: Any) -> PeerSet:
    """A peer set as nginx or the file holds it; ValueError when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("sides"), list):
        raise ValueError("not a peer set")
    sides = []
    for s in data["sides"]:
        if not isinstance(s, dict) or not isinstance(s.get("peers") or [], list):
            raise ValueError("a side of the peer set is not an object with a list of peers")
        peers = []
        for p in s.get("peers") or []:
            if not isinstance(p, dict):
                raise ValueError("a peer is not an object")
            host, _, port = str(p.get("addr", "")).rpartition(":")
            peers.append(Backend(str(p.get("id", "")), str(p.get("name", "")), host, int(port)))
        sides.append(Side(str(s["rev"]), float(s["weight"]), tuple(peers)))
    return PeerSet(int(data.get("gen", 0)), tuple(sides), bool(data.get("sticky", False)))


@dataclass(frozen=True)
class Layout:
    """Where nginx sees Berth's upstreams directory (inside its container, or on the host)."""

    directory: str
    keepalive: int = 32

    @property
    def socket(self) -> str:
        return f"{self.directory.rstrip('/')}/{SOCKET_FILE}"

    @property
    def lua(self) -> str:
        return f"{self.directory.rstrip('/')}/{LUA_FILE}"


def structure(names: Iterable[str], layout: Layout, lua_source: str) -> str:
    """What only a reload can change: the upstream blocks, where nginx finds the Lua code and
    the socket, and that code. Peer sets are not part of it."""
    h = hashlib.sha256()
    h.update(json.dumps([_FORMAT, sorted(names), layout.directory, layout.keepalive]).encode())
    h.update(lua_source.encode())
    return h.hexdigest()[:16]


def render_dynamic(peers: Mapping[str, PeerSet], layout: Layout, lua_source: str) -> str:
    """The upstreams file for the dynamic switch. nginx includes it at http level."""
    record = {
        "structure": structure(peers, layout, lua_source),
        "upstreams": {name: to_wire(peers[name]) for name in sorted(peers)},
    }
    text = json.dumps(record, sort_keys=True)
    level = "=" * next(n for n in range(1, 64) if f"]{'=' * n}]" not in text)
    out = [
        HEADER,
        f"{DYNAMIC_MARK}: peers are set in the running nginx through {layout.socket};\n",
        "# nginx loads the record below at every start and reload.\n",
        "lua_shared_dict berth 10m;\n",
        "init_by_lua_block {\n",
        f'    berth = assert(loadfile("{layout.lua}"))()\n',
        f'    berth.init([{level}[{text}]{level}], "{layout.socket}")\n',
        "}\n",
        "header_filter_by_lua_block { berth.header_filter() }\n",
        "log_by_lua_block { berth.log() }\n",
        "server {\n",
        "    # Berth's control channel: this unix socket only, never a network listener.\n",
        f"    listen unix:{layout.socket};\n",
        "    access_log off;\n",
        "    lua_socket_log_errors off;  # a failed /berth/probe is an answer, not an error\n",
        "    client_max_body_size 1m;\n",
        "    client_body_buffer_size 1m;\n",
        "    location / { content_by_lua_block { berth.control() } }\n",
        "}\n",
    ]
    for name in sorted(peers):
        out.append(f"upstream {name} {{\n")
        out.append("    server 0.0.0.1:1;  # placeholder: berth.balance picks the peer\n")
        out.append(f'    balancer_by_lua_block {{ berth.balance("{name}") }}\n')
        out.append(f"    keepalive {layout.keepalive};\n")
        for s in peers[name].sides:
            for b in s.backends:
                out.append(
                    f"    # berth peer {b.address}:{b.port} container={b.container_name} "
                    f"id={b.container_id[:12]} revision={s.revision} weight={s.weight:g}\n"
                )
        out.append("}\n")
    return "".join(out)


def is_dynamic(text: str) -> bool:
    return DYNAMIC_MARK in text


def parse_dynamic(text: str) -> tuple[str, dict[str, PeerSet]] | None:
    """(structure, peer sets) recorded in a dynamic upstreams file; None for another file."""
    if not is_dynamic(text):
        return None
    m = _STATE.search(text)
    if m is None:
        return None
    try:
        record = json.loads(m.group("json"))
        if not isinstance(record, dict) or not isinstance(record.get("upstreams"), dict):
            return None
        sets = {str(k): from_wire(v) for k, v in record["upstreams"].items()}
        return str(record["structure"]), sets
    except (ValueError, KeyError, TypeError):
        return None


def container_directory(
    mounts: Sequence[Mapping[str, Any]], host_directory: str
) -> tuple[str, bool] | None:
    """Where a container sees `host_directory` through its bind mounts, and whether it can
    write there (nginx creates the control socket in it); None when no mount shows it."""
    best: tuple[str, bool] | None = None
    best_len = -1
    host = host_directory.rstrip("/") or "/"
    for m in mounts:
        if m.get("Type") != "bind":
            continue
        src = str(m.get("Source", "")).rstrip("/") or "/"
        if host != src and not host.startswith(src.rstrip("/") + "/"):
            continue
        if len(src) > best_len:
            rest = host[len(src) :].lstrip("/")
            target = str(m.get("Target", "")).rstrip("/")
            best = (
                f"{target}/{rest}".rstrip("/") if rest else target or "/",
                not m.get("ReadOnly"),
            )
            best_len = len(src)
    return best


def routes(text: str) -> dict[str, list[Backend]]:
    """Which containers each upstream routes to, from a file of either form."""
    parsed = parse_dynamic(text)
    if parsed is None:
        return parse_upstreams(text)
    return {name: p.backends() for name, p in parsed[1].items()}


def layout_for(proxy: ProxySpec, services: Mapping[str, ServiceSpec]) -> tuple[Layout | None, str]:
    """Where nginx sees the upstreams directory, or why the dynamic switch cannot work
    there: nginx creates its control socket in that directory, so it must see it, write
    to it, and be the only nginx that does."""
    host_dir = posixpath.dirname(proxy.upstreams_file)
    if proxy.service is None:
        layout = Layout(host_dir)
    else:
        spec = services.get(proxy.service)
        from controller.core.compose.mount_sources import host_mounts  # compose imports this module

        mounts = host_mounts(spec.create.get("HostConfig", {})) if spec else []  # Binds too
        found = container_directory(mounts, host_dir)
        if spec is None or found is None:
            return None, f"the nginx service {proxy.service!r} does not mount {host_dir}"
        where, writable = found
        if not writable:
            return None, (
                f"the nginx service {proxy.service!r} mounts {host_dir} read-only, so nginx "
                "cannot create its control socket there"
            )
        if spec.replicas > 1:
            return None, (
                f"the nginx service {proxy.service!r} has {spec.replicas} replicas, which "
                "would share one control socket"
            )
        layout = Layout(where)
    if len(layout.socket.encode()) > SUN_PATH_MAX:
        return None, f"the control socket path {layout.socket} is longer than {SUN_PATH_MAX} bytes"
    return layout, ""


def canary_set(
    new: Sequence[tuple[Backend, str]],
    old: Sequence[tuple[Backend, str]],
    weight: int,
    *,
    gen: int,
    sticky: bool = False,
) -> PeerSet:
    """`weight` % of the requests to the new containers, the rest to the old ones (each
    side's share split among its revisions by their number of peers)."""
    new_part = by_revision(new, gen=gen)
    old_part = by_revision(old, gen=gen)
    sides = tuple(
        Side(s.revision, round(s.weight * share / 100.0, 3), s.backends)
        for part, share in ((new_part, weight), (old_part, 100 - weight))
        for s in part.sides
    )
    return PeerSet(gen, sides, sticky)
