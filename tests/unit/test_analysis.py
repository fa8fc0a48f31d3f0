"""Judging a canary on nginx's counters (core/analysis.py), pure."""

from __future__ import annotations

import math
from typing import Any

import pytest

from controller.core.analysis import (
    Traffic,
    measure,
    quantile,
    success_rate,
    traffic_of,
)
from controller.core.model import AnalysisSpec, QuerySpec

INF = math.inf
SPEC = AnalysisSpec(min_requests=20, success_rate=95)


def t(buckets: dict[float, int] | None = None, latency_sum: float = 0.0, **classes: int) -> Traffic:
    """Traffic from keyword classes: t(ok=18, bad=2) -> 2xx 18, 5xx 2; others by name."""
    names = {"ok": "2xx", "bad": "5xx", "err": "error", "client": "4xx", "redirect": "3xx"}
    return Traffic({names.get(k, k): v for k, v in classes.items()}, buckets or {}, latency_sum)


# ---- Traffic.since -----------------------------------------------------------------------


def test_since_is_the_difference_of_two_snapshots() -> None:
    base = t({0.1: 8, INF: 11}, 1.5, ok=10, bad=1)
    now = t({0.1: 20, 1.0: 30, INF: 33}, 4.0, ok=30, bad=2, client=1)
    w = now.since(base)
    assert dict(w.classes) == {"2xx": 20, "5xx": 1, "4xx": 1}
    assert dict(w.buckets) == {0.1: 12, 1.0: 30, INF: 22}
    assert w.latency_sum == pytest.approx(2.5)
    assert w.total == 22


def test_since_an_unchanged_snapshot_is_an_empty_window() -> None:
    snap = t({0.1: 5, INF: 5}, 0.2, ok=5)
    w = snap.since(snap)
    assert w.total == 0 and set(w.buckets.values()) == {0}
    assert success_rate(w) is None and quantile(w, 0.99) is None


@pytest.mark.parametrize(
    "now",
    [
        t({INF: 3}, 0.1, ok=3),  # a class went down
        t({INF: 200}, 9.0, ok=200),  # a class of the base is gone (5xx back to nothing)
    ],
)
def test_since_after_a_counter_reset_is_the_new_snapshot(now: Traffic) -> None:
    base = t({INF: 101}, 5.0, ok=100, bad=1)
    w = now.since(base)
    assert w is now
    assert all(v >= 0 for v in w.classes.values())


def test_since_a_reset_seen_only_in_the_histogram_gives_no_negative_window() -> None:
    base = t({0.05: 12, INF: 12}, 0.3, ok=12)  # fast requests before nginx restarted
    now = t({0.05: 2, 0.5: 25, INF: 25}, 0.2, ok=25)  # after: slower, and more of them
    w = now.since(base)
    assert all(v >= 0 for v in w.buckets.values()), dict(w.buckets)
    assert w.latency_sum >= 0


# ---- traffic_of ----------------------------------------------------------------------------


STATS: dict[str, Any] = {
    "requests": {
        "web|r2|2xx": 7,
        "web|r2|5xx": 1,
        "web|r2|error": 2,
        "web|r1|2xx": 100,  # the stable revision
        "api|r2|2xx": 50,  # another upstream
        "web|r22|2xx": 9,  # a revision whose id starts with r2
        "web|r2|weird": 3,  # not a class
        "web|r2|": 4,
        "web|r2": 5,
        "junk": 6,
    },
    "latency": {
        "web|r2|0.1": 6,
        "web|r2|1": 9,
        "web|r2|+Inf": 10,
        "web|r2|abc": 1,  # not a bound
        "web|r1|0.1": 99,
        "api|r2|+Inf": 50,
    },
    "latency_sum": {"web|r2": 0.75, "web|r1": 10.0, "api|r2": 3.0},
}


def test_traffic_of_picks_one_upstream_and_revision() -> None:
    got = traffic_of(STATS, "web", "r2")
    assert dict(got.classes) == {"2xx": 7, "5xx": 1, "error": 2}
    assert dict(got.buckets) == {0.1: 6, 1.0: 9, INF: 10}
    assert got.latency_sum == 0.75
    assert got.total == 10


