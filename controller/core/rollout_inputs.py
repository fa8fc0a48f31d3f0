"""What a rollout starts from and judges by, pure: which containers already serve, which
revision served before (what a rollback returns to), and which restarts count against it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from controller.core.plan import ActionKind, ServiceAction
from controller.core.rollout_state import PROBED_PHASES, NewObs, RolloutObs, RolloutState


def serving_ids(action: ServiceAction, routed: frozenset[str] | None) -> frozenset[str]:
    """Target-revision containers that already take traffic: routed by nginx (`routed`: the
    12-character ids read back from the upstream file, so a restarted controller knows a
    cut-over happened; None when no proxy serves the service), or, for a scale-up without
    a proxy, the replicas already running."""
    live = [c for c in action.current if c.running]
    if action.kind is ActionKind.SCALE_UP and routed is None:
        return frozenset(c.id for c in live)
    return frozenset(c.id for c in live if routed and c.id[:12] in routed)


def previous_revision(
    action: ServiceAction,
    interrupted: tuple[str, str | None] | None,
    quarantined: Collection[str],
) -> tuple[str | None, str | None]:
    """The revision (and tag) that served before this rollout, derived from what runs,
    else from an interrupted rollout (`interrupted`: the from-revision and from-tag of a
    record still in progress), else the newest old container that is not a quarantined
    revision (the kept failed one)."""
    running = [c for c in action.old if c.running]
    if running:
        c = max(running, key=lambda c: c.created)
        return c.revision, c.tag
    if interrupted is not None:
        return interrupted
    served = [c for c in action.old if c.revision not in quarantined]
    if served:
        c = max(served, key=lambda c: c.created)
        return c.revision, c.tag
    return None, None


def created_by(s: RolloutState, n: NewObs) -> bool:
    """Created by this rollout (a second of slack: `created` is whole seconds)."""
    return bool(s.started_at) and n.created >= int(s.started_at) - 1


def this_rollouts_restarts(s: RolloutState, obs: RolloutObs) -> tuple[RolloutState, RolloutObs]:
    """The restart counts the gate, canary and bake judge: every restart of a container
    this rollout created, but of one that existed before it (a replica a scale-up finds
    running but not routed; on Swarm, a replica whose task was rescheduled after its node
    was lost) only those after this rollout first probed it. Its history is not evidence
    against this rollout: counting it failed a scale-up on a healthy replica forever."""
    if s.phase not in PROBED_PHASES or not obs.new:
        return s, obs
    base = dict(s.restart_base)
    for n in obs.new:
        mine = not s.started_at or created_by(s, n)  # no start time known: judge it all
        base.setdefault(n.gate.cid, 0 if mine else n.gate.restart_count)
    new = tuple(
        replace(n, gate=replace(n.gate, restart_count=max(0, n.gate.restart_count - b)))
        if (b := base[n.gate.cid])
        else n
        for n in obs.new
    )
    if base != s.restart_base:
        s = replace(s, restart_base=base)
    return s, replace(obs, new=new)
