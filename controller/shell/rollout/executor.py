"""The executor: performs one service's rollout through the ports, one step at a time.

It decides nothing itself: `controller.core.rollout.next_step` does. The executor observes
(one labelled list call, plus an inspect and a probe per new container while gating),
performs the step, records history, and reports progress events.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar, assert_never

from controller.core import rollout as r
from controller.core.model import (
    NetworkAttachment,
    StackSpec,
    Target,
)
from controller.core.outcome import Outcome
from controller.core.plan import ActionKind, ServiceAction
from controller.core.rollout_inputs import previous_revision, serving_ids
from controller.errors import (
    ContainerRuntimeError,
    NotFound,
    ProxyError,
)
from controller.shell.rollout.build_io import build_image, pull_image
from controller.shell.rollout.canary_io import CanaryLink
from controller.shell.rollout.dependents import restart_dependents
from controller.shell.rollout.dns import DNS_GRACE, dns_gated
from controller.shell.rollout.evidence import Evidence, capture
from controller.shell.rollout.hooks_io import after_event, run_hooks
from controller.shell.rollout.naming import container_labels, name_for, take_fixed_name
from controller.shell.rollout.naming import container_name as container_name
from controller.shell.rollout.observe import observe, side_by_side
from controller.shell.rollout.peers import resolve_peers
from controller.shell.rollout.release_io import run_release
from controller.shell.rollout.results import Event as Event
from controller.shell.rollout.results import Ports as Ports
from controller.shell.rollout.results import RolloutResult as RolloutResult
from controller.shell.rollout.smoke_io import run_smoke

Emit = Callable[[Event], None]
T = TypeVar("T")


class Executor:
    def __init__(self, ports: Ports, *, emit: Emit | None = None, commit: str | None = None):
        self.p = ports
        self.emit: Emit = emit or (lambda e: None)
        self.commit = commit
        self.canary = CanaryLink(ports, self.emit)

    # -- entry ---------------------------------------------------------------------------

    def execute(
        self,
        action: ServiceAction,
        stack: StackSpec | None,
        *,
        cancel: threading.Event | None = None,
    ) -> RolloutResult:
        """Run one service's action to its end. `cancel` set by the daemon when a newer
        desired revision arrived: the rollout is abandoned safely if it has not cut over."""
        t0 = self.p.clock.now()
        if action.kind is ActionKind.QUARANTINED:
            self._clean_quarantined(action)
            return self._result(action, Outcome.QUARANTINED, action.reason, t0)
        if not action.changes:
            return self._result(action, Outcome.UNCHANGED, action.reason, t0)
        from_rev, from_tag, rid = self._begin(action, t0)
        serving = serving_ids(action, self.p.proxy.routed(action))
        self._emit(action, "start", f"{action.kind.value}: {action.reason}")
        ev = Evidence()
        try:
            proxy_service = stack.proxy.service if stack and stack.proxy else None
            hook = run_hooks(self.p, action, "start", ev.tee(self.emit), from_tag=from_tag)
            if hook is not None:  # a required start hook failed: nothing was touched
                outcome, reason, canary = Outcome.FAILED, hook, False
            else:
                ending = self._run(action, from_rev, serving, cancel, proxy_service, ev)
                outcome, reason, canary = ending
        except BaseException as exc:
            self.p.store.finish_rollout(
                rid, outcome=Outcome.FAILED, reason=f"error: {exc}", at=self.p.clock.now()
            )
            raise
        now = self.p.clock.now()
        notes = "\n".join(ev.notes)
        self.p.store.finish_rollout(rid, outcome=outcome, reason=reason, at=now, notes=notes)
        if outcome is Outcome.FAILED:
            self.p.store.absorb_retry(rid)  # a retried failure (a pull) stays one record
        self._emit(action, outcome, reason)
        # after the record: a controller killed in a hook leaves the outcome recorded
        if (event := after_event(outcome, quarantined=ev.quarantined)) is not None:
            hooks = ev.tee(self.emit)
            run_hooks(
                self.p, action, event, hooks, from_tag=from_tag, outcome=outcome, reason=reason
            )
            self.p.store.note_rollout(rid, "\n".join(ev.notes))
        restart_dependents(self.p, action, outcome, stack, self.emit)  # depends_on.restart
        res = self._result(action, outcome, reason, t0, from_tag=from_tag)
        return replace(
            res,
            commit=self.commit,
            canary=canary,
            quarantined=ev.quarantined,
            log_container=ev.container,
            log_tail=ev.log_tail,
        )

    def _begin(self, action: ServiceAction, t0: float) -> tuple[str | None, str | None, int]:
        """Where the rollout starts from (the previous good revision, or the one an
        interrupted rollout came from), and its record in the store: (revision, tag, id)."""
        bad = {
            q.revision
            for q in self.p.store.quarantined()
            if (q.project, q.service) == (action.project, action.service)
        }
        last = self.p.store.last(action.project, action.service)
        interrupted = None
        if last and last.outcome is Outcome.IN_PROGRESS and last.from_revision:
            interrupted = (last.from_revision, last.from_tag)
        from_rev, from_tag = previous_revision(action, interrupted, bad)
        t = action.target
        self.p.store.abandon_in_progress(action.project, action.service, at=t0)
        rid = self.p.store.begin_rollout(
            project=action.project,
            service=action.service,
            from_tag=from_tag,
            to_tag=t.tag if t else "-",
            from_revision=from_rev,
            to_revision=t.revision if t else "-",
            commit=self.commit,
            at=t0,
            to_digest=t.digest if t else None,
        )
        return from_rev, from_tag, rid

    def _run(
        self,
        action: ServiceAction,
        from_rev: str | None,
        serving: frozenset[str],
        cancel: threading.Event | None,
        proxy_service: str | None,
        ev: Evidence,
    ) -> tuple[Outcome, str, bool]:
        """The rollout's outcome, its reason, and whether a canary was withdrawn."""
        state = r.RolloutState(r.config_for(action, from_rev, serving=serving))
        event: r.Event | None = None
        while True:
            looked_at = self.p.clock.now()
            obs = self.canary.observe(action, state, observe(self.p, action, state))
            if event is None and cancel is not None and cancel.is_set():
                event = r.Cancelled()
            before = state
            state, step = r.next_step(state, obs, self.p.clock.now(), event)
            self.canary.after(action, before, state)
            superseded = state.outcome is Outcome.SUPERSEDED and before.outcome is None
            if isinstance(event, r.Cancelled) and superseded:
                self._emit(action, "cancel", "a newer desired revision arrived")
            if isinstance(step, r.Finish):
                self.canary.end(action, state)
                return step.outcome, step.reason, state.withdrawn
            event = self._perform(action, state, step, proxy_service, ev, looked_at)

    # -- perform -------------------------------------------------------------------------

    def _perform(
        self,
        a: ServiceAction,
        s: r.RolloutState,
        step: r.Step,
        proxy_service: str | None,
        ev: Evidence,
        looked_at: float,
    ) -> r.Event | None:
        """Do what the step says; what the world answered goes back as an event.
        `looked_at`: when the observation this step was decided on began."""
        rt = self.p.runtime
        match step:
            case r.Pull(image):
                return pull_image(rt, a, image, self.emit, self.p.clock.now)
            case r.Build(image):
                return build_image(self.p.builder, a, image, self.emit, self.p.clock.now)
            case r.RunRelease(tasks):
                return run_release(self.p, a, tasks, ev.tee(self.emit))
            case r.Smoke(ids, checks, phase):
                return run_smoke(self.p, a, ids, checks, phase, ev.tee(self.emit))
            case r.StopOld(ids):
                self._emit(a, "stop-old", f"stopping {len(ids)} old container(s) (stop-first)")
                # each old container's own grace period: its revision's stop_grace_period
                self._parallel(lambda cid: rt.stop(cid), ids)
            case r.RemoveNew(ids):
                self._parallel(rt.remove, ids)
            case r.Create(numbers):
                return self._create_all(a, numbers, proxy_service)
            case r.Start(ids):
                return self._start_all(ids)
            case r.Observe(wait, _probe):
                self._pause(wait, looked_at)
            case r.Publish(ids):
                self._emit(a, "publish", f"{len(ids)} container(s) passed the gate: DNS name on")
                nets = a.target.spec.networks if a.target else ()
                self._parallel(lambda cid: rt.add_aliases(cid, nets), ids)
            case r.CutOver() | r.SwitchBack():
                return self._switch(a, s, step)
            case r.SetWeight():
                return self.canary.set_weight(a, s, step)
            case r.Retire(ids):
                self._retire(a, ids, proxy_service)
            case r.Abort():
                self._abort(a, step, ev)
            case r.Finish():
                raise AssertionError("Finish ends the loop; it is never performed")
            case _:
                assert_never(step)
        return None

    def _pause(self, wait: float, looked_at: float) -> None:
        """`wait` apart from the last look's start (the probe's cadence), not from its end:
        a look at three replicas on a Swarm manager takes a probe interval itself."""
        wait -= self.p.clock.now() - looked_at
        if wait > 0:
            self.p.clock.sleep(wait)

    def _switch(
        self, a: ServiceAction, s: r.RolloutState, step: r.CutOver | r.SwitchBack
    ) -> r.Event | None:
        """Traffic to the new containers, or back to the old ones; nginx refusing is the
        rollout's event to decide on, not an exception."""
        try:
            if isinstance(step, r.CutOver):
                self._emit(a, "cutover", f"{len(step.new_ids)} new container(s) passed the gate")
                self.p.proxy.cut_over(a, step.new_ids, step.old_ids)
            else:
                self._emit(a, "switch-back", s.failure)
                self.p.proxy.switch_back(a, step.old_ids, step.new_ids)
        except ProxyError as exc:
            failed = r.CutoverFailed if isinstance(step, r.CutOver) else r.SwitchBackFailed
            return failed(str(exc))
        return None

    def _create_all(
        self, a: ServiceAction, numbers: Sequence[int], proxy_service: str | None
    ) -> r.Event:
        target = a.target
        assert target is not None
        self._emit(a, "create", f"starting {len(numbers)} new container(s) of {target.tag}")
        resolvable = not dns_gated(self.p.runtime, a, proxy_service)
        try:
            self._parallel(lambda n: self._create(target, n, aliases=resolvable), numbers)
        except ContainerRuntimeError as exc:
            return r.StartFailed(str(exc))
        return r.Created(resolvable)

    def _start_all(self, ids: Sequence[str]) -> r.Event | None:
        try:
            self._parallel(self.p.runtime.start, ids)
        except ContainerRuntimeError as exc:
            return r.StartFailed(str(exc))
        return None

    def _create(self, target: Target, number: int, *, aliases: bool) -> None:
        cid = self.p.runtime.create(
            name=name_for(self.p.runtime, target, number),
            image=target.image,
            body=resolve_peers(self.p.runtime, target.project, target.spec.create),
            labels=container_labels(target, number, self.commit),
            networks=target.spec.networks,
            aliases=aliases,
            platform=target.spec.platform,
            constraints=target.spec.constraints,
        )
        if target.spec.files:  # secrets/configs without a host file: before the process runs
            self.p.runtime.put_files(cid, target.spec.files)
        self.p.runtime.start(cid)

    def _retire(self, a: ServiceAction, ids: Sequence[str], proxy_service: str | None) -> None:
        """Out of nginx (drained), then out of the service's DNS name, then stopped.

        A client that resolved the name just before the alias went away may still be
        connecting (its first SYN can fall into the moment of the reconnect and is retried
        after 1 s), so the container keeps running for DNS_GRACE before it is stopped. When
        no container but the service's own and nginx (which routes by IP) shares its
        networks, nobody can have resolved the name: both steps are skipped."""
        self._emit(a, "retire", f"stopping {len(ids)} old container(s) gracefully")
        self.p.proxy.retire(a, ids)
        rt = self.p.runtime
        nets = a.target.spec.networks if a.target else ()
        running = {c.id for c in rt.list_containers(project=a.project) if c.running}
        gated = dns_gated(rt, a, proxy_service)
        dropped = [cid for cid in ids if cid in running and nets and gated]
        self._parallel(lambda cid: _ignore_gone(rt.drop_aliases, cid, nets), dropped)
        if dropped:
            self.p.clock.sleep(DNS_GRACE)

        self._parallel(rt.retire, ids)  # each with its own grace period, not the new revision's
        take_fixed_name(rt, a)

    def _abort(self, a: ServiceAction, step: r.Abort, ev: Evidence) -> None:
        self._emit(a, "rollback", step.reason)
        rt = self.p.runtime
        if step.keep is not None:  # None: superseded, or nothing new failed
            # the failed container's last words, before it is removed (notifications)
            capture(rt, a.project, (step.keep, *step.remove), step.keep, step.reason, ev)
        self._parallel(rt.remove, step.remove)
        if step.keep:
            with contextlib.suppress(NotFound):
                rt.stop(step.keep, timeout=2.0)
        self._parallel(rt.start, step.restore)
        # Last: a controller killed before this line retries the rollout (and fails it
        # again) instead of leaving a stop-first service stopped behind a quarantine.
        if step.quarantine:
            self._quarantine(a, step.reason)
            ev.quarantined = a.target is not None

    def _quarantine(self, a: ServiceAction, reason: str) -> None:
        if a.target is not None:
            self.p.store.quarantine(
                project=a.project,
                service=a.service,
                revision=a.target.revision,
                tag=a.target.tag,
                reason=reason,
                at=self.p.clock.now(),
            )

    def _clean_quarantined(self, action: ServiceAction) -> None:
        """A controller killed while aborting may leave new containers of a quarantined
        revision running next to the old ones: finish the abort."""
        old = [c.id for c in action.old if c.running]
        running = [c.id for c in action.current if c.running]
        if old and running:
            self.p.proxy.switch_back(action, old, running)  # traffic to the old ones first
            self._parallel(self.p.runtime.remove, running)

    # -- helpers -------------------------------------------------------------------------

    def _parallel(self, fn: Callable[[T], None], items: Sequence[T]) -> None:
        side_by_side(fn, items)

    def _emit(self, a: ServiceAction, phase: str, message: str) -> None:
        self.emit(Event(a.project, a.service, phase, message, self.p.clock.now()))

    def _result(
        self,
        a: ServiceAction,
        outcome: Outcome,
        reason: str,
        t0: float,
        *,
        from_tag: str | None = None,
    ) -> RolloutResult:
        return RolloutResult(
            a.project,
            a.service,
            a.kind.value,
            outcome,
            reason,
            from_tag,
            a.target.tag if a.target else None,
            self.p.clock.now() - t0,
            revision=a.target.revision if a.target else None,
        )


def _ignore_gone(
    fn: Callable[[str, Sequence[NetworkAttachment]], None],
    cid: str,
    nets: Sequence[NetworkAttachment],
) -> None:
    with contextlib.suppress(NotFound):
        fn(cid, nets)
