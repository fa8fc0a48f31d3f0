"""The reconciler of `berth run` (controller-runtime's Reconciler, kept apart from the
Manager in manager.py): one pass for one key, "project/service".

Each pass re-reads the last good config and re-observes Docker, plans that one service and
runs its action to the end through the rollout session (wiring.Context.session). A newer
desired revision for a key whose rollout is in flight cancels that rollout before its
cut-over. What the manager gives it: the config (`set_config`), "the world changed"
(`world_changed`), and keys to reconcile; what it returns: when to look again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from controller.core.config import Config
from controller.core.model import Observed, Target
from controller.core.outcome import NextPass, Outcome, next_pass
from controller.core.plan import STEADY_KINDS, ActionKind, Plan, ServiceAction, blockers, plan
from controller.shell.daemon.image_metrics import PULL_PHASES
from controller.shell.daemon.logs import log_rollout_event
from controller.shell.daemon.metrics import BUILD_PHASES, Metrics
from controller.shell.daemon.workqueue import Result
from controller.shell.rollout.digests import Pinning, pin_targets, related
from controller.shell.rollout.executor import RolloutResult
from controller.shell.rollout.notify import Notifier
from controller.shell.rollout.reconcile import observe, prepare_stacks, quarantined
from controller.shell.rollout.results import Event
from controller.shell.wiring import Context

log = logging.getLogger("berth.daemon")
WAIT_FOR_DEPENDENCY = Result(requeue_after=0.5)
SNAPSHOT_TTL = 1.0
DRIFT_KINDS = (ActionKind.CREATE, ActionKind.SCALE_UP, ActionKind.SCALE_DOWN)


@dataclass
class InFlight:
    revision: str
    cancel: threading.Event


class Reconciler:
    def __init__(
        self,
        ctx: Context,
        metrics: Metrics,
        stopping: threading.Event,
        notifier: Notifier | None = None,
    ) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.stopping = stopping
        self.notifier = notifier or Notifier(None)  # queues only: never waits on a receiver
        self.config: Config | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[str, InFlight] = {}
        self._converged: dict[str, str] = {}  # key -> revision last seen converged
        self._drift_seen: dict[str, str | None] = {}  # key -> the moved digest last logged
        # One list call serves every key of a resync burst: a snapshot is reused for up to
        # SNAPSHOT_TTL unless a Docker event or a rollout changed the world since.
        self._generation = 0
        self._snapshot: tuple[float, int, Observed] | None = None

    def set_config(self, cfg: Config) -> None:
        """The config in force from now on; in-flight rollouts whose target moved stop."""
        with self._lock:
            self.config = cfg
            for key, fl in self._in_flight.items():
                t = _target(cfg, key)
                if t is None or t.revision != fl.revision:
                    log.info(
                        "newer desired revision: superseding the rollout in flight",
                        extra=_where(key),
                    )
                    fl.cancel.set()

    def cancel_all(self) -> None:
        with self._lock:
            for fl in self._in_flight.values():
                fl.cancel.set()

    def world_changed(self) -> None:
        """A Docker event: the next pass lists afresh."""
        with self._lock:
            self._generation += 1

    def observe(self) -> Observed:
        """One list call serves every key of a resync burst (see SNAPSHOT_TTL)."""
        with self._lock:
            snap, gen = self._snapshot, self._generation
        if snap and snap[1] == gen and time.monotonic() - snap[0] < SNAPSHOT_TTL:
            return snap[2]
        observed = observe(self.ctx.runtime, self.ctx.store)
        with self._lock:
            self._snapshot = (time.monotonic(), gen, observed)
        return observed

    def reconcile(self, key: str) -> Result | None:
        """One pass for one key: re-observe, plan that service, run its action to the end."""
        cfg = self.config
        if cfg is None:
            return None
        project = key.split("/", 1)[0]
        observed = self.observe()
        loaded = [t for t in cfg.targets if t.project == project]
        # only this service and what it depends on or joins: one registry lookup per pass
        # for a typical key, not one per service of the project
        near = related(loaded, key.split("/", 1)[1])
        pinning = pin_targets([t for t in loaded if t.service in near], observed,
                              self.ctx.resolver)  # fmt: skip
        pinned = {t.key: t for t in pinning.targets}
        targets = [pinned.get(t.key, t) for t in loaded]
        self._report_drift(key, pinning)
        mine = [t for t in targets if t.key == key]
        # One target is enough to plan its key; the whole project only for a service that
        # left the compose file (its REMOVE is found by diffing against every target).
        action = next((a for a in plan(mine or targets, observed).actions if a.key == key), None)
        if action is None:
            return None
        if action.changes and self._waiting_for_dependency(action, targets, observed):
            return WAIT_FOR_DEPENDENCY
        base = _target(cfg, key)  # as loaded: what a reload is compared with
        result = self._execute(action, cfg, observed, base.revision if base else "")
        if action.changes or action.kind is ActionKind.QUARANTINED:
            with self._lock:
                self._generation += 1  # the world changed: the next pass lists afresh
            observed = self.observe()
        self._observe_metrics(key, targets, observed)
        return self._next(action, result)

    def _event(self, e: Event) -> None:
        """A rollout's progress: logged, and a canary's analysis counted."""
        log_rollout_event(e)
        if e.checks:
            self.metrics.analysis(e.project, e.service, e.checks)
        if e.phase in BUILD_PHASES and e.build_seconds is not None:
            self.metrics.build(e.project, e.service, BUILD_PHASES[e.phase], e.build_seconds)
        if e.phase in PULL_PHASES and e.pull_seconds is not None:
            self.metrics.images.pull(e.project, e.service, PULL_PHASES[e.phase], e.pull_seconds)
        self.metrics.tasks.feed(e)  # release tasks, smoke checks, hooks

    def _report_drift(self, key: str, pinning: Pinning) -> None:
        """A pinned service whose tag moved: said once per new digest, and in a gauge."""
        note = pinning.notes.get(key)
        drift = note.drift if note else None
        project, _, service = key.partition("/")
        self.metrics.digest_drift(project, service, drift is not None)
        if drift is not None and self._drift_seen.get(key) != drift:
            log.warning(
                "tag %s now points at %s; the service stays pinned to %s "
                "(x-berth.track: digest follows it)",
                note.target.tag if note else "?",
                drift,
                note.target.digest if note else "?",
                extra=_where(key),
            )
        self._drift_seen[key] = drift

    def _execute(
        self, action: ServiceAction, cfg: Config, observed: Observed, base_revision: str
    ) -> RolloutResult:
        key = action.key
        was = self._converged.get(key)
        fl = InFlight(base_revision, threading.Event())
        with self._lock:
            self._in_flight[key] = fl
            latest = _target(self.config, key) if self.config else None
            moved = action.target is not None and (latest is None or latest.revision != fl.revision)
            if self.stopping.is_set() or moved:  # a reload landed since this pass planned
                fl.cancel.set()
        try:
            session = self.ctx.session(cfg, emit=self._event, on_reload=self.metrics.proxy_reload)
            if action.changes:
                session.prepare(observed)
                prepare_stacks(_single(action), cfg.stacks, self.ctx.runtime)
            stack = cfg.stacks.get(action.project)
            result = session.execute(action, stack, cancel=fl.cancel)
            if (
                result.outcome is Outcome.SUCCEEDED
                and stack is not None
                and stack.proxy is not None
                and stack.proxy.service == action.service
            ):
                # nginx started or changed: with `switch: auto` it can only now be asked for
                # its Lua module; move the stack to the dynamic switch before traffic does
                session.prepare(observe(self.ctx.runtime, self.ctx.store))
            if action.kind in STEADY_KINDS:
                healed = session.heal_routes(action, observed)
                if healed.error:
                    log.warning("routes not healed: %s", healed.error, extra=_where(key))
                elif healed.reasons:
                    log.warning("routes healed: %s", "; ".join(healed.reasons), extra=_where(key))
        except Exception as exc:
            if action.changes:  # a rollout that raised (Docker gone mid-way) is news too
                self.notifier.rollout(_raised(action, exc))
            raise
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
        if result.outcome.is_rollout:
            self.metrics.rollout(
                action.project, action.service, result.outcome, result.duration, now=time.time()
            )
        self.notifier.rollout(result)  # at most one notice per change (core/notify.admit)
        if action.target is not None and result.outcome.ok:
            if was == action.target.revision and action.kind in DRIFT_KINDS:
                self.metrics.drift(action.project, action.service)
                log.info("drift corrected: %s", action.reason, extra=_where(key))
            self._converged[key] = action.target.revision
        return result

    def _next(self, action: ServiceAction, result: RolloutResult) -> Result | None:
        t = action.target
        # a removal has no revision to quarantine, and is left for the next change too
        blocked = t is None or (
            result.outcome.bad and (action.key, t.revision) in quarantined(self.ctx.store)
        )
        match next_pass(result.outcome, quarantined=blocked):
            case NextPass.NOW:
                return Result(requeue_after=0.0)
            case NextPass.BACKOFF:
                return Result(requeue=True)
            case NextPass.WAIT:
                return None

    def _waiting_for_dependency(
        self, action: ServiceAction, targets: list[Target], observed: Observed
    ) -> bool:
        if action.target is None or not action.target.spec.depends_on:
            return False
        with self._lock:
            busy = set(self._in_flight) - {action.key}
        return bool(blockers([*plan(targets, observed).actions, action], busy=busy)[action.key])

    def _observe_metrics(self, key: str, targets: list[Target], observed: Observed) -> None:
        t = next((t for t in targets if t.key == key), None)
        if t is None:
            self.metrics.forget_service(*key.split("/", 1))
            return
        cs = observed.of_service(t.project, t.service)
        ready = sum(1 for c in cs if c.revision == t.revision and c.ready)
        running = sorted({c.tag for c in cs if c.running})
        self.metrics.replicas(t.project, t.service, desired=t.replicas, ready=ready)
        self.metrics.info(
            t.project, t.service, desired_tag=t.tag, running_tag=",".join(running) or None
        )


def _raised(action: ServiceAction, exc: Exception) -> RolloutResult:
    """What a rollout that raised amounts to for a notice: failed, with the error."""
    t = action.target
    return RolloutResult(
        action.project,
        action.service,
        action.kind.value,
        Outcome.FAILED,
        f"error: {exc}",
        None,
        t.tag if t else None,
        0.0,
        revision=t.revision if t else None,
    )


def _target(cfg: Config, key: str) -> Target | None:
    return next((t for t in cfg.targets if t.key == key), None)


def _where(key: str) -> dict[str, str]:
    project, _, service = key.partition("/")
    return {"stack": project, "service": service}


def _single(action: ServiceAction) -> Plan:
    return Plan((action,))
