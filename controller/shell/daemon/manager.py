"""`berth run`: the Manager (controller-runtime style) around the Reconciler.

The manager owns what is not one key's pass: loading desired/ (the last good config stays
in force), the triggers (file watcher, Docker events, resync), the keyed work queue and its
workers, readiness, the heartbeat, HTTP endpoints, signals and shutdown. A work item is only
a key, "project/service"; the reconciler (reconciler.py) does the pass. One worker per key
at a time (the queue guarantees it), parallel across keys.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from controller.core.analysis import check_names
from controller.core.config import keep_last_good
from controller.core.gitsync import SyncOutcome, SyncResult, redact_url
from controller.errors import Problem
from controller.shell.daemon.automation import ImageAutomation
from controller.shell.daemon.config_source import load_or_invalid
from controller.shell.daemon.gitsync import GitLink
from controller.shell.daemon.httpd import Endpoints, serve
from controller.shell.daemon.listen import parse_listen, show
from controller.shell.daemon.metrics import Metrics
from controller.shell.daemon.reconciler import WAIT_FOR_DEPENDENCY, Reconciler
from controller.shell.daemon.traffic_metrics import TrafficCollector
from controller.shell.daemon.triggers import (
    DockerEvents,
    FileWatcher,
    Resync,
    RouteWatch,
    route_period,
)
from controller.shell.daemon.workqueue import Result, Runner, WorkQueue
from controller.shell.rollout.status import status_rows
from controller.shell.wiring import Context

log = logging.getLogger("berth.daemon")


class Daemon:
    def __init__(
        self,
        ctx: Context,
        *,
        resync: float = 30.0,
        workers: int = 8,
        registry: CollectorRegistry | None = None,
        on_sync: Callable[[SyncOutcome], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.resync_period = resync
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.queue: WorkQueue[str] = WorkQueue()
        self.runner = Runner(self.queue, self.handle, workers=workers)
        self.stopping = threading.Event()
        # built first: a notification URL Apprise cannot use fails start-up before any work
        self.notifier = ctx.notifier(on_result=self.metrics.notification)
        if self.notifier.enabled:
            self.metrics.known_notifications()
        self.reconciler = Reconciler(ctx, self.metrics, self.stopping, self.notifier)
        # the store is opened at the first scrape, not here: a bad --listen does no work
        self.registry.register(TrafficCollector(lambda: self.reconciler.config, lambda: ctx.store))
        self._lock = threading.Lock()
        self._initial: set[str] | None = None
        self._files: set[str] = set()
        self._warned: set[Problem] = set()  # configuration warnings already logged
        self._reload_lock = threading.Lock()
        self._waits: dict[str, int] = {}
        self.ready = threading.Event()
        self._heartbeat = time.monotonic()  # see alive()
        self._threads: list[threading.Thread] = []
        self.watcher = FileWatcher(ctx.desired, self._files_changed, self.stopping)
        self.events = DockerEvents(ctx.runtime, self._on_event, self.enqueue_all, self.stopping)
        # --git-url: the syncer, its metrics and the webhook (None without a git source)
        self.git = GitLink.build(ctx.git, self.registry, self.reload, on_sync or self._sync_notice)
        # x-berth.update: scans registries, writes chosen tags into desired/ as commits
        self.automation = ImageAutomation(
            ctx,
            lambda: self.reconciler.config,
            self.metrics.images,
            self.stopping,
            request_sync=self.git.sync.request if self.git else None,
        )

    def _sync_notice(self, o: SyncOutcome) -> None:
        """A git sync that failed or was refused is a notice (one per distinct error until
        a sync succeeds); the URL is shown without credentials."""
        if self.ctx.git is None:
            return
        source = f"{redact_url(self.ctx.git.url)} ({self.ctx.git.branch})"
        if o.result is SyncResult.SUCCESS:
            self.notifier.sync_ok(source)
        elif o.error:
            self.notifier.sync_failed(source, o.error, o.commit)

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
        self._warn(partial.config.warnings)
        cfg = keep_last_good(partial, self.reconciler.config)
        self.reconciler.set_config(cfg)
        self.metrics.known_services((t.project, t.service) for t in cfg.targets)
        for t in cfg.targets:
            canary = t.spec.berth.canary
            if canary is not None and canary.analysis is not None:
                self.metrics.known_checks(t.project, t.service, check_names(canary.analysis))
        self.watcher.track([*cfg.files, *partial.problems])
        log.debug("config reloaded (%s)", reason)
        self.enqueue_all()

    def _warn(self, warnings: tuple[Problem, ...]) -> None:
        """Each configuration warning is logged when it first appears, not at every resync."""
        for w in warnings:
            if w not in self._warned:
                log.warning("desired state: %s", w, extra={"file": w.file})
        self._warned = set(warnings)

    def _files_changed(self, paths: list[str]) -> None:
        log.info("desired state changed: %s", ", ".join(os.path.basename(p) for p in paths))
        self.reload("files changed")

    def _on_event(self, key: str) -> None:
        self.reconciler.world_changed()
        self.queue.add(key)

    def enqueue_all(self) -> None:
        cfg = self.reconciler.config
        if cfg is None:
            return
        keys = {t.key for t in cfg.targets}
        projects = {t.project for t in cfg.targets}
        try:  # services that left a compose file still need their REMOVE pass
            keys |= {
                f"{c.project}/{c.service}"
                for c in self.reconciler.observe().containers
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
            result = self.reconciler.reconcile(key)
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
            cfg = self.reconciler.config
            if cfg is None:
                return []
            return status_rows(self.ctx.runtime, self.ctx.store, cfg, self.ctx.resolver)

        return Endpoints(
            metrics=lambda: (self.metrics.render(), self.metrics.content_type),
            alive=self.alive,
            ready=self.ready.is_set,
            status=status,
            source=self.git.status if self.git else None,
            hook=self.git.hook if self.git else None,
            updates=self.automation.status,
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
        if self.git is not None:
            self.git.sync.prepare()  # clone (or check) the checkout before the first read
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
        if self.git is not None:
            threads.append(threading.Thread(target=self.git.sync.run, name="berth-git"))
            threads[-1].daemon = True
        threads.append(
            threading.Thread(target=self.automation.run, name="berth-update", daemon=True)
        )
        if self.ctx.backend == "swarm":
            watch = RouteWatch(
                self._route_period(), self._proxied_keys, self.queue.add, self.stopping
            )
            threads.append(threading.Thread(target=watch.run, name="berth-routes", daemon=True))
        for t in threads:
            t.start()
        self._threads = threads  # published once started: is_alive() is True for each

    def _proxied_keys(self) -> list[str]:
        """The services nginx routes to (x-berth.upstream), as the route check visits them."""
        cfg = self.reconciler.config
        if cfg is None:
            return []
        return sorted(t.key for t in cfg.targets if t.spec.berth.upstream is not None)

    def _route_period(self) -> float:
        cfg = self.reconciler.config
        targets = cfg.targets if cfg is not None else ()
        return route_period(
            t.spec.berth.health.interval for t in targets if t.spec.berth.health is not None
        )

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
        if self.git is not None:
            self.git.sync.stop()
        self.reconciler.cancel_all()
        if not self.runner.stop(timeout):
            log.warning("some rollouts did not finish within %.0fs", timeout)
        self.notifier.close(timeout=10.0)  # what the last rollouts said, within bounds
        log.info("berth run: stopped")
