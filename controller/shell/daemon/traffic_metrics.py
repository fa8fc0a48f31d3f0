"""Traffic metrics read from nginx at scrape time (DESIGN §7, added for the traffic layer).

nginx counts each upstream's requests per revision and status class, and their upstream
response times in histogram buckets (berth_balancer.lua). This collector reads those
counters through each stack's control socket when Prometheus scrapes, and reports where
each canary stands from the state store. nginx's counters start at zero when nginx starts
(Prometheus' rate() handles the reset like any counter reset).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric

from controller.adapters.nginx_control import NginxControl
from controller.core.analysis import traffic_of
from controller.core.config import Config
from controller.core.peers import SOCKET_FILE, is_dynamic
from controller.errors import ProxyError
from controller.ports import StateStore

StatsReader = Callable[[str], Mapping[str, Any] | None]


def read_stats(upstreams_file: str) -> Mapping[str, Any] | None:
    """nginx's counters for a stack whose upstreams file is in dynamic form, else None."""
    try:
        with open(upstreams_file, encoding="utf-8") as f:
            if not is_dynamic(f.read()):
                return None
    except OSError:
        return None
    try:
        return NginxControl(os.path.join(os.path.dirname(upstreams_file), SOCKET_FILE)).stats()
    except ProxyError:
        return None  # nginx down: no counters this scrape


CODES = ("2xx", "3xx", "4xx", "5xx", "error")  # DESIGN §7's `code` values


class TrafficCollector:
    def __init__(
        self,
        config: Callable[[], Config | None],
        store: Callable[[], StateStore],
        *,
        stats: StatsReader = read_stats,
    ) -> None:
        self._config = config
        self._store = store
        self._stats = stats

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: the registry must not call collect early

    def collect(self) -> Iterator[Metric]:
        svc = ["project", "service", "revision"]
        requests = CounterMetricFamily(
            "berth_upstream_requests_total",
            "Requests nginx sent to a revision of a service, by response class "
            "(error: no response from the container).",
            labels=[*svc, "code"],
        )
        seconds = HistogramMetricFamily(
            "berth_upstream_response_seconds",
            "Upstream response time of a revision of a service, as nginx measured it.",
            labels=svc,
        )
        weight = GaugeMetricFamily(
            "berth_canary_weight",
            "% of requests a canary's new revision gets now (0: no canary in progress).",
            labels=["project", "service"],
        )
        cfg = self._config()
        if cfg is not None:
            self._traffic(cfg, requests, seconds)
            self._weights(cfg, weight)
        yield requests
        yield seconds
        yield weight

    def _traffic(
        self, cfg: Config, requests: CounterMetricFamily, seconds: HistogramMetricFamily
    ) -> None:
        canaries = {(c.project, c.service): c.revision for c in self._store().canaries()}
        for stack in cfg.stacks.values():
            if stack.proxy is None:
                continue
            stats = self._stats(stack.proxy.upstreams_file)
            if stats is None:
                continue
            names = {
                s.berth.upstream.name: s.name
                for s in stack.services.values()
                if s.berth.upstream is not None
            }
            revisions: set[tuple[str, str]] = set()
            for key in stats.get("requests") or {}:
                parts = str(key).split("|")
                if len(parts) == 3 and parts[0] in names:
                    revisions.add((parts[0], parts[1]))
            for up, service in names.items():  # a canary's series exist before its traffic
                if (rev := canaries.get((stack.project, service))) is not None:
                    revisions.add((up, rev))
            for up, rev in sorted(revisions):
                t = traffic_of(stats, up, rev)
                labels = [stack.project, names[up], rev]
                for code in CODES:
                    requests.add_metric([*labels, code], float(t.classes.get(code, 0)))
                buckets = [
                    ("+Inf" if math.isinf(le) else f"{le:g}", float(n))
                    for le, n in sorted(t.buckets.items())
                ] or [("+Inf", 0.0)]
                seconds.add_metric(labels, buckets, t.latency_sum)

    def _weights(self, cfg: Config, weight: GaugeMetricFamily) -> None:
        current = {(c.project, c.service): c.weight for c in self._store().canaries()}
        for t in cfg.targets:
            if t.spec.berth.canary is not None or (t.project, t.service) in current:
                now = current.get((t.project, t.service), 0)
                weight.add_metric([t.project, t.service], float(now))
