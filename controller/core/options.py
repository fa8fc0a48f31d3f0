"""Berth's own options for a stack and its services (the `x-berth` compose extension, parsed
by `core/compose/xberth.py` and `core/compose/canary.py`): plain frozen values, re-exported
by `controller.core.model`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from controller.core.imageupdate import UpdatePolicy
from controller.core.task_options import HooksSpec, ReleaseTask, SmokeCheck

Strategy = Literal["start-first", "stop-first"]


@dataclass(frozen=True)
class ProbeSpec:
    """Berth's own HTTP health probe (`x-berth.health`)."""

    path: str = "/health"
    port: int = 80
    interval: float = 0.25
    timeout: float = 2.0
    healthy_threshold: int = 2


@dataclass(frozen=True)
class UpstreamSpec:
    """`x-berth.upstream`: the service is served through nginx under this upstream name."""

    name: str
    port: int


@dataclass(frozen=True)
class QuerySpec:
    """A PromQL check of the canary analysis: the query's value must stay within bounds.
    `{{revision}}`, `{{service}}` and `{{project}}` in the query are filled in."""

    query: str
    max: float | None = None
    min: float | None = None


@dataclass(frozen=True)
class AnalysisSpec:
    """How a canary step (and the bake after it) is judged on the new revision's traffic."""

    min_requests: int = 50  # per measurement; fewer = inconclusive
    success_rate: float | None = 99.0  # % of responses that are not 5xx or errors
    max_latency_p99: float | None = None  # seconds
    failure_limit: int = 1  # failed measurements that abort the release
    # against the stable revision in the same window (optional):
    max_success_rate_drop: float | None = None  # percentage points below stable
    max_latency_ratio: float | None = None  # new p99 / stable p99
    prometheus: str | None = None  # base URL for `queries`
    queries: tuple[QuerySpec, ...] = ()


@dataclass(frozen=True)
class CanarySpec:
    """`x-berth.canary`: the new revision gets `steps` % of requests in turn, each held at
    least `interval`, then 100 %."""

    steps: tuple[int, ...] = (10, 50)
    interval: float = 30.0
    sticky: bool = False
    analysis: AnalysisSpec | None = None


@dataclass(frozen=True)
class BerthOptions:
    """Per-service `x-berth` options, with the defaults of DESIGN §3."""

    strategy: Strategy = "start-first"
    upstream: UpstreamSpec | None = None
    health: ProbeSpec | None = None
    progress_deadline: float = 120.0
    drain_timeout: float = 30.0
    bake: float = 0.0
    allowed_tags: str | None = None
    canary: CanarySpec | None = None
    # pinned: a tag's digest is fixed when the tag is rolled out, a moved tag is reported;
    # digest: a moved tag is a new revision, rolled out; tag: no digest (as `docker run`)
    track: str = "pinned"
    update: UpdatePolicy | None = None  # image-update automation (core/imageupdate.py)
    # the rollout's own work (core/task_options.py): once per revision before any new
    # container starts; HTTP checks before the cut-over (and in the bake); bounded hooks
    release: tuple[ReleaseTask, ...] = ()
    smoke: tuple[SmokeCheck, ...] = ()
    hooks: HooksSpec = field(default_factory=HooksSpec)


@dataclass(frozen=True)
class ProxySpec:
    """Top-level `x-berth.proxy`: which service is nginx and which file Berth owns."""

    service: str | None
    upstreams_file: str  # absolute path
    test_command: tuple[str, ...] | None = None  # host nginx: e.g. ("nginx", "-t")
    reload_command: tuple[str, ...] | None = None  # host nginx: e.g. ("nginx", "-s", "reload")
    # How traffic moves: "dynamic" (peers set in the running nginx through its Lua module,
    # no reload), "reload" (rewrite the file and reload), "auto" (dynamic where nginx has
    # the Lua module and can reach Berth's directory, else reload).
    switch: str = "auto"
