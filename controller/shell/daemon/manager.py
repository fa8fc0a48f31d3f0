"""`berth run`: the reconcile loop (controller-runtime style) with its triggers and HTTP.

A work item is only a key, "project/service"; each pass re-reads the last good config and
re-observes Docker, plans that one service and runs its action to the end. One worker per
key at a time (the queue guarantees it), parallel across keys. A newer desired revision
for a key whose rollout is in flight cancels that rollout before its cut-over.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from controller.core.config import Config, keep_last_good
from controller.core.model import Observed, Target
from controller.core.outcome import NextPass, next_pass
from controller.core.plan import ActionKind, Plan, ServiceAction, blockers, plan
from controller.shell.daemon.config_source import load_or_invalid
from controller.shell.daemon.httpd import Endpoints, serve
from controller.shell.daemon.listen import parse_listen, show
from controller.shell.daemon.logs import log_rollout_event
from controller.shell.daemon.metrics import Metrics
from controller.shell.daemon.triggers import DockerEvents, FileWatcher, Resync
from controller.shell.daemon.workqueue import Result, Runner, WorkQueue
from controller.shell.rollout.executor import RolloutResult
from controller.shell.rollout.reconcile import observe, prepare_stacks, quarantined
from controller.shell.rollout.status import status_rows
from controller.shell.wiring import Context

log = logging.getLogger("berth.daemon")
WAIT_FOR_DEPENDENCY = Result(requeue_after=0.5)
SNAPSHOT_TTL = 1.0
DRIFT_KINDS = (ActionKind.CREATE, ActionKind.SCALE_UP, ActionKind.SCALE_DOWN)


@dataclass
class InFlight:
    revision: str
    cancel: threading.Event


class Daemon:
    def __init__(
        self,
        ctx: Context,
        *,
        resync: float = 30.0,
        workers: int = 8,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.ctx = ctx
        self.resync_period = resync
        self.metrics = Metrics(registry or CollectorRegistry())
        self.queue: WorkQueue[str] = WorkQueue()
        self.runner = Runner(self.queue, self.handle, workers=workers)
        self.stopping = threading.Event()
        self.config: Config | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[str, InFlight] = {}
        self._converged: dict[str, str] = {}  # key -> revision last seen converged
        self._initial: set[str] | None = None
        self._files: set[str] = set()
        self._reload_lock = threading.Lock()
        self._waits: dict[str, int] = {}
        self.ready = threading.Event()
        self._heartbeat = time.monotonic()  # see alive()
        self._threads: list[threading.Thread] = []
        self.watcher = FileWatcher(ctx.desired, self._files_changed, self.stopping)
        self.events = DockerEvents(ctx.runtime, self._on_event, self.enqueue_all, self.stopping)
        # One list call serves every key of a resync burst: a snapshot is reused for up to
        # SNAPSHOT_TTL unless a Docker event or a rollout changed the world since.
        self._generation = 0
        self._snapshot: tuple[float, int, Observed] | None = None

    # -- config --------------------------------------------------------------------------

    def reload(self, reason: str) -> None:
        """Re-read desired/ (and what it references); invalid files keep their last good
        state; every key is queued, and in-flight rollouts whose target moved are cancelled."""
        with self._reload_lock:  # the watcher, the resync and start-up all reload
            self._reload_locked(reason)

    def _reload_locked(self, reason: str) -> None:
        partial = load_or_invalid(self.ctx.desired, self.ctx.compose_root, known=self._files)
        for gone in self._files - set(partial.problems):
            self.metrics.forget_file(gone)  # a deleted desired file must not keep alerting
        self._files = set(partial.problems)
        for file, problems in partial.problems.items():
            self.metrics.desired_valid(file, not problems)
            for p in problems:
                log.error("invalid desired state: %s", p, extra={"file": file, "error": str(p)})
        with self._lock:
            cfg = keep_last_good(partial, self.config)
            self.config = cfg
            for key, fl in self._in_flight.items():
                t = _target(cfg, key)
                if t is None or t.revision != fl.revision:
                    log.info(
                        "newer desired revision: superseding the rollout in flight",
                        extra=_where(key),
                    )
                    fl.cancel.set()
        self.metrics.known_services((t.project, t.service) for t in cfg.targets)
        self.watcher.track([*cfg.files, *partial.problems])
        log.debug("config reloaded (%s)", reason)
        self.enqueue_all()

    def _files_changed(self, paths: list[str]) -> None:
        log.info("desired state changed: %s", ", ".join(os.path.basename(p) for p in paths))
        self.reload("files changed")

    def _on_event(self, key: str) -> None:
        with self._lock:
            self._generation += 1
        self.queue.add(key)

    def _observe(self) -> Observed:
        with self._lock:
            snap, gen = self._snapshot, self._generation
        if snap and snap[1] == gen and time.monotonic() - snap[0] < SNAPSHOT_TTL:
            return snap[2]
        observed = observe(self.ctx.runtime, self.ctx.store)
        with self._lock:
            self._snapshot = (time.monotonic(), gen, observed)
        return observed

    def enqueue_all(self) -> None:
        cfg = self.config
        if cfg is None:
            return
        keys = {t.key for t in cfg.targets}
        projects = {t.project for t in cfg.targets}
        try:  # services that left a compose file still need their REMOVE pass
            keys |= {
                f"{c.project}/{c.service}"
                for c in self._observe().containers
                if c.project in projects
            }
        except Exception as exc:
            log.warning("cannot list containers: %s", exc, extra={"error": str(exc)})
        with self._lock:
            if self._initial is None:
                self._initial = set(keys)
                if not keys:
                    self.ready.set()
        for k in sorted(keys):
            self.queue.add(k)

    # -- the reconcile of one key --------------------------------------------------------

    def handle(self, key: str) -> Result | None:
        self._heartbeat = time.monotonic()
        t0 = time.monotonic()
        try:
            result = self._handle(key)
        except Exception:
            self.metrics.reconcile("error", time.monotonic() - t0)
            raise
        self.metrics.reconcile("success", time.monotonic() - t0)
        waited = self._waits.get(key, 0) + 1 if result is WAIT_FOR_DEPENDENCY else 0
        self._waits[key] = waited
        if waited == 0 or waited > 20:
            # A pass that only waited did not reconcile anything; but a dependency that
            # keeps failing must not hold /readyz back forever (10 s of waiting is enough).
            self._mark_initial(key)
        return result

    def _handle(self, key: str) -> Result | None:
        cfg = self.config
        if cfg is None:
            return None
        project = key.split("/", 1)[0]
        observed = self._observe()
        targets = [t for t in cfg.targets if t.project == project]
        mine = [t for t in targets if t.key == key]
        # One target is enough to plan its key; the whole project only for a service that
        # left the compose file (its REMOVE is found by diffing against every target).
        action = next((a for a in plan(mine or targets, observed).actions if a.key == key), None)
        if action is None:
            return None
        if action.changes and self._waiting_for_dependency(action, targets, observed):
            return WAIT_FOR_DEPENDENCY
        result = self._execute(action, cfg, observed)
        if action.changes or action.kind is ActionKind.QUARANTINED:
            with self._lock:
                self._generation += 1  # the world changed: the next pass lists afresh
            observed = self._observe()
        self._observe_metrics(key, cfg, observed)
        return self._next(action, result)

    def _execute(self, action: ServiceAction, cfg: Config, observed: Observed) -> RolloutResult:
        key = action.key
        was = self._converged.get(key)
        fl = InFlight(action.target.revision if action.target else "", threading.Event())
        with self._lock:
            self._in_flight[key] = fl
            latest = _target(self.config, key) if self.config else None
            moved = action.target is not None and (latest is None or latest.revision != fl.revision)
            if self.stopping.is_set() or moved:  # a reload landed since this pass planned
                fl.cancel.set()
        try:
            session = self.ctx.session(
                cfg, emit=log_rollout_event, on_reload=self.metrics.proxy_reload
            )
            if action.changes:
                session.prepare(observed)
                prepare_stacks(_single(action), cfg.stacks, self.ctx.runtime)
            result = session.execute(action, cfg.stacks.get(action.project), cancel=fl.cancel)
            if action.kind is ActionKind.NOTHING:
                healed = session.heal_routes(action, observed)
                if healed.error:
                    log.warning("routes not healed: %s", healed.error, extra=_where(key))
                elif healed.reasons:
                    log.warning(
                        "routes healed: %s", "; ".join(healed.reasons), extra=_where(key)
                    )
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
        if result.outcome.is_rollout:
            self.metrics.rollout(
                action.project, action.service, result.outcome, result.duration, now=time.time()
            )
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

    def _observe_metrics(self, key: str, cfg: Config, observed: Observed) -> None:
        t = _target(cfg, key)
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

    def _mark_initial(self, key: str) -> None:
        with self._lock:
            if self._initial is not None and key in self._initial:
                self._initial.discard(key)
                if not self._initial:
                    self.ready.set()
                    log.info("first reconcile complete: ready")

    # -- lifecycle -----------------------------------------------------------------------

    def endpoints(self) -> Endpoints:
        def status() -> Any:
            cfg = self.config
            return status_rows(self.ctx.runtime, self.ctx.store, cfg) if cfg else []

        return Endpoints(
            metrics=lambda: (self.metrics.render(), self.metrics.content_type),
            alive=self.alive,
            ready=self.ready.is_set,
            status=status,
        )

    @property
    def stall_after(self) -> float:
        """How old the heartbeat may get: two resync periods, plus two minutes for a pass
        that waits on a slow Docker (its API timeout is 60 s) before that counts as stuck."""
        return 2 * self.resync_period + 120.0

    def alive(self) -> bool:
        """/healthz: the loop is alive unless it is stopping, one of its threads died, or
        its heartbeat is older than `stall_after` (a reload that hangs, say).

        The heartbeat is set when `run` starts, before the server answers, and again at
        every resync tick and every reconcile pass; the threads are checked only once
        they have all been started. So the first answer is already 200 and start-up has
        no 503 window, while a loop that really stalls still turns /healthz to 503."""
        if self.stopping.is_set() or not all(t.is_alive() for t in self._threads):
            return False
        return time.monotonic() - self._heartbeat < self.stall_after

    def _resync(self) -> None:
        self._heartbeat = time.monotonic()
        self.reload("resync")

    def run(self, listen: str) -> int:
        """--listen is parsed and bound first: a bad value or a taken port fails in
        milliseconds with one line (ListenError), before Docker or any reconcile; so does a
        --compose-root that cannot hold the boundary (ConfigError)."""
        address = parse_listen(listen)
        self.ctx.config_files()
        self._heartbeat = time.monotonic()
        server = serve(address, self.endpoints())
        try:
            log.info(
                "berth run: listening on %s, watching %s", show(server.address), self.ctx.desired
            )
            self._start_loop()
            self._install_signals()
            while not self.stopping.wait(0.5):
                pass
            self.shutdown()
        finally:
            server.shutdown()
        return 0

    def _start_loop(self) -> None:
        self.runner.start()
        self.reload("start")
        threads = [
            threading.Thread(target=self.watcher.run, name="berth-watch", daemon=True),
            threading.Thread(target=self.events.run, name="berth-events", daemon=True),
            threading.Thread(
                target=Resync(self.resync_period, self._resync, self.stopping).run,
                name="berth-resync",
                daemon=True,
            ),
        ]
        for t in threads:
            t.start()
        self._threads = threads  # published once started: is_alive() is True for each

    def _install_signals(self) -> None:
        def stop(signum: int, frame: object) -> None:
            log.info("received %s: finishing in-flight work", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def shutdown(self, timeout: float = 120.0) -> None:
        """Stop taking work; rollouts before their cut-over are abandoned safely (their new
        containers removed, old ones never stopped serving); after it, they finish."""
        self.stopping.set()
        with self._lock:
            for fl in self._in_flight.values():
                fl.cancel.set()
        if not self.runner.stop(timeout):
            log.warning("some rollouts did not finish within %.0fs", timeout)
        log.info("berth run: stopped")


def _target(cfg: Config, key: str) -> Target | None:
    return next((t for t in cfg.targets if t.key == key), None)


def _where(key: str) -> dict[str, str]:
    project, _, service = key.partition("/")
    return {"stack": project, "service": service}


def _single(action: ServiceAction) -> Plan:
    return Plan((action,))
