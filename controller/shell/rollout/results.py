"""What the executor is given (`Ports`) and what it reports (`Event`, `RolloutResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.core.outcome import Outcome
from controller.ports import (
    Clock,
    ContainerRuntime,
    HealthProber,
    ImageBuilder,
    MetricsQuery,
    ProxySwitch,
    StateStore,
)
from controller.shell.rollout.cutover import NoBuilder, NoHooks, NoHttp, NoMetrics, NoProxy
from controller.task_ports import HookRunner, HttpClient


@dataclass(frozen=True)
class Ports:
    runtime: ContainerRuntime
    prober: HealthProber
    clock: Clock
    store: StateStore
    proxy: ProxySwitch = field(default_factory=NoProxy)
    metrics: MetricsQuery = field(default_factory=NoMetrics)  # canary PromQL checks
    builder: ImageBuilder = field(default_factory=NoBuilder)  # compose `build:` services
    http: HttpClient = field(default_factory=NoHttp)  # smoke checks
    hooks: HookRunner = field(default_factory=NoHooks)  # x-berth.hooks


@dataclass(frozen=True)
class Event:
    """A progress event of one rollout (rendered live by `apply`, logged by `run`)."""

    project: str
    service: str
    phase: str
    message: str
    at: float
    weight: int | None = None  # canary: % of requests now on the new revision
    checks: tuple[tuple[str, str], ...] = ()  # analysis: (check, pass|fail|inconclusive)
    build_seconds: float | None = None  # built | build-cached | build-failed: how long
    pull_seconds: float | None = None  # pulled | pull-failed: how long
    # release-* | smoke-* | hook-*: how long, and which task, check phase or hook event
    task_seconds: float | None = None
    task: str | None = None


@dataclass(frozen=True)
class RolloutResult:
    project: str
    service: str
    kind: str
    outcome: Outcome
    reason: str
    from_tag: str | None
    to_tag: str | None
    duration: float
    # for notifications (controller/core/notify.py): what the rollout was about and why it
    # ended; the log tail may hold anything the container printed, secrets included
    revision: str | None = None
    commit: str | None = None
    canary: bool = False  # withdrawn from a canary (weight 0) before the abort
    quarantined: bool = False  # this rollout quarantined its revision
    log_container: str | None = None
    log_tail: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome.ok
