"""Judging a canary on its own traffic, as nginx counted it (pure).

nginx (berth_balancer.lua) counts, per upstream and revision, responses by status class and
upstream response times in histogram buckets, since nginx started. A measurement is the
difference of two such snapshots: a window holding at least `min_requests` requests of the
new revision. Each check of the analysis passes or fails on that window; a window with too
few requests is inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.core.model import AnalysisSpec

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "error")
BAD = ("5xx", "error")  # no answer from the peer counts against it too


@dataclass(frozen=True)
class Traffic:
    """Counters of one revision of one upstream (cumulative, or a window's difference)."""

    classes: Mapping[str, int] = field(default_factory=dict)
    buckets: Mapping[float, int] = field(default_factory=dict)  # le (s) -> count <= le
    latency_sum: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.classes.values())

    def restarted_since(self, base: Traffic) -> bool:
        """Counters that went down: nginx started afresh (its shared memory is new)."""
        return (
            any(self.classes.get(k, 0) < v for k, v in base.classes.items())
            or any(self.buckets.get(le, 0) < n for le, n in base.buckets.items())
            or self.latency_sum < base.latency_sum
        )

    def since(self, base: Traffic) -> Traffic:
        """The window from `base` to this snapshot; after a restart, this snapshot."""
        if self.restarted_since(base):
            return self
        return Traffic(
            {k: v - base.classes.get(k, 0) for k, v in self.classes.items()},
            {le: n - base.buckets.get(le, 0) for le, n in self.buckets.items()},
            self.latency_sum - base.latency_sum,
        )


def traffic_of(stats: Mapping[str, Any], upstream: str, revision: str) -> Traffic:
    """One revision's counters out of nginx's `/berth/stats` answer."""
    prefix = f"{upstream}|{revision}|"
    classes: dict[str, int] = {}
    for key, n in _section(stats, "requests").items():
        count = _count(n)
        if key.startswith(prefix) and key[len(prefix) :] in CLASSES and count is not None:
            classes[key[len(prefix) :]] = count
    buckets: dict[float, int] = {}
    for key, n in _section(stats, "latency").items():
        count = _count(n)
        if not key.startswith(prefix) or count is None:
            continue
        le = key[len(prefix) :]
        try:
            buckets[math.inf if le == "+Inf" else float(le)] = count
        except ValueError:
            continue
    total = _section(stats, "latency_sum").get(f"{upstream}|{revision}", 0.0)
    total_sum = float(total) if isinstance(total, int | float) and math.isfinite(total) else 0.0
    return Traffic(classes, buckets, total_sum)


def _section(stats: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One section of nginx's answer, or {} when it is not a map (a bad answer is no data)."""
    value = stats.get(name) if isinstance(stats, Mapping) else None
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) and value >= 0 else None


def success_rate(t: Traffic) -> float | None:
    """% of requests answered without a 5xx and without an error; None without requests."""
    if t.total <= 0:
        return None
    bad = sum(t.classes.get(c, 0) for c in BAD)
    return 100.0 * (t.total - bad) / t.total


def quantile(t: Traffic, q: float) -> float | None:
    """The q-quantile of the response time, interpolated inside its bucket as Prometheus'
    histogram_quantile does; None without timed requests."""
    bounds = sorted(t.buckets)
    count = t.buckets.get(math.inf, 0)
    if not bounds or count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0
    for le in bounds:
        n = t.buckets[le]
        if n >= rank:
            if math.isinf(le):
                return lower  # beyond the largest finite bucket: its bound is all we know
            inside = n - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, n
    return lower


@dataclass(frozen=True)
class Check:
    name: str  # success_rate | max_latency_p99 | ... | query:N
    result: str  # pass | fail | inconclusive
    detail: str