def test_traffic_of_the_stable_revision() -> None:
    got = traffic_of(STATS, "web", "r1")
    assert dict(got.classes) == {"2xx": 100}
    assert dict(got.buckets) == {0.1: 99}
    assert got.latency_sum == 10.0


@pytest.mark.parametrize(
    "stats",
    [
        {},
        {"requests": None, "latency": None, "latency_sum": None},
        {"requests": {}, "latency": {}, "latency_sum": {}},
        {"requests": {"web|r9|2xx": 1}, "latency_sum": {"web|r2": None}},
    ],
)
def test_traffic_of_nothing_counted(stats: dict[str, Any]) -> None:
    got = traffic_of(stats, "web", "r2")
    assert got == Traffic({}, {}, 0.0) and got.total == 0


def test_traffic_of_skips_non_string_keys() -> None:
    stats: dict[str, Any] = {"requests": {1: 5, "web|r2|2xx": 1}, "latency": {None: 2}}
    assert dict(traffic_of(stats, "web", "r2").classes) == {"2xx": 1}


@pytest.mark.parametrize(
    "stats",
    [
        {"requests": {"web|r2|2xx": "x", "web|r2|5xx": 1}},
        {"requests": {"web|r2|2xx": None, "web|r2|5xx": 1}},
        {"requests": {"web|r2|5xx": 1}, "latency": ["web|r2|0.1"]},
        {"requests": {"web|r2|5xx": 1}, "latency_sum": ["web|r2"]},
    ],
)
def test_traffic_of_skips_malformed_values(stats: dict[str, Any]) -> None:
    assert dict(traffic_of(stats, "web", "r2").classes) == {"5xx": 1}


# ---- success_rate ---------------------------------------------------------------------------


def test_success_rate_counts_5xx_and_errors_as_bad() -> None:
    assert success_rate(t(ok=8, bad=1, err=1)) == 80.0
    assert success_rate(t(ok=5, client=3, redirect=2)) == 100.0  # 4xx is the client's fault
    assert success_rate(t(bad=4)) == 0.0


def test_success_rate_without_requests_is_none() -> None:
    assert success_rate(Traffic()) is None
    assert success_rate(t(ok=0, bad=0)) is None


# ---- quantile --------------------------------------------------------------------------------


HIST = {0.1: 50, 0.5: 90, 1.0: 100, INF: 100}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1),  # exactly the first bucket's count: its upper bound
        (0.25, 0.05),  # half-way through the first bucket, whose lower bound is 0
        (0.7, 0.3),  # 0.1 + (0.5 - 0.1) * (70 - 50) / (90 - 50)
        (0.99, 0.95),  # 0.5 + (1.0 - 0.5) * (99 - 90) / (100 - 90)
        (1.0, 1.0),
    ],
)
def test_quantile_interpolates_inside_the_bucket(q: float, expected: float) -> None:
    assert quantile(t(HIST), q) == pytest.approx(expected)


def test_quantile_in_the_first_small_bucket() -> None:
    assert quantile(t({0.005: 100, INF: 100}), 0.99) == pytest.approx(0.00495)


def test_quantile_beyond_the_largest_finite_bucket_is_its_bound() -> None:
    assert quantile(t({0.1: 0, 1.0: 0, INF: 10}), 0.99) == 1.0
    assert quantile(t({0.1: 1, 1.0: 2, INF: 10}), 0.5) == 1.0
    assert quantile(t({INF: 5}), 0.99) == 0.0  # only +Inf: the lower bound is 0


@pytest.mark.parametrize("buckets", [{}, {0.1: 0, INF: 0}, {0.1: 3}])
def test_quantile_without_timed_requests_is_none(buckets: dict[float, int]) -> None:
    assert quantile(t(buckets), 0.99) is None


# ---- measure -----------------------------------------------------------------------------------


