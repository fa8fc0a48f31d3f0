"""The dynamic switch: peers set in the running nginx, no reload (see core/peers.py).

One change of an upstream: record the new peer set in the upstreams file (what nginx loads
at its next start or reload), make sure the running nginx has the file's structure (reload
only if not: a new upstream, a new Lua file, the first switch after the reload mode), PUT
the peer set through the control socket and check what nginx stored. Draining happens
after, outside the file's lock: each old peer is waited for by its own in-flight count,
so one service's long requests never hold up another service's cut-over.
"""

from __future__ import annotations

import importlib.resources
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from controller.adapters.nginx import atomic_write
from controller.adapters.nginx_control import NginxControl
from controller.core.peers import (
    Layout,
    PeerSet,
    by_revision,
    from_wire,
    parse_dynamic,
    render_dynamic,
    structure,
    to_wire,
)
from controller.core.upstream import parse_upstreams
from controller.errors import ProxyError

STRUCTURE_WAIT = 10.0  # seconds a reload may take to show its new structure
DRAIN_SETTLE = 0.05  # a request balanced just before the switch is counted within this


def lua_source() -> str:
    return (
        importlib.resources.files("controller.adapters")
        .joinpath("berth_balancer.lua")
        .read_text(encoding="utf-8")
    )


class Reloadable(Protocol):
    def test(self) -> None: ...
    def reload(self, *, drain_timeout: float) -> float: ...


@dataclass(frozen=True)
class Target:
    """One stack's nginx, as the dynamic switch reaches it."""

    path: str  # the upstreams file, on Berth's side
    layout: Layout  # the upstreams directory as nginx sees it
    nginx: Reloadable | None  # None: nginx has not started (it reads the file when it does)
    on_reload: Callable[[str], None]

    @property
    def control(self) -> NginxControl:
        return NginxControl(os.path.join(os.path.dirname(self.path), "control.sock"))


def recorded(text: str, names: Iterable[str]) -> dict[str, PeerSet]:
    """Each upstream's peer set as the file records it (either form), empty where none."""
    parsed = parse_dynamic(text)
    sets = dict(parsed[1]) if parsed else {}
    if parsed is None:
        for name, backends in parse_upstreams(text).items():
            if backends:
                sets[name] = by_revision([(b, "") for b in backends], gen=0)
    return {n: sets.get(n) or PeerSet(0, ()) for n in names}


def next_gen(*sets: PeerSet) -> int:
    """Workers re-read a peer set when its generation moves: it must never repeat, even
    after a failed attempt nginx may have applied (hence the clock)."""
    return max([time.time_ns() // 1_000_000, *(s.gen + 1 for s in sets)])


def structure_of(target: Target, sets: Mapping[str, PeerSet]) -> str:
    """The structure the file should have for these upstreams, with today's Lua code."""
    return structure(sets, target.layout, lua_source())


def write(target: Target, sets: Mapping[str, PeerSet]) -> str:
    """Record the peer sets (and the Lua code nginx loads); returns the structure."""
    lua = lua_source()
    lua_path = os.path.join(os.path.dirname(target.path), "berth_balancer.lua")
    if _read(lua_path) != lua:
        atomic_write(lua_path, lua)
    atomic_write(target.path, render_dynamic(sets, target.layout, lua))
    return structure(sets, target.layout, lua)


def sync_structure(target: Target, want: str, *, drain_timeout: float) -> None:
    """Reload nginx when what it runs is not the file's structure (and only then)."""
    if target.nginx is None:
        return
    control = target.control
    try:
        if control.state().get("structure") == want:
            return
    except ProxyError:
        pass  # no control socket yet: nginx still runs the reload form
    target.nginx.test()
    try:
        target.nginx.reload(drain_timeout=drain_timeout)
    except Exception:
        target.on_reload("error")
        raise
    target.on_reload("success")
    deadline = time.monotonic() + STRUCTURE_WAIT
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            got = control.state().get("structure")
            if got == want:
                return
            last = f"structure {got}"
        except ProxyError as exc:
            last = str(exc)
        time.sleep(0.02)
    raise ProxyError(f"nginx did not load Berth's upstreams after a reload ({last}); see its log")


def apply(target: Target, name: str, peers: PeerSet) -> None:
    """PUT one upstream's peers and check that nginx stored exactly them."""
    if target.nginx is None:
        return
    applied = target.control.put(name, to_wire(peers))
    try:
        ok = from_wire(applied).same_routes(peers)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ProxyError(f"nginx stored another peer set for {name} than Berth sent")


def drain(target: Target, addresses: set[str], *, timeout: float) -> float:
    """Wait until no request is in flight to any of `addresses` (bounded by `timeout`).
    Returns the seconds waited."""
    t0 = time.monotonic()
    if target.nginx is None or not addresses:
        return 0.0
    time.sleep(DRAIN_SETTLE)
    control = target.control
    while time.monotonic() - t0 < timeout:
        try:
            inflight = control.state().get("inflight") or {}
        except ProxyError:
            return time.monotonic() - t0  # nginx is gone: nothing of it is in flight
        if not any(int(inflight.get(a) or 0) > 0 for a in addresses):
            break
        time.sleep(0.02)
    return time.monotonic() - t0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
