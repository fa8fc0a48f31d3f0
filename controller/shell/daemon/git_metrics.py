"""The metrics of the remote git source (`berth run --git-url`); names are a contract like
DESIGN §7's (metrics/alerts.yml and the dashboard use them; metrics.METRIC_NAMES lists
them). Registered only when a git source is configured: without one, a last-sync time
would be a claim about nothing, and the staleness alert would fire on it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from controller.core.gitsync import SyncResult
from controller.core.webhook import Verdict

SYNC_RESULTS = tuple(r.value for r in SyncResult)
WEBHOOK_RESULTS = tuple(v.value for v in Verdict)


class GitMetrics:
    def __init__(self, registry: CollectorRegistry, *, interval: float, webhook: bool) -> None:
        self._syncs = Counter(
            "berth_git_sync_total",
            "Syncs of the remote git source by result (rejected: refused by policy).",
            ["result"],
            registry=registry,
        )
        self._last = Gauge(
            "berth_git_last_sync_timestamp_seconds",
            "Unix time of the last successful sync (until the first one: the daemon's start).",
            registry=registry,
        )
        self._failures = Gauge(
            "berth_git_sync_consecutive_failures",
            "Sync attempts that failed or were refused since the last success.",
            registry=registry,
        )
        interval_gauge = Gauge(
            "berth_git_sync_interval_seconds",
            "The configured poll interval (--git-interval), for the staleness alert.",
            registry=registry,
        )
        interval_gauge.set(interval)
        for result in SYNC_RESULTS:
            self._syncs.labels(result=result)
        self._hooks: Counter | None = None
        if webhook:
            self._hooks = Counter(
                "berth_webhooks_total",
                "Deliveries to POST /hooks/git by result.",
                ["result"],
                registry=registry,
            )
            for verdict in WEBHOOK_RESULTS:
                self._hooks.labels(result=verdict)

    def started(self, now: float) -> None:
        """No sync succeeded yet in this process: the staleness clock starts now."""
        self._last.set(now)

    def sync(self, result: SyncResult, *, at: float, failures: int) -> None:
        self._syncs.labels(result=result.value).inc()
        if result is SyncResult.SUCCESS:
            self._last.set(at)
        self._failures.set(failures)

    def webhook(self, verdict: Verdict) -> None:
        if self._hooks is not None:
            self._hooks.labels(result=verdict.value).inc()
