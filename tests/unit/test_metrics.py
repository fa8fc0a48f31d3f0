"""The metric contract of DESIGN §7, checked on the exposition text Prometheus would scrape.

Parsing `render()` (rather than peeking at prometheus_client objects) is the point: the
dashboard and the alert rules see only the text, so names, types and labels are asserted
exactly as they appear there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from controller.adapters.sqlite_store import SqliteStateStore
from controller.core.config import Config
from controller.core.gitsync import SyncResult
from controller.core.model import AnalysisSpec, CanarySpec, ProxySpec, StackSpec, UpstreamSpec
from controller.ports import CanaryRecord
from controller.shell.daemon.git_metrics import GitMetrics
from controller.shell.daemon.metrics import METRIC_NAMES, Metrics
from controller.shell.daemon.traffic_metrics import TrafficCollector
from controller.shell.rollout.results import Event
from tests.unit import builders

# §7 as a table: exposed sample name -> (family type, label names of the main samples).
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "berth_reconcile_total": ("counter", frozenset({"result"})),
    "berth_reconcile_duration_seconds": ("histogram", frozenset()),
    "berth_rollouts_total": ("counter", frozenset({"project", "service", "outcome"})),
    "berth_rollout_duration_seconds": ("histogram", frozenset({"project", "service"})),
    "berth_service_replicas": ("gauge", frozenset({"project", "service", "state"})),
    "berth_service_info": (
        "gauge",
        frozenset({"project", "service", "desired_tag", "running_tag"}),
    ),
    "berth_desired_valid": ("gauge", frozenset({"file"})),
    "berth_drift_corrections_total": ("counter", frozenset({"project", "service"})),
    "berth_proxy_reloads_total": ("counter", frozenset({"result"})),
    "berth_last_success_timestamp_seconds": ("gauge", frozenset({"project", "service"})),
    "berth_build_info": ("gauge", frozenset({"version"})),
    # the traffic layer: read from nginx at scrape time (traffic_metrics.py), and the
    # canary's analysis
    "berth_upstream_requests_total": (
        "counter",
        frozenset({"project", "service", "revision", "code"}),
    ),
    "berth_upstream_response_seconds": (
        "histogram",
        frozenset({"project", "service", "revision"}),
    ),
    "berth_canary_weight": ("gauge", frozenset({"project", "service"})),
    "berth_image_builds_total": ("counter", frozenset({"project", "service", "result"})),
    "berth_image_build_duration_seconds": ("histogram", frozenset({"project", "service"})),
    # images from registries (issue 13)
    "berth_image_pulls_total": ("counter", frozenset({"project", "service", "result"})),
    "berth_image_pull_duration_seconds": ("histogram", frozenset({"project", "service"})),
    "berth_image_digest_drift": ("gauge", frozenset({"project", "service"})),
    "berth_image_updates_total": ("counter", frozenset({"project", "service", "result"})),
    "berth_image_update_scans_total": ("counter", frozenset({"project", "service", "result"})),
    "berth_analysis_checks_total": (
        "counter",
        frozenset({"project", "service", "check", "result"}),
    ),
    # the remote git source (git_metrics.py, only with `berth run --git-url`)
    "berth_git_sync_total": ("counter", frozenset({"result"})),
    "berth_git_last_sync_timestamp_seconds": ("gauge", frozenset()),
    "berth_git_sync_consecutive_failures": ("gauge", frozenset()),
    "berth_git_sync_interval_seconds": ("gauge", frozenset()),
    "berth_webhooks_total": ("counter", frozenset({"result"})),
    "berth_notifications_total": ("counter", frozenset({"kind", "result"})),
    # release tasks, smoke checks and hooks (task_metrics.py, issue 15)
    "berth_release_tasks_total": ("counter", frozenset({"project", "service", "task", "result"})),
    "berth_release_task_duration_seconds": (
        "histogram",
        frozenset({"project", "service", "task"}),
    ),
    "berth_smoke_checks_total": ("counter", frozenset({"project", "service", "phase", "result"})),
    "berth_smoke_check_duration_seconds": ("histogram", frozenset({"project", "service", "phase"})),
    "berth_hooks_total": ("counter", frozenset({"project", "service", "event", "result"})),
    "berth_hook_duration_seconds": ("histogram", frozenset({"project", "service", "event"})),
}

# nginx's /berth/stats answer, as berth_balancer.lua gives it (pinned against a real nginx
# by tests/integration/test_nginx_lua.py::test_traffic_is_counted_per_revision_and_...)
STATS = {
    "requests": {"api_backend|r1|2xx": 40, "api_backend|r1|5xx": 2, "other|r9|2xx": 5},
    "latency": {"api_backend|r1|0.05": 30, "api_backend|r1|0.5": 42, "api_backend|r1|+Inf": 42},
    "latency_sum": {"api_backend|r1": 1.5},
}


def add_traffic(
    m: Metrics, store: SqliteStateStore, stats: Callable[[str], Any] = lambda path: STATS
) -> None:
    """The scrape-time collector, over a stack whose api is served by `api_backend`."""
    base = builders.target("api", project="shop")
    berth = replace(
        base.spec.berth,
        upstream=UpstreamSpec("api_backend", 8000),
        canary=CanarySpec(steps=(10,), analysis=AnalysisSpec()),
    )
    t = replace(base, spec=replace(base.spec, berth=berth))
    stack = StackSpec(
        "shop", (), {"api": t.spec}, {}, {}, ProxySpec(None, "/srv/up/upstreams.conf")
    )
    cfg = Config({"shop": stack}, {}, (t,), ())
    store.canary_progress(
        CanaryRecord("shop", "api", "r2", "2.0.0", 1, 1, 10, False, updated_at=1.0)
    )
    m.registry.register(TrafficCollector(lambda: cfg, lambda: store, stats=stats))


def _family_name(metric: str) -> str:
    # The parser names a counter family without its `_total` suffix.
    return metric.removesuffix("_total")


def _parse(m: Metrics) -> dict[str, tuple[str, list[Sample]]]:
    return {
        f.name: (f.type, list(f.samples))
        for f in text_string_to_metric_families(m.render().decode())
    }


def _samples(m: Metrics, name: str) -> list[Sample]:
    """Samples exposed under exactly `name` (e.g. `..._bucket`, `..._total`)."""
    out: list[Sample] = []
    for _type, samples in _parse(m).values():
        out.extend(s for s in samples if s.name == name)
    return out


def _value(m: Metrics, name: str, **labels: str) -> float:
    matches = [s.value for s in _samples(m, name) if s.labels == labels]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} samples in\n{m.render().decode()}"
    return matches[0]


def _labelsets(samples: Iterable[Sample]) -> set[tuple[tuple[str, str], ...]]:
    return {tuple(sorted(s.labels.items())) for s in samples}


@pytest.fixture()
def m() -> Metrics:
    return Metrics(CollectorRegistry(), version="9.9.9")


def test_contract_names_match_the_design_table() -> None:
    assert set(CONTRACT) == METRIC_NAMES


def test_every_metric_has_its_type_and_labels(m: Metrics) -> None:
    m.known_services([("shop", "api")])
    m.reconcile("success", 0.01)
    m.rollout("shop", "api", "succeeded", 3.0, now=1_700_000_000.0)
    m.replicas("shop", "api", desired=2, ready=2)
    m.info("shop", "api", desired_tag="1.0.0", running_tag="1.0.0")
    m.desired_valid("desired/shop.yaml", True)
    m.drift("shop", "api")
    m.proxy_reload("success")
    m.analysis("shop", "api", [("success_rate", "pass")])
    m.notification("rolled_back", "sent")
    m.build("shop", "api", "built", 12.0)
    m.images.pull("shop", "api", "pulled", 0.5)
    m.digest_drift("shop", "api", False)
    m.images.known_update("shop", "api")
    for phase, task in (("release-succeeded", "migrate"), ("smoke-passed", "before")):
        m.tasks.feed(Event("shop", "api", phase, "", 0.0, task_seconds=1.5, task=task))
    m.tasks.feed(Event("shop", "api", "hook-ok", "", 0.0, task_seconds=0.1, task="success"))
    add_traffic(m, SqliteStateStore(":memory:"))
    git = GitMetrics(m.registry, interval=60, webhook=True)
    git.sync(SyncResult.SUCCESS, at=1_700_000_000.0, failures=0)
    families = _parse(m)
    for metric, (kind, labels) in CONTRACT.items():
        family = _family_name(metric)
        assert family in families, f"{metric} missing"
        got_kind, samples = families[family]
        assert got_kind == kind, f"{metric}: {got_kind} != {kind}"
        main = [s for s in samples if s.name in (metric, f"{metric}_count", f"{metric}_sum")]
        assert main, f"{metric}: no samples"
        for sample in main:
            assert set(sample.labels) == labels, f"{metric}: {sample.labels}"
    unexpected = {name for name in families if name.startswith("berth_")} - {
        _family_name(n) for n in CONTRACT
    }
    assert not unexpected


def test_uses_the_given_registry_not_the_global_one() -> None:
    from prometheus_client import REGISTRY

    Metrics(CollectorRegistry())
    Metrics(CollectorRegistry())  # a second instance must not clash on names
    assert REGISTRY.get_sample_value("berth_build_info", {"version": "0.1.0"}) is None


def test_controller_wide_series_exist_at_zero_before_any_event(m: Metrics) -> None:
    for result in ("success", "error"):
        assert _value(m, "berth_reconcile_total", result=result) == 0
        assert _value(m, "berth_proxy_reloads_total", result=result) == 0
    assert _value(m, "berth_build_info", version="9.9.9") == 1
    assert _value(m, "berth_reconcile_duration_seconds_count") == 0


def test_known_services_pre_sets_counters_and_histograms(m: Metrics) -> None:
    m.known_services([("shop", "api"), ("shop", "worker")])
    for service in ("api", "worker"):
        for outcome in ("succeeded", "rolled_back", "failed"):
            labels = {"project": "shop", "service": service, "outcome": outcome}
            assert _value(m, "berth_rollouts_total", **labels) == 0
        svc = {"project": "shop", "service": service}
        assert _value(m, "berth_drift_corrections_total", **svc) == 0
        assert _value(m, "berth_rollout_duration_seconds_count", **svc) == 0
    # Gauges carry claims (0 ready, success in 1970): they wait for a real observation.
    assert _samples(m, "berth_service_replicas") == []
    assert _samples(m, "berth_last_success_timestamp_seconds") == []


def test_known_services_drops_services_that_left(m: Metrics) -> None:
    m.known_services([("shop", "api"), ("shop", "old")])
    m.replicas("shop", "old", desired=1, ready=1)
    m.info("shop", "old", desired_tag="1", running_tag="1")
    m.rollout("shop", "old", "succeeded", 1.0, now=10.0)
    m.known_services([("shop", "api")])
    text = m.render().decode()
    assert 'service="old"' not in text
    assert 'service="api"' in text


@pytest.mark.parametrize("outcome", ["succeeded", "rolled_back", "failed"])
def test_counted_outcomes(m: Metrics, outcome: str) -> None:
    m.rollout("shop", "api", outcome, 12.5, now=1000.0)
    svc = {"project": "shop", "service": "api"}
    assert _value(m, "berth_rollouts_total", **svc, outcome=outcome) == 1
    assert _value(m, "berth_rollout_duration_seconds_count", **svc) == 1
    assert _value(m, "berth_rollout_duration_seconds_sum", **svc) == 12.5
    last = _samples(m, "berth_last_success_timestamp_seconds")
    assert [s.value for s in last] == ([1000.0] if outcome == "succeeded" else [])


@pytest.mark.parametrize("outcome", ["unchanged", "quarantined"])
def test_passes_that_did_nothing_are_not_rollouts(m: Metrics, outcome: str) -> None:
    m.rollout("shop", "api", outcome, 0.001, now=1000.0)
    assert _samples(m, "berth_rollouts_total") == []
    assert _samples(m, "berth_rollout_duration_seconds_count") == []


def test_unknown_values_are_refused(m: Metrics) -> None:
    with pytest.raises(ValueError, match="rollout outcome"):
        m.rollout("shop", "api", "exploded", 1.0, now=0.0)
    with pytest.raises(ValueError, match="reconcile result"):
        m.reconcile("ok", 1.0)
    with pytest.raises(ValueError, match="proxy reload result"):
        m.proxy_reload("fine")


def test_histogram_buckets_cover_the_documented_ranges(m: Metrics) -> None:
    m.rollout("shop", "api", "succeeded", 1.0, now=0.0)
    rollout_le = {s.labels["le"] for s in _samples(m, "berth_rollout_duration_seconds_bucket")}
    reconcile_le = {s.labels["le"] for s in _samples(m, "berth_reconcile_duration_seconds_bucket")}
    assert {"0.1", "600.0", "+Inf"} <= rollout_le
    assert min(float(le) for le in rollout_le) == 0.1
    assert {"0.001", "60.0", "+Inf"} <= reconcile_le
    assert min(float(le) for le in reconcile_le) == 0.001


def test_reconcile_and_proxy_counts(m: Metrics) -> None:
    m.reconcile("success", 0.002)
    m.reconcile("success", 0.004)
    m.reconcile("error", 2.0)
    m.proxy_reload("error")
    assert _value(m, "berth_reconcile_total", result="success") == 2
    assert _value(m, "berth_reconcile_total", result="error") == 1
    assert _value(m, "berth_reconcile_duration_seconds_count") == 3
    assert _value(m, "berth_reconcile_duration_seconds_bucket", le="0.005") == 2
    assert _value(m, "berth_proxy_reloads_total", result="error") == 1
    assert _value(m, "berth_proxy_reloads_total", result="success") == 0


def test_replicas_and_drift(m: Metrics) -> None:
    m.replicas("shop", "api", desired=3, ready=1)
    m.replicas("shop", "api", desired=3, ready=3)
    m.drift("shop", "api")
    m.drift("shop", "api")
    svc = {"project": "shop", "service": "api"}
    assert _value(m, "berth_service_replicas", **svc, state="desired") == 3
    assert _value(m, "berth_service_replicas", **svc, state="ready") == 3
    assert _value(m, "berth_drift_corrections_total", **svc) == 2


def test_info_keeps_exactly_one_series_per_service(m: Metrics) -> None:
    m.info("shop", "api", desired_tag="1.1.0", running_tag=None)
    m.info("shop", "api", desired_tag="1.1.0", running_tag="1.0.0")
    m.info("shop", "api", desired_tag="1.1.0", running_tag="1.1.0")
    m.info("shop", "worker", desired_tag="2.0.0", running_tag="2.0.0")
    info = _samples(m, "berth_service_info")
    assert _labelsets(info) == {
        (("desired_tag", "1.1.0"), ("project", "shop"), ("running_tag", "1.1.0"),
         ("service", "api")),
        (("desired_tag", "2.0.0"), ("project", "shop"), ("running_tag", "2.0.0"),
         ("service", "worker")),
    }  # fmt: skip
    assert all(s.value == 1 for s in info)


def test_info_without_running_container_has_empty_running_tag(m: Metrics) -> None:
    m.info("shop", "api", desired_tag="1.1.0", running_tag=None)
    assert _value(
        m, "berth_service_info", project="shop", service="api", desired_tag="1.1.0",
        running_tag="",
    ) == 1  # fmt: skip


def test_desired_valid_and_forget_file(m: Metrics) -> None:
    m.desired_valid("desired/a.yaml", True)
    m.desired_valid("desired/b.yaml", True)
    m.desired_valid("desired/b.yaml", False)
    assert _value(m, "berth_desired_valid", file="desired/a.yaml") == 1
    assert _value(m, "berth_desired_valid", file="desired/b.yaml") == 0
    m.forget_file("desired/b.yaml")
    m.forget_file("desired/never-seen.yaml")  # harmless
    assert _labelsets(_samples(m, "berth_desired_valid")) == {(("file", "desired/a.yaml"),)}


def test_render_is_text_exposition(m: Metrics) -> None:
    assert m.content_type.startswith("text/plain")
    assert b"# TYPE berth_rollouts_total counter" in m.render()


def test_nginx_counters_become_series_per_revision_and_the_canary_its_weight(m: Metrics) -> None:
    add_traffic(m, SqliteStateStore(":memory:"))
    labels = {"project": "shop", "service": "api", "revision": "r1"}
    assert _value(m, "berth_upstream_requests_total", **labels, code="2xx") == 40
    assert _value(m, "berth_upstream_requests_total", **labels, code="5xx") == 2
    assert _value(m, "berth_upstream_requests_total", **labels, code="error") == 0
    assert _value(m, "berth_upstream_response_seconds_count", **labels) == 42
    assert _value(m, "berth_upstream_response_seconds_bucket", **labels, le="0.05") == 30
    assert _value(m, "berth_upstream_response_seconds_sum", **labels) == 1.5
    # the canary's revision has its series before its first request
    new = {**labels, "revision": "r2"}
    assert _value(m, "berth_upstream_requests_total", **new, code="2xx") == 0
    assert _value(m, "berth_canary_weight", project="shop", service="api") == 10
    # an upstream no service of the stack serves is not exported
    assert not [s for s in _samples(m, "berth_upstream_requests_total") if "r9" in str(s)]


def test_analysis_checks_are_preset_and_counted(m: Metrics) -> None:
    m.known_checks("shop", "api", ["min_requests", "success_rate"])
    assert (
        _value(
            m,
            "berth_analysis_checks_total",
            project="shop",
            service="api",
            check="success_rate",
            result="fail",
        )
        == 0
    )
    m.analysis("shop", "api", [("success_rate", "fail"), ("min_requests", "pass")])
    assert (
        _value(
            m,
            "berth_analysis_checks_total",
            project="shop",
            service="api",
            check="success_rate",
            result="fail",
        )
        == 1
    )
    with pytest.raises(ValueError):
        m.analysis("shop", "api", [("success_rate", "maybe")])


def test_git_metrics_preset_to_zero_and_only_with_a_webhook() -> None:
    registry = CollectorRegistry()
    git = GitMetrics(registry, interval=30, webhook=False)
    text = generate_latest(registry).decode()
    for result in ("success", "error", "rejected"):
        assert f'berth_git_sync_total{{result="{result}"}} 0.0' in text
    assert "berth_webhooks_total" not in text  # no secret, no hook, no series
    assert "berth_git_sync_interval_seconds 30.0" in text
    git.sync(SyncResult.ERROR, at=5.0, failures=1)
    git.sync(SyncResult.REJECTED, at=6.0, failures=2)
    text = generate_latest(registry).decode()
    assert "berth_git_sync_consecutive_failures 2.0" in text
    assert "berth_git_last_sync_timestamp_seconds 0.0" in text  # no success yet
    git.sync(SyncResult.SUCCESS, at=7.0, failures=0)
    assert "berth_git_last_sync_timestamp_seconds 7.0" in generate_latest(registry).decode()
    with_hook = CollectorRegistry()
    GitMetrics(with_hook, interval=30, webhook=True)
    text = generate_latest(with_hook).decode()
    for result in ("accepted", "ignored", "bad_signature", "replayed", "too_large", "malformed"):
        assert f'berth_webhooks_total{{result="{result}"}} 0.0' in text


def test_notification_series_are_preset_once_configured(m: Metrics) -> None:
    assert not _samples(m, "berth_notifications_total")
    m.known_notifications()
    assert len(_samples(m, "berth_notifications_total")) == 6 * 3
    m.notification("failed", "dropped")
    assert _value(m, "berth_notifications_total", kind="failed", result="dropped") == 1
    with pytest.raises(ValueError):
        m.notification("done", "sent")
    with pytest.raises(ValueError):
        m.notification("failed", "maybe")
