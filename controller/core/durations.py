"""Durations as compose writes them (Go's time.ParseDuration syntax).

Compose files carry `10s`, `1m30s` or `250ms`; Berth needs seconds as a float everywhere
(probe intervals, deadlines, StopTimeout), so every duration in compose and `x-berth` goes
through this single parser and fails with the same message.
"""

from __future__ import annotations

import math
import re

from controller.errors import brief

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20}")
MAX_SECONDS = 7 * 24 * 3600.0  # every duration Berth reads is finite and at most 168h
_EXPECTED = "expected e.g. '10s', '1m30s', '250ms'"


def _bounded(value: object, seconds: float) -> float:
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {brief(value)}: must be finite and at most 168h")
    return seconds


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`; a bare number means seconds. Negative durations are refused."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {brief(value)}: {_EXPECTED}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {brief(value)}: must not be negative")
        return _bounded(value, float(value) if abs(value) <= MAX_SECONDS else math.inf)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {brief(value)}: {_EXPECTED}")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return _bounded(value, float(text))
    total = 0.0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"invalid duration {brief(value)}: expected a number with a unit "
            f"(ns, us, ms, s, m, h), {_EXPECTED.removeprefix('expected ')}"
        )
    return _bounded(value, total)
