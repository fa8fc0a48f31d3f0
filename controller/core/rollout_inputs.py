"""Two choices a rollout starts from, pure: which containers already serve, and which
revision served before (what a rollback returns to)."""

from __future__ import annotations

from collections.abc import Collection

from controller.core.plan import ActionKind, ServiceAction


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
