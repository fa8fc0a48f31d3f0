"""PromQL checks of a canary analysis against a real Prometheus (its HTTP API)."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

MAX_ANSWER = 1 << 20  # bytes read of one answer: a check needs one number


class PrometheusQuery:
    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def value(self, base_url: str, promql: str) -> float | None:
        """`GET /api/v1/query`: a scalar, or the first sample of a vector; None when the
        query has no value (no data, an error, Prometheus unreachable)."""
        url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as res:
                data: Any = json.loads(res.read(MAX_ANSWER))
        except (OSError, ValueError, urllib.error.URLError):
            return None
        return _value(data)


def _value(data: Any) -> float | None:
    if not isinstance(data, dict) or data.get("status") != "success":
        return None
    body: Any = data.get("data") or {}
    result: Any = body.get("result") if isinstance(body, dict) else None
    kind = body.get("resultType") if isinstance(body, dict) else None
    try:
        if kind == "scalar":
            number = float(result[1])
        elif kind == "vector" and result:
            number = float(result[0]["value"][1])
        else:
            return None
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    return number if math.isfinite(number) else None