def test_too_few_requests_is_inconclusive() -> None:
    m = measure(SPEC, t(ok=19), t(ok=1000))
    assert m.result == "inconclusive"
    [c] = m.checks
    assert (c.name, c.result) == ("min_requests", "inconclusive")
    assert "19 request(s)" in c.detail and "20 needed" in c.detail
    assert "min_requests" in m.reason


def test_an_empty_window_is_inconclusive() -> None:
    assert measure(SPEC, Traffic()).result == "inconclusive"


def test_success_rate_passes_at_the_bound() -> None:
    m = measure(SPEC, t(ok=19, bad=1))
    assert m.result == "pass"
    assert [(c.name, c.result) for c in m.checks] == [("success_rate", "pass")]
    assert "95.00%" in m.checks[0].detail


def test_success_rate_fail_names_the_measured_rate_and_counts() -> None:
    m = measure(SPEC, t(ok=16, bad=3, err=1))
    assert m.result == "fail"
    [c] = m.checks
    assert (c.name, c.result) == ("success_rate", "fail")
    assert "80.00%" in c.detail and "4 of 20 failed" in c.detail and "95%" in c.detail
    assert m.reason == f"success_rate: {c.detail}"


def test_no_success_rate_check_when_not_asked() -> None:
    m = measure(AnalysisSpec(min_requests=20, success_rate=None), t(bad=20))
    assert m.result == "pass" and m.checks == ()


P99_FAST = {0.1: 20, 0.5: 20, INF: 20}  # p99 0.099 s
P99_SLOW = {0.1: 10, 1.0: 20, INF: 20}  # p99 0.1 + 0.9 * 9.8 / 10 = 0.982 s
LATENCY = AnalysisSpec(min_requests=20, success_rate=None, max_latency_p99=0.5)


def test_max_latency_p99_pass() -> None:
    m = measure(LATENCY, t(P99_FAST, ok=20))
    assert m.result == "pass"
    assert [(c.name, c.result) for c in m.checks] == [("max_latency_p99", "pass")]


def test_max_latency_p99_fail() -> None:
    m = measure(LATENCY, t(P99_SLOW, ok=20))
    assert m.result == "fail"
    [c] = m.checks
    assert (c.name, c.result) == ("max_latency_p99", "fail")
    assert "p99 982ms" in c.detail and "500ms" in c.detail


def test_max_latency_p99_is_skipped_without_timings() -> None:
    assert measure(LATENCY, t(ok=20)).checks == ()


DROP = AnalysisSpec(min_requests=20, success_rate=None, max_success_rate_drop=2)


def test_success_rate_drop_against_stable() -> None:
    m = measure(DROP, t(ok=18, bad=2), t(ok=40))
    assert m.result == "fail"
    [c] = m.checks
    assert (c.name, c.result) == ("max_success_rate_drop", "fail")
    assert "90.00%" in c.detail and "100.00%" in c.detail
    m = measure(DROP, t(ok=18, bad=2), t(ok=37, bad=3))  # stable 92.5 %: 2.5 points
    assert [(c.name, c.result) for c in m.checks] == [("max_success_rate_drop", "fail")]
    ok = measure(DROP, t(ok=18, bad=2), t(ok=91, bad=9))  # stable 91 %: 1 point
    assert ok.result == "pass"
    assert [(c.name, c.result) for c in ok.checks] == [("max_success_rate_drop", "pass")]


@pytest.mark.parametrize("stable", [None, Traffic(), t(ok=19)])
def test_no_comparison_without_enough_stable_traffic(stable: Traffic | None) -> None:
    spec = AnalysisSpec(
        min_requests=20, success_rate=None, max_success_rate_drop=0, max_latency_ratio=1.0
    )
    m = measure(spec, t(P99_SLOW, ok=10, bad=10), stable)
    assert m.result == "pass" and m.checks == ()


RATIO = AnalysisSpec(min_requests=20, success_rate=None, max_latency_ratio=2.0)


