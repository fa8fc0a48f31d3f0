"""Metrics of images from registries: pulls, their duration, and digest drift.

Kept apart from metrics.py (the §7 core set) along the seam of issue 13's registry work;
`Metrics` owns one of these on the same CollectorRegistry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.shell.daemon.metric_parts import check_label, remove_series

PULL_RESULTS = ("pulled", "failed")
PULL_PHASES = {"pulled": "pulled", "pull-failed": "failed"}
PULL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
IMAGE_METRIC_NAMES = frozenset(
    {
        "berth_image_pulls_total",
        "berth_image_pull_duration_seconds",
        "berth_image_digest_drift",
        "berth_image_updates_total",
        "berth_image_update_scans_total",
    }
)
UPDATE_RESULTS = ("committed", "proposed", "error")
SCAN_RESULTS = ("ok", "error")
_SVC = ["project", "service"]


class ImageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._pulls = Counter(
            "berth_image_pulls_total",
            "Image pulls of rollouts, by result (failed: credentials, unknown tag, network).",
            [*_SVC, "result"],
            registry=registry,
        )
        self._pull_seconds = Histogram(
            "berth_image_pull_duration_seconds",
            "Duration of an image pull of a rollout.",
            _SVC,
            buckets=PULL_BUCKETS,
            registry=registry,
        )
        self._drift = Gauge(
            "berth_image_digest_drift",
            "1 when a pinned service's tag now points at another digest than the one it runs "
            "(x-berth.track: pinned; reported, not rolled out).",
            _SVC,
            registry=registry,
        )

        self._updates = Counter(
            "berth_image_updates_total",
            "Tags written into desired/ by image-update automation (x-berth.update): committed "
            "(to the tracked branch), proposed (on a branch), error (could not write or push).",
            [*_SVC, "result"],
            registry=registry,
        )
        self._scans = Counter(
            "berth_image_update_scans_total",
            "Registry tag-list scans of image-update automation, by result.",
            [*_SVC, "result"],
            registry=registry,
        )

    def known(self, project: str, service: str) -> None:
        """Counters at zero from now; the duration histogram appears with the first pull
        (as the build one does), so its quantile panel shows no NaN for services that
        never pull."""
        for result in PULL_RESULTS:
            self._pulls.labels(project, service, result)

    def known_update(self, project: str, service: str) -> None:
        """A service with x-berth.update: its automation series exist (at zero) from now."""
        for result in UPDATE_RESULTS:
            self._updates.labels(project, service, result)
        for result in SCAN_RESULTS:
            self._scans.labels(project, service, result)

    def update(self, project: str, service: str, result: str) -> None:
        check_label(result, UPDATE_RESULTS, "update result")
        self._updates.labels(project, service, result).inc()

    def scan(self, project: str, service: str, ok: bool) -> None:
        self._scans.labels(project, service, "ok" if ok else "error").inc()

    def pull(self, project: str, service: str, result: str, seconds: float) -> None:
        check_label(result, PULL_RESULTS, "pull result")
        self._pulls.labels(project, service, result).inc()
        self._pull_seconds.labels(project, service).observe(seconds)

    def drift(self, project: str, service: str, moved: bool) -> None:
        self._drift.labels(project, service).set(1 if moved else 0)

    def forget(self, project: str, service: str) -> None:
        for labels in [(project, service, r) for r in PULL_RESULTS]:
            remove_series(self._pulls, *labels)
        for r in UPDATE_RESULTS:
            remove_series(self._updates, project, service, r)
        for r in SCAN_RESULTS:
            remove_series(self._scans, project, service, r)
        remove_series(self._pull_seconds, project, service)
        remove_series(self._drift, project, service)
