"""Durations as compose writes them (Go's time.ParseDuration syntax).

Compose files carry `10s`, `1m30s` or `250ms`; Berth needs seconds as a float everywhere
(probe intervals, deadlines, StopTimeout), so every duration in compose and `x-berth` goes
through this single parser and fails with the same message.
"""

from __future__ import annotations

import re

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
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`; a bare number means seconds. Negative durations are refused."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. '10s', '1m30s', '250ms'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected e.g. '10s', '1m30s', '250ms'")
    text = value.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    total = 0.0
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"invalid duration {value!r}: expected a number with a unit "
            "(ns, us, ms, s, m, h), e.g. '10s', '1m30s', '250ms'"
        )
    return total