def test_latency_ratio_against_stable() -> None:
    m = measure(RATIO, t(P99_SLOW, ok=20), t(P99_FAST, ok=20))  # 0.982 / 0.099
    assert m.result == "fail"
    [c] = m.checks
    assert (c.name, c.result) == ("max_latency_ratio", "fail")
    assert "9.92x" in c.detail
    m = measure(RATIO, t(P99_SLOW, ok=20), t({0.5: 10, 1.0: 20, INF: 20}, ok=20))
    assert [(c.name, c.result) for c in m.checks] == [("max_latency_ratio", "pass")]


def test_latency_ratio_needs_a_stable_p99() -> None:
    m = measure(RATIO, t(P99_SLOW, ok=20), t(ok=20))  # stable untimed
    assert m.checks == ()


QUERIES = AnalysisSpec(
    min_requests=20,
    success_rate=None,
    queries=(
        QuerySpec("errors", max=0.01),
        QuerySpec("up", min=1),
        QuerySpec("band", max=5, min=1),
    ),
)


def test_queries_are_checked_by_index() -> None:
    m = measure(QUERIES, t(ok=20), None, {0: 0.001, 1: 1.0, 2: 3.0})
    assert m.result == "pass"
    assert [(c.name, c.result) for c in m.checks] == [
        ("query[0]", "pass"),
        ("query[1]", "pass"),
        ("query[2]", "pass"),
    ]
    assert m.checks[2].detail == "band = 3, <= 5 and >= 1"


@pytest.mark.parametrize(
    ("values", "failed"),
    [
        ({0: 0.02, 1: 1.0, 2: 3.0}, ["query[0]"]),  # above max
        ({0: 0.0, 1: 0.5, 2: 3.0}, ["query[1]"]),  # below min
        ({0: 0.0, 1: 1.0, 2: 6.0}, ["query[2]"]),  # above the band
        ({0: 0.0, 1: 1.0, 2: 0.0}, ["query[2]"]),  # below the band
        ({0: 1.0, 1: 0.0, 2: 9.0}, ["query[0]", "query[1]", "query[2]"]),
    ],
)
def test_a_query_out_of_bounds_fails(values: dict[int, float | None], failed: list[str]) -> None:
    m = measure(QUERIES, t(ok=20), None, values)
    assert m.result == "fail"
    assert [c.name for c in m.checks if c.result == "fail"] == failed
    assert m.reason.count("query[") == len(failed)  # the reason names the failed ones only


@pytest.mark.parametrize("values", [None, {}, {1: 1.0}, {0: None, 1: 1.0, 2: None}])
def test_a_query_without_value_is_inconclusive_but_not_a_failure(
    values: dict[int, float | None] | None,
) -> None:
    m = measure(QUERIES, t(ok=20), None, values)
    assert m.result != "fail"
    missing = [c for c in m.checks if c.result == "inconclusive"]
    assert missing and all(c.name.startswith("query[") for c in missing)
    assert "no value for 'errors'" in m.checks[0].detail


def test_a_missing_query_does_not_hide_another_failure() -> None:
    m = measure(QUERIES, t(ok=10, bad=10), None, {0: 0.5})
    assert m.result == "fail"
    assert [(c.name, c.result) for c in m.checks] == [
        ("query[0]", "fail"),
        ("query[1]", "inconclusive"),
        ("query[2]", "inconclusive"),
    ]


def test_all_checks_together() -> None:
    spec = AnalysisSpec(
        min_requests=20,
        success_rate=95,
        max_latency_p99=0.5,
        max_success_rate_drop=1,
        max_latency_ratio=2.0,
        queries=(QuerySpec("q", max=1),),
    )
    m = measure(spec, t(P99_SLOW, ok=20), t(P99_FAST, ok=20), {0: 0.5})
    assert [(c.name, c.result) for c in m.checks] == [
        ("success_rate", "pass"),
        ("max_latency_p99", "fail"),
        ("max_success_rate_drop", "pass"),
        ("max_latency_ratio", "fail"),
        ("query[0]", "pass"),
    ]
    assert m.result == "fail"
    assert m.reason.startswith("max_latency_p99: ") and "; max_latency_ratio: " in m.reason
