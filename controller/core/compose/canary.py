"""`x-berth.canary` (DESIGN §3): steps, interval, stickiness and the analysis."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from controller.core.compose.fields import (
    check_keys,
    want_bool,
    want_duration,
    want_float,
    want_int,
    want_map,
    want_str,
)
from controller.core.model import AnalysisSpec, CanarySpec, QuerySpec
from controller.core.yamlsrc import Located, Path

_CANARY_KEYS = ("steps", "interval", "sticky", "analysis")
_ANALYSIS_KEYS = (
    "min_requests",
    "success_rate",
    "max_latency_p99",
    "failure_limit",
    "max_success_rate_drop",
    "max_latency_ratio",
    "prometheus",
    "queries",
)
MAX_STEPS = 20
MAX_QUERIES = 20
MAX_QUERY = 4096
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


def canary_options(loc: Located, path: Path, value: Any) -> CanarySpec | None:
    spec = want_map(loc, path, value)
    if spec is None:
        return None
    check_keys(loc, path, spec, _CANARY_KEYS)
    kw: dict[str, Any] = {}
    if "steps" in spec:
        kw["steps"] = _steps(loc, (*path, "steps"), spec["steps"])
    if "interval" in spec:
        kw["interval"] = want_duration(loc, (*path, "interval"), spec["interval"])
    if "sticky" in spec:
        kw["sticky"] = want_bool(loc, (*path, "sticky"), spec["sticky"])
    if spec.get("analysis") is not None:
        kw["analysis"] = _analysis(loc, (*path, "analysis"), spec["analysis"])
    if any(v is None for k, v in kw.items() if k != "analysis") or (
        "analysis" in kw and kw["analysis"] is None
    ):
        return None
    return CanarySpec(**kw)


def _steps(loc: Located, path: Path, value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not value or len(value) > MAX_STEPS:
        loc.error(path, f"must be a list of 1 to {MAX_STEPS} percentages, e.g. [10, 50]")
        return None
    out: list[int] = []
    for i, item in enumerate(value):
        pct = want_int(loc, (*path, i), item, minimum=1, maximum=99)
        if pct is None:
            return None
        if out and pct <= out[-1]:
            loc.error((*path, i), f"must be greater than the step before ({out[-1]})")
            return None
        out.append(pct)
    return tuple(out)


def _analysis(loc: Located, path: Path, value: Any) -> AnalysisSpec | None:
    spec = want_map(loc, path, value)
    if spec is None:
        return None
    check_keys(loc, path, spec, _ANALYSIS_KEYS)
    kw: dict[str, Any] = {}
    if "min_requests" in spec:
        kw["min_requests"] = want_int(
            loc, (*path, "min_requests"), spec["min_requests"], minimum=1, maximum=10_000_000
        )
    if "failure_limit" in spec:
        kw["failure_limit"] = want_int(
            loc, (*path, "failure_limit"), spec["failure_limit"], minimum=1, maximum=1000
        )
    for key, hi in (("success_rate", 100.0), ("max_success_rate_drop", 100.0)):
        if key in spec:
            kw[key] = want_float(loc, (*path, key), spec[key], minimum=0, maximum=hi)
    if "max_latency_ratio" in spec:
        kw["max_latency_ratio"] = want_float(
            loc, (*path, "max_latency_ratio"), spec["max_latency_ratio"], minimum=1, maximum=1e6
        )
    if "max_latency_p99" in spec:
        kw["max_latency_p99"] = want_duration(
            loc, (*path, "max_latency_p99"), spec["max_latency_p99"]
        )
    if spec.get("prometheus") is not None:
        kw["prometheus"] = _prometheus(loc, (*path, "prometheus"), spec["prometheus"])
    if spec.get("queries") is not None:
        kw["queries"] = _queries(loc, (*path, "queries"), spec["queries"])
        if kw["queries"] and "prometheus" not in kw:
            loc.error(path, "queries need 'prometheus': the base URL of a Prometheus server")
            return None
    if any(v is None for v in kw.values()):
        return None
    return AnalysisSpec(**kw)


def _prometheus(loc: Located, path: Path, value: Any) -> str | None:
    url = want_str(loc, path, value)
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or len(url) > 1024
    ):
        loc.error(path, "must be an http(s) URL such as http://127.0.0.1:9090")
        return None
    return url.rstrip("/")


def _queries(loc: Located, path: Path, value: Any) -> tuple[QuerySpec, ...] | None:
    if not isinstance(value, list) or len(value) > MAX_QUERIES:
        loc.error(path, f"must be a list of at most {MAX_QUERIES} {{query, max|min}} checks")
        return None
    out = []
    for i, item in enumerate(value):
        here = (*path, i)
        q = want_map(loc, here, item)
        if q is None:
            return None
        check_keys(loc, here, q, ("query", "max", "min"))
        text = want_str(loc, (*here, "query"), q.get("query"))
        if text is None:
            return None
        if not text.strip() or len(text) > MAX_QUERY:
            loc.error(
                (*here, "query"), f"must be a PromQL expression of 1 to {MAX_QUERY} characters"
            )
            return None
        unknown = {m for m in _PLACEHOLDER.findall(text)} - {"revision", "service", "project"}
        if unknown:
            loc.error(
                (*here, "query"),
                f"unknown placeholder(s) {sorted(unknown)}: "
                "use {{revision}}, {{service}} or {{project}}",
            )
            return None
        bounds = {k: want_float(loc, (*here, k), q[k]) for k in ("max", "min") if k in q}
        if not bounds:
            loc.error(here, "needs 'max' or 'min': the bound the query's value must keep")
            return None
        if any(v is None for v in bounds.values()):
            return None
        out.append(QuerySpec(text, bounds.get("max"), bounds.get("min")))
    return tuple(out)
