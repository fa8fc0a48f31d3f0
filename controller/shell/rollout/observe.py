"""The executor's eyes: what one service looks like to the rollout machine (core/rollout.py)
at each step, from one container listing, an inspect and a probe per new container.

The new containers are inspected and probed side by side: one after another, a look at
three replicas through a Swarm manager (an inspect is two API calls there) took longer than
the 200 ms probe interval, and the gate saw each replica less often than it was told to."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from controller.core import rollout as r
from controller.core.gate import GateInput
from controller.core.model import ContainerState, ObservedContainer, Target
from controller.core.plan import ActionKind, ServiceAction
from controller.core.rollout_state import PROBED_PHASES
from controller.errors import NotFound
from controller.shell.rollout.results import Ports

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`fn` of each item, in threads (at most 8) when there are several, results in order;
    the first error is raised. The runtime and probers are thread-safe for this."""
    if len(items) <= 1:
        return [fn(it) for it in items]
    with cf.ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        return list(pool.map(fn, items))


def observe(p: Ports, action: ServiceAction, state: r.RolloutState) -> r.RolloutObs:
    """What the rollout machine sees of one service now: its containers, old and new (new
    ones probed while the machine gates, canaries or bakes), and whether the image is there."""
    listed = [
        c for c in p.runtime.list_containers(project=action.project) if c.service == action.service
    ]
    target = action.target
    if target is None:
        return r.RolloutObs(True, (), tuple(listed))
    rev = target.revision
    old = tuple(c for c in listed if c.revision != rev)
    new_rows = [c for c in listed if c.revision == rev]
    gating = state.phase in PROBED_PHASES
    if gating:  # an inspect and a probe each: side by side
        new = tuple(side_by_side(lambda c: _new_obs(p, c, target, probe=True), new_rows))
    else:
        new = tuple(_new_obs(p, c, target, probe=False) for c in new_rows)
    present = True
    if state.phase is r.Phase.PREPARE and action.kind is not ActionKind.SCALE_DOWN:
        present = p.runtime.image_present(target.image)
    return r.RolloutObs(present, new, old)


def _new_obs(p: Ports, c: ObservedContainer, target: Target, *, probe: bool) -> r.NewObs:
    if not probe:
        gi = GateInput(c.id, c.name, c.state, c.health, c.exit_code, 0, None)
        return r.NewObs(c.number, c.created, gi)
    try:
        st = p.runtime.inspect(c.id)
    except NotFound:
        gi = GateInput(c.id, c.name, ContainerState.DEAD, None, None, 0, False, "gone")
        return r.NewObs(c.number, c.created, gi)
    ok: bool | None = None
    detail = ""
    health = target.spec.berth.health
    if health is not None and st.state is ContainerState.RUNNING:
        ip = ip_for(st.ips, target)
        res = p.prober.probe(ip, health) if ip else None
        ok, detail = (res.ok, res.detail) if res else (False, "no IP address")
    gi = GateInput(c.id, c.name, st.state, st.health, st.exit_code, st.restart_count, ok, detail)
    return r.NewObs(c.number, c.created, gi)


def ip_for(ips: Mapping[str, str], target: Target) -> str | None:
    for att in target.spec.networks:
        ip = ips.get(att.network)
        if ip:
            return str(ip)
    for ip in ips.values():
        if ip:
            return str(ip)
    return None