@dataclass(frozen=True)
class Measurement:
    result: str  # pass | fail | inconclusive
    checks: tuple[Check, ...]

    @property
    def reason(self) -> str:
        """The failed checks with their measured values (or why it was inconclusive)."""
        picked = [c for c in self.checks if c.result == self.result] or list(self.checks)
        return "; ".join(f"{c.name}: {c.detail}" for c in picked)


def measure(
    spec: AnalysisSpec,
    new: Traffic,
    stable: Traffic | None = None,
    queries: Mapping[int, float | None] | None = None,
) -> Measurement:
    """Judge one window of the new revision's traffic (and the stable one's, beside it)."""
    if new.total < spec.min_requests:
        why = f"{new.total} request(s) in the window, {spec.min_requests} needed"
        return Measurement("inconclusive", (Check("min_requests", "inconclusive", why),))
    checks: list[Check] = []
    rate = success_rate(new)
    assert rate is not None
    bad = new.total - round(new.total * rate / 100)
    if spec.success_rate is not None:
        ok = rate >= spec.success_rate
        detail = f"{rate:.2f}% ({bad} of {new.total} failed), at least {spec.success_rate:g}%"
        checks.append(Check("success_rate", "pass" if ok else "fail", detail))
    p99 = quantile(new, 0.99)
    if spec.max_latency_p99 is not None and p99 is not None:
        ok = p99 <= spec.max_latency_p99
        detail = f"p99 {p99 * 1000:.0f}ms, at most {spec.max_latency_p99 * 1000:.0f}ms"
        checks.append(Check("max_latency_p99", "pass" if ok else "fail", detail))
    checks += _against_stable(spec, rate, p99, stable)
    for i, q in enumerate(spec.queries):
        value = (queries or {}).get(i)
        name = f"query[{i}]"
        if value is None:
            checks.append(Check(name, "inconclusive", f"no value for {q.query!r}"))
            continue
        ok = (q.max is None or value <= q.max) and (q.min is None or value >= q.min)
        bound = " and ".join(
            b
            for b in (
                f"<= {q.max:g}" if q.max is not None else "",
                f">= {q.min:g}" if q.min is not None else "",
            )
            if b
        )
        checks.append(Check(name, "pass" if ok else "fail", f"{q.query} = {value:g}, {bound}"))
    if any(c.result == "fail" for c in checks):
        return Measurement("fail", tuple(checks))
    return Measurement("pass", tuple(checks))


def _against_stable(
    spec: AnalysisSpec, rate: float, p99: float | None, stable: Traffic | None
) -> list[Check]:
    """The new revision beside the stable one in the same window (when it had traffic)."""
    out: list[Check] = []
    if stable is None or stable.total < spec.min_requests:
        return out
    stable_rate = success_rate(stable)
    if spec.max_success_rate_drop is not None and stable_rate is not None:
        drop = stable_rate - rate
        ok = drop <= spec.max_success_rate_drop
        detail = (
            f"{rate:.2f}% vs stable {stable_rate:.2f}%, "
            f"at most {spec.max_success_rate_drop:g} points lower"
        )
        out.append(Check("max_success_rate_drop", "pass" if ok else "fail", detail))
    stable_p99 = quantile(stable, 0.99)
    if spec.max_latency_ratio is not None and p99 is not None and stable_p99:
        ratio = p99 / stable_p99
        ok = ratio <= spec.max_latency_ratio
        detail = f"p99 {ratio:.2f}x stable's, at most {spec.max_latency_ratio:g}x"
        out.append(Check("max_latency_ratio", "pass" if ok else "fail", detail))
    return out


def check_names(spec: AnalysisSpec) -> list[str]:
    """The checks `measure` can report for this analysis (their metric series exist early)."""
    names = ["min_requests"]
    for name in ("success_rate", "max_latency_p99", "max_success_rate_drop", "max_latency_ratio"):
        if getattr(spec, name) is not None:
            names.append(name)
    names += [f"query[{i}]" for i in range(len(spec.queries))]
    return names
