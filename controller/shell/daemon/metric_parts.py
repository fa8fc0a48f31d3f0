"""Small parts every metric module of the daemon uses: a label value checked against its
closed set, a series removed if present, and the registry view `Metrics.render` serves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric


class WithoutCreated:
    """A collector view of a registry minus the `*_created` samples (see `render`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield kept


def check_label(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def remove_series(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    """Remove a child if it exists; prometheus_client raises KeyError for a missing one."""
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
