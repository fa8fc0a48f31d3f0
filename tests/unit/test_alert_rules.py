"""metrics/: the alert rules pass promtool and their own unit tests, and the dashboard only
queries metric names of the DESIGN §7 contract, through the `${DS_PROMETHEUS}` variable.

promtool is not optional: CI installs Debian's `prometheus` (scripts/ensure-docker.sh), so a
missing promtool FAILS here, and a broken CI machine cannot pass as a green run. Mutation
tests prove that alerts_test.yml catches a wrong rule instead of passing whatever it runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from controller.shell.daemon.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
METRICS_DIR = ROOT / "metrics"
DASHBOARD = METRICS_DIR / "dashboard.json"
ALERTS = METRICS_DIR / "alerts.yml"
ALERTS_TEST = METRICS_DIR / "alerts_test.yml"

# What a dashboard may query: the §7 contract, the histogram series derived from it, `up`.
_HISTOGRAMS = (
    "berth_reconcile_duration_seconds",
    "berth_rollout_duration_seconds",
    "berth_upstream_response_seconds",
    "berth_image_build_duration_seconds",
    "berth_image_pull_duration_seconds",
    "berth_release_task_duration_seconds",
    "berth_smoke_check_duration_seconds",
    "berth_hook_duration_seconds",
)
ALLOWED_METRICS = (
    METRIC_NAMES
    | {f"{h}_{suffix}" for h in _HISTOGRAMS for suffix in ("bucket", "sum", "count")}
    | {"up"}
)

# PromQL words that look like identifiers but are not metric names.
_PROMQL_WORDS = """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    by without on ignoring group_left group_right and or unless bool offset atan2
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_quantile
    holt_winters hour idelta increase irate label_join label_replace ln log2 log10
    minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt time
    timestamp vector year avg_over_time min_over_time max_over_time sum_over_time
    count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time
    present_over_time acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad
    pi inf nan
"""
PROMQL_WORDS = frozenset(_PROMQL_WORDS.split())


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: run `bash scripts/ensure-docker.sh` (as root), which "
            "installs Debian's `prometheus` package (promtool included).",
            pytrace=False,
        )
    return path


def run_promtool(*args: str, cwd: Path = METRICS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


# -- dashboard helpers (also used by tests/integration/test_prometheus_dashboard.py) -------


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    return [
        (panel.get("title", "?"), target["expr"])
        for panel in iter_panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


_STRIP = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # string literals (label values, label_replace args)
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # range and subquery selectors
    # label lists of aggregations and vector matching
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),
)
_IDENT = re.compile(r"(?<![\w$.:])([A-Za-z_:][\w:]*)(?=\s*[{\[)]|\s|$)")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers not called as functions.

    Label lists, matchers, strings and ranges are removed first, so label names (`le`,
    `service`) and variables (`$stack`, `$__range`) cannot pass for metric names.
    """
    text = expr
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in PROMQL_WORDS}


# -- promtool ------------------------------------------------------------------------------


def test_alert_rules_are_valid() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


def test_alert_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_example_config_is_valid() -> None:
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = _yaml(ALERTS)["groups"][0]["rules"]
    alerts = {rule["alert"] for rule in rules}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _yaml(ALERTS_TEST)["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts == {
        "BerthRolloutRolledBack",
        "BerthRolloutFailed",
        "BerthDesiredFileInvalid",
        "BerthControllerDown",
        "BerthReplicasNotReady",
        "BerthNoSuccessfulReconcile",
        "BerthCanaryAnalysisFailed",
        "BerthUpstreamErrorRatioHigh",
        "BerthGitSyncFailing",
        "BerthGitSyncStale",
        "BerthNotificationsFailing",
    }
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_alert_rules_carry_severity_and_annotations() -> None:
    for rule in _yaml(ALERTS)["groups"][0]["rules"]:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        for name in metric_names(rule["expr"]):
            assert name in ALLOWED_METRICS, f"{rule['alert']}: {name}"


# Each mutation breaks one alert the way a plausible edit would; the rule tests must notice.
MUTATIONS = {
    "rolled_back threshold": (
        'outcome="rolled_back"}[10m]) > 0',
        'outcome="rolled_back"}[10m]) > 1',
    ),
    "failed outcome": ('outcome="failed"', 'outcome="rolled_back"'),
    "invalid-file for": ("berth_desired_valid == 0\n        for: 1m", "berth_desired_valid == 0"),
    "absent dropped": ('== 0 or absent(up{job="berth"})', "== 0"),
    "replicas comparison": ("< ignoring(state)", "<= ignoring(state)"),
    "reconcile up guard": ('and on(job, instance) up{job="berth"} == 1', ""),
    "severity": ("severity: critical", "severity: page"),
    "annotation": ("has fewer ready replicas", "lacks replicas"),
    "canary fail result": ('result="fail"}[10m]', 'result="inconclusive"}[10m]'),
    "error ratio classes": ('code=~"5xx|error"}[5m]', 'code="5xx"}[5m]'),
    "error ratio threshold": ("> 0.05", "> 0.5"),
    "git failures threshold": ("consecutive_failures >= 3", "consecutive_failures >= 30"),
    "git stale intervals": ("> 3 * berth_git_sync_interval", "> 10 * berth_git_sync_interval"),
    "notifications result": ('result=~"failed|dropped"', 'result="dropped"'),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_rule_tests_catch_a_broken_rule(name: str, tmp_path: Path) -> None:
    old, new = MUTATIONS[name]
    text = ALERTS.read_text()
    assert old in text, f"mutation {name!r} no longer applies: update MUTATIONS"
    (tmp_path / "alerts.yml").write_text(text.replace(old, new, 1))
    shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
    result = run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0, f"mutation {name!r} went unnoticed:\n{result.stdout}"


# -- dashboard -----------------------------------------------------------------------------


def test_metric_name_extraction_bites() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, service) (rate(berth_bogus_bucket{project=~"$stack"}'
        "[$__rate_interval]))) / ignoring(state) other_metric + time() - up"
    )
    assert metric_names(expr) == {"berth_bogus_bucket", "other_metric", "up"}


def test_dashboard_queries_only_contract_metrics() -> None:
    exprs = dashboard_exprs(load_dashboard())
    assert len(exprs) >= 13
    used: set[str] = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric found in {expr!r}"
        assert names <= ALLOWED_METRICS, f"{title}: {sorted(names - ALLOWED_METRICS)}"
        used |= names
    # Every §7 metric is on the dashboard (histograms through their _bucket series).
    shown = {n.removesuffix("_bucket") for n in used}
    assert shown >= METRIC_NAMES, sorted(METRIC_NAMES - shown)


def test_every_panel_uses_the_datasource_variable() -> None:
    dashboard = load_dashboard()
    want = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in iter_panels(dashboard["panels"]):
        assert panel["datasource"] == want, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == want, panel["title"]


def test_dashboard_template_variables() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["stack"]["query"] == "label_values(berth_service_info, project)"
    assert (
        variables["service"]["query"]
        == 'label_values(berth_service_info{project=~"$stack"}, service)'
    )
    for name in ("stack", "service"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["multi"] and var["includeAll"]
        assert var["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids = [p["id"] for p in iter_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
