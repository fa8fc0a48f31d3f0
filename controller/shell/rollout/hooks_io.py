"""Hooks (x-berth.hooks): commands or webhooks when a rollout of a new revision starts,
succeeds, or is turned down (rolled back, or failed and quarantined). Each is bounded by
its timeout (the HookRunner kills a command's whole process group), so none can hold a
rollout forever; a failure is reported (event, log, metric), and fails the rollout only
for a start hook marked `required`, before anything is touched."""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from controller.core.outcome import Outcome
from controller.core.plan import NEW_REVISION, ServiceAction
from controller.core.task_options import HookEvent
from controller.shell.rollout.results import Event, Ports

Emit = Callable[[Event], None]


def after_event(outcome: Outcome, *, quarantined: bool) -> HookEvent | None:
    """Which hooks an outcome calls for: success, or rollback when the revision was turned
    down (rolled back, or failed and quarantined). A failure retried with backoff (a pull
    while the registry is down, a required start hook) and a superseded pass call none:
    a retried failure would call them once a minute."""
    if outcome is Outcome.SUCCEEDED:
        return "success"
    if outcome is Outcome.ROLLED_BACK or (outcome is Outcome.FAILED and quarantined):
        return "rollback"
    return None


def run_hooks(
    p: Ports,
    a: ServiceAction,
    event: HookEvent,
    emit: Emit,
    *,
    from_tag: str | None,
    outcome: str = "",
    reason: str = "",
) -> str | None:
    """The event's hooks, in order. Returns why a required start hook failed, else None."""
    t = a.target
    if t is None or a.kind not in NEW_REVISION:
        return None
    hooks = t.spec.berth.hooks.of(event)
    if not hooks:
        return None
    payload = {
        "event": event,
        "project": a.project,
        "service": a.service,
        "from_tag": from_tag or "",
        "to_tag": t.tag,
        "revision": t.revision,
        "outcome": outcome,
        "reason": reason[:2000],
    }
    cwd = posixpath.dirname(t.spec.source_file) or "/"
    for hook in hooks:
        res = p.hooks.run(hook, payload, cwd=cwd)
        phase = "hook-ok" if res.ok else "hook-failed"
        message = f"{event} hook {hook.label}: {res.detail}"
        at = p.clock.now()
        emit(Event(a.project, a.service, phase, message, at, task_seconds=res.seconds, task=event))
        if not res.ok and hook.required:
            return f"start hook {hook.label} failed: {res.detail}"
    return None
