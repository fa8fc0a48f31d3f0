"""Metrics of a rollout's own work (issue 15): release tasks, smoke checks and hooks.

Kept apart from metrics.py (the §7 core set) along the seam of x-berth.release/smoke/hooks;
`Metrics` owns one of these on the same CollectorRegistry. Fed from the executor's progress
events (`feed`), so no rollout code knows Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from controller.shell.daemon.metric_parts import check_label, remove_series
from controller.shell.rollout.results import Event

RELEASE_RESULTS = ("succeeded", "failed", "skipped")
SMOKE_PHASES = ("before", "bake")
SMOKE_RESULTS = ("passed", "failed")
HOOK_EVENTS = ("start", "success", "rollback")
HOOK_RESULTS = ("ok", "failed")
TASK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
TASK_METRIC_NAMES = frozenset(
    {
        "berth_release_tasks_total",
        "berth_release_task_duration_seconds",
        "berth_smoke_checks_total",
        "berth_smoke_check_duration_seconds",
        "berth_hooks_total",
        "berth_hook_duration_seconds",
    }
)
_SVC = ["project", "service"]
_RELEASE = {
    "release-succeeded": "succeeded",
    "release-failed": "failed",
    "release-skipped": "skipped",
}
_SMOKE = {"smoke-passed": "passed", "smoke-failed": "failed"}
_HOOK = {"hook-ok": "ok", "hook-failed": "failed"}


class TaskMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._release = Counter(
            "berth_release_tasks_total",
            "Release tasks (x-berth.release) by result: succeeded, failed (or timed out), "
            "skipped (ran for this revision already).",
            [*_SVC, "task", "result"],
            registry=registry,
        )
        self._release_seconds = Histogram(
            "berth_release_task_duration_seconds",
            "Duration of a release task, from its start (or adoption) to its end.",
            [*_SVC, "task"],
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self._smoke = Counter(
            "berth_smoke_checks_total",
            "Smoke-check runs (every check on every new container) by phase and result.",
            [*_SVC, "phase", "result"],
            registry=registry,
        )
        self._smoke_seconds = Histogram(
            "berth_smoke_check_duration_seconds",
            "Duration of a smoke-check run.",
            [*_SVC, "phase"],
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self._hooks = Counter(
            "berth_hooks_total",
            "Hooks (x-berth.hooks) run, by event and result.",
            [*_SVC, "event", "result"],
            registry=registry,
        )
        self._hook_seconds = Histogram(
            "berth_hook_duration_seconds",
            "Duration of a hook.",
            [*_SVC, "event"],
            buckets=TASK_BUCKETS,
            registry=registry,
        )
        self._tasks: dict[tuple[str, str], set[str]] = {}

    def known(self, project: str, service: str) -> None:
        """Smoke and hook counters at zero from now (a first failure is visible to
        increase()); release series appear with a task's first run (their label is its name)."""
        for phase in SMOKE_PHASES:
            for result in SMOKE_RESULTS:
                self._smoke.labels(project, service, phase, result)
        for event in HOOK_EVENTS:
            for result in HOOK_RESULTS:
                self._hooks.labels(project, service, event, result)

    def feed(self, e: Event) -> None:
        """One progress event of a rollout: counted when it ends a task, a run or a hook."""
        if e.task is None or e.task_seconds is None:
            return
        seconds = max(0.0, e.task_seconds)
        if e.phase in _RELEASE:
            self._tasks.setdefault((e.project, e.service), set()).add(e.task)
            self._release.labels(e.project, e.service, e.task, _RELEASE[e.phase]).inc()
            if e.phase != "release-skipped":
                self._release_seconds.labels(e.project, e.service, e.task).observe(seconds)
        elif e.phase in _SMOKE:
            check_label(e.task, SMOKE_PHASES, "smoke phase")
            self._smoke.labels(e.project, e.service, e.task, _SMOKE[e.phase]).inc()
            self._smoke_seconds.labels(e.project, e.service, e.task).observe(seconds)
        elif e.phase in _HOOK:
            check_label(e.task, HOOK_EVENTS, "hook event")
            self._hooks.labels(e.project, e.service, e.task, _HOOK[e.phase]).inc()
            self._hook_seconds.labels(e.project, e.service, e.task).observe(seconds)

    def forget(self, project: str, service: str) -> None:
        for task in self._tasks.pop((project, service), set()):
            for result in RELEASE_RESULTS:
                remove_series(self._release, project, service, task, result)
            remove_series(self._release_seconds, project, service, task)
        for phase in SMOKE_PHASES:
            for result in SMOKE_RESULTS:
                remove_series(self._smoke, project, service, phase, result)
            remove_series(self._smoke_seconds, project, service, phase)
        for event in HOOK_EVENTS:
            for result in HOOK_RESULTS:
                remove_series(self._hooks, project, service, event, result)
            remove_series(self._hook_seconds, project, service, event)
