"""Berth's Prometheus metrics (DESIGN §7): the names, types and labels are a contract.

The dashboard (`metrics/dashboard.json`) and the alert rules (`metrics/alerts.yml`) query
these exact series, so this module is the one place that spells them. It is built on a
`CollectorRegistry` it is given, never the global one: tests and two controllers in one
process must not share counters. It reads no clock: callers pass `now`, so a fake clock
gives reproducible timestamps.

Label sets that are known in advance are pre-set to zero (DESIGN §7) because `increase()`
and `rate()` cannot see the first event of a series that did not exist before it, and an
alert on `increase(...) > 0` would miss the first rollback after a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from controller import __version__
from controller.core.notify import Kind
from controller.core.outcome import Outcome
from controller.shell.daemon.image_metrics import IMAGE_METRIC_NAMES, ImageMetrics
from controller.shell.daemon.metric_parts import WithoutCreated, check_label, remove_series
from controller.shell.daemon.task_metrics import TASK_METRIC_NAMES, TaskMetrics

# Executor outcomes that are rollouts (Outcome.is_rollout); "unchanged", "quarantined" and
# "superseded" are passes that did not end a rollout, and counting them would drown the
# rollout rate in reconcile noise.
COUNTED_OUTCOMES = tuple(o.value for o in Outcome if o.is_rollout)
RECONCILE_RESULTS = ("success", "error")
PROXY_RESULTS = ("success", "error")
REPLICA_STATES = ("desired", "ready")

# A reconcile pass is a few list calls (ms) but may wait on a rollout start (tens of s).
RECONCILE_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
# A rollout is at least one health gate (~0.25 s) and at most progress_deadline + drain +
# bake; 600 s covers a generous deadline with a slow stop grace period.
ROLLOUT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

BUILD_RESULTS = ("built", "cached", "failed")
BUILD_PHASES = {"built": "built", "build-cached": "cached", "build-failed": "failed"}

ServiceKey = tuple[str, str]  # (project, service)

# The §7 names, for tests and the dashboard/alert checks that must use nothing else.
METRIC_NAMES = frozenset(
    {
        "berth_reconcile_total",
        "berth_reconcile_duration_seconds",
        "berth_rollouts_total",
        "berth_rollout_duration_seconds",
        "berth_service_replicas",
        "berth_service_info",
        "berth_desired_valid",
        "berth_drift_corrections_total",
        "berth_proxy_reloads_total",
        "berth_last_success_timestamp_seconds",
        "berth_build_info",
        # the traffic layer (traffic_metrics.py reads the first three from nginx at scrape)
        "berth_upstream_requests_total",
        "berth_upstream_response_seconds",
        "berth_canary_weight",
        "berth_analysis_checks_total",
        # builds on the host (compose `build:`)
        "berth_image_builds_total",
        "berth_image_build_duration_seconds",
        # images from registries (image_metrics.py)
        *IMAGE_METRIC_NAMES,
        # release tasks, smoke checks and hooks (task_metrics.py)
        *TASK_METRIC_NAMES,
        # the remote git source (`berth run --git-url`; git_metrics.py)
        "berth_git_sync_total",
        "berth_git_last_sync_timestamp_seconds",
        "berth_git_sync_consecutive_failures",
        "berth_git_sync_interval_seconds",
        "berth_webhooks_total",
        # notifications (docs/notifications.md)
        "berth_notifications_total",
    }
)
ANALYSIS_RESULTS = ("pass", "fail", "inconclusive")
NOTIFY_KINDS = tuple(k.value for k in Kind)
NOTIFY_RESULTS = ("sent", "failed", "dropped")


class Metrics:
    """The §7 metric set on one registry, with one method per thing that happens."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry, *, version: str = __version__) -> None:
        self.registry = registry
        # Rollouts of independent services run in threads; the bookkeeping below (which
        # info label set is current, which services exist) must not interleave.
        self._lock = threading.Lock()
        self._info_labels: dict[ServiceKey, tuple[str, str]] = {}
        self._services: set[ServiceKey] = set()
        self._define_passes(registry)
        self._define_services(registry)
        self.images = ImageMetrics(registry)
        self.tasks = TaskMetrics(registry)
        self._build_info.labels(version=version).set(1)
        for result in RECONCILE_RESULTS:
            self._reconciles.labels(result=result)
        for result in PROXY_RESULTS:
            self._proxy_reloads.labels(result=result)

    def _define_passes(self, registry: CollectorRegistry) -> None:
        """Controller-wide metrics; declared apart so the contract reads like the §7 table."""
        self._reconciles = Counter(
            "berth_reconcile_total", "Reconcile passes by result.", ["result"], registry=registry
        )
        self._reconcile_seconds = Histogram(
            "berth_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self._desired_valid = Gauge(
            "berth_desired_valid",
            "1 if the desired/ file parsed and validated, else 0.",
            ["file"],
            registry=registry,
        )
        self._proxy_reloads = Counter(
            "berth_proxy_reloads_total",
            "nginx reloads by result.",
            ["result"],
            registry=registry,
        )
        self._notifications = Counter(
            "berth_notifications_total",
            "Notifications by kind and result (sent to every target, failed, dropped).",
            ["kind", "result"],
            registry=registry,
        )
        self._build_info = Gauge(
            "berth_build_info",
            "Always 1; the version label says which Berth runs.",
            ["version"],
            registry=registry,
        )

    def _define_services(self, registry: CollectorRegistry) -> None:
        """Per-service metrics, all keyed by (project, service) like a reconcile request."""
        svc = ("project", "service")
        self._rollouts = Counter(
            "berth_rollouts_total",
            "Finished rollouts by outcome.",
            [*svc, "outcome"],
            registry=registry,
        )
        self._rollout_seconds = Histogram(
            "berth_rollout_duration_seconds",
            "Duration of a finished rollout.",
            svc,
            buckets=ROLLOUT_BUCKETS,
            registry=registry,
        )
        self._replicas = Gauge(
            "berth_service_replicas",
            "Replicas of a service: desired and ready (healthy).",
            [*svc, "state"],
            registry=registry,
        )
        self._info = Gauge(
            "berth_service_info",
            "Always 1; labels carry the desired and running tag.",
            [*svc, "desired_tag", "running_tag"],
            registry=registry,
        )
        self._drift = Counter(
            "berth_drift_corrections_total",
            "Reconciles that repaired drift (containers changed behind Berth's back).",
            svc,
            registry=registry,
        )
        self._last_success = Gauge(
            "berth_last_success_timestamp_seconds",
            "Unix time of the service's last succeeded rollout.",
            svc,
            registry=registry,
        )
        self._builds = Counter(
            "berth_image_builds_total",
            "Image builds of compose `build:` services (cached: an earlier build of the same "
            "context hash was tagged).",
            [*svc, "result"],
            registry=registry,
        )
        self._build_seconds = Histogram(
            "berth_image_build_duration_seconds",
            "Duration of an image build (or of the tag of a cached one).",
            svc,
            buckets=ROLLOUT_BUCKETS,
            registry=registry,
        )
        self._checks = Counter(
            "berth_analysis_checks_total",
            "Canary analysis checks judged, by check and result.",
            [*svc, "check", "result"],
            registry=registry,
        )

    # -- services --------------------------------------------------------------------------

    def known_services(self, keys: Iterable[ServiceKey]) -> None:
        """Declare the services Berth manages now: their series exist from this moment.

        Counters and histograms are pre-set to zero. Gauges are not: a zero there is a
        claim (0 ready replicas, last success in 1970), so they appear with the first
        observation. Services known before but absent from `keys` lose all their series,
        so a service removed from desired/ does not linger on the dashboard.
        """
        wanted = set(keys)
        with self._lock:
            gone = self._services - wanted
            for project, service in wanted - self._services:
                for outcome in COUNTED_OUTCOMES:
                    self._rollouts.labels(project=project, service=service, outcome=outcome)
                self._rollout_seconds.labels(project=project, service=service)
                self._drift.labels(project=project, service=service)
                self.images.known(project, service)
                self.tasks.known(project, service)
            self._services = wanted
        for project, service in sorted(gone):
            self.forget_service(project, service)

    def known_checks(self, project: str, service: str, checks: Iterable[str]) -> None:
        """A service's canary analysis: its checks' series exist (at zero) from now."""
        for check in checks:
            for result in ANALYSIS_RESULTS:
                self._checks.labels(project, service, check, result)

    def analysis(self, project: str, service: str, checks: Iterable[tuple[str, str]]) -> None:
        """One measurement of a canary: each check's result."""
        for check, result in checks:
            check_label(result, ANALYSIS_RESULTS, "analysis result")
            self._checks.labels(project, service, check, result).inc()

    def build(self, project: str, service: str, result: str, seconds: float) -> None:
        """One image build ended: built, cached or failed."""
        check_label(result, BUILD_RESULTS, "build result")
        self._builds.labels(project, service, result).inc()
        self._build_seconds.labels(project, service).observe(seconds)

    def digest_drift(self, project: str, service: str, moved: bool) -> None:
        self.images.drift(project, service, moved)

    def forget_service(self, project: str, service: str) -> None:
        """Remove every series of one service (it left desired/ and the compose file)."""
        with self._lock:
            self._services.discard((project, service))
            tags = self._info_labels.pop((project, service), None)
            if tags is not None:
                self._info.remove(project, service, *tags)
            for outcome in COUNTED_OUTCOMES:
                remove_series(self._rollouts, project, service, outcome)
            for state in REPLICA_STATES:
                remove_series(self._replicas, project, service, state)
            for result in BUILD_RESULTS:
                remove_series(self._builds, project, service, result)
            self.images.forget(project, service)
            self.tasks.forget(project, service)
            for metric in (
                self._rollout_seconds,
                self._drift,
                self._last_success,
                self._build_seconds,
            ):
                remove_series(metric, project, service)

    def known_notifications(self) -> None:
        """Notifications are configured: every (kind, result) series exists from now, so
        an alert on their increase sees the first failure."""
        for kind in NOTIFY_KINDS:
            for result in NOTIFY_RESULTS:
                self._notifications.labels(kind=kind, result=result)

    # -- events ----------------------------------------------------------------------------

    def notification(self, kind: str, result: str) -> None:
        """One notice was delivered (to every target), failed, or dropped (queue full)."""
        check_label(kind, NOTIFY_KINDS, "notification kind")
        check_label(result, NOTIFY_RESULTS, "notification result")
        self._notifications.labels(kind=kind, result=result).inc()

    def reconcile(self, result: str, seconds: float) -> None:
        """One reconcile pass ended; `result` is "success" or "error"."""
        check_label(result, RECONCILE_RESULTS, "reconcile result")
        self._reconciles.labels(result=result).inc()
        self._reconcile_seconds.observe(seconds)

    def rollout(
        self, project: str, service: str, outcome: Outcome, seconds: float, *, now: float
    ) -> None:
        """A pass over a service ended (an executor `RolloutResult.outcome`): counted when
        it ended a rollout, ignored otherwise, so the caller can pass every result through."""
        try:
            outcome = Outcome(outcome)
        except ValueError:
            raise ValueError(f"unknown rollout outcome {outcome!r}") from None
        if not outcome.is_rollout:
            return
        with self._lock:
            self._services.add((project, service))
        self._rollouts.labels(project=project, service=service, outcome=outcome).inc()
        self._rollout_seconds.labels(project=project, service=service).observe(seconds)
        if outcome is Outcome.SUCCEEDED:
            self._last_success.labels(project=project, service=service).set(now)

    def replicas(self, project: str, service: str, *, desired: int, ready: int) -> None:
        """Observed replica counts; `ready` counts containers that pass their gate."""
        with self._lock:
            self._services.add((project, service))
        self._replicas.labels(project=project, service=service, state="desired").set(desired)
        self._replicas.labels(project=project, service=service, state="ready").set(ready)

    def info(
        self, project: str, service: str, *, desired_tag: str, running_tag: str | None
    ) -> None:
        """Publish the tags; the previous label set goes, so one series per service exists.

        `running_tag=None` (nothing runs yet) becomes the empty label value, which PromQL
        treats as an absent label and the tag table shows as a blank cell.
        """
        tags = (desired_tag, running_tag or "")
        with self._lock:
            self._services.add((project, service))
            old = self._info_labels.get((project, service))
            if old == tags:
                return
            if old is not None:
                self._info.remove(project, service, *old)
            self._info.labels(project, service, *tags).set(1)
            self._info_labels[(project, service)] = tags

    def desired_valid(self, file: str, ok: bool) -> None:
        """Whether a desired/ file parsed and validated (the last good state stays in force)."""
        self._desired_valid.labels(file=file).set(1 if ok else 0)

    def forget_file(self, file: str) -> None:
        """A desired/ file was deleted: its validity series must not alert forever."""
        remove_series(self._desired_valid, file)

    def drift(self, project: str, service: str) -> None:
        """A reconcile repaired a service that changed behind Berth's back."""
        self._drift.labels(project=project, service=service).inc()

    def proxy_reload(self, result: str) -> None:
        """nginx was reloaded; `result` is "success" or "error"."""
        check_label(result, PROXY_RESULTS, "proxy reload result")
        self._proxy_reloads.labels(result=result).inc()

    def render(self) -> bytes:
        """The text exposition of this registry (serve with `Metrics.content_type`).

        Serve this rather than `make_wsgi_app(registry)`: it leaves out the `*_created`
        series prometheus_client adds to counters and histograms, which are not part of
        the §7 contract and would double the series count for nothing the dashboard uses.
        """
        return generate_latest(WithoutCreated(self.registry))
