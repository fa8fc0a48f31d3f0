"""Typed reads of compose values that record a located Problem instead of raising.

Compose casts interpolated strings to the type the schema expects (`replicas: ${N}` is an
int after interpolation), so numbers and booleans are accepted as strings here too. Each
helper returns None after recording the problem, so one pass reports every bad field.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable
from typing import Any

from controller.core.durations import parse_duration
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

_BYTES = re.compile(r"([0-9]{1,20}(?:\.[0-9]{1,20})?) ?([kmgtp])?i?b?", re.IGNORECASE)
_INT = re.compile(r"-?[0-9]{1,19}")
_FLOAT = re.compile(r"-?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})")
INT64_MAX = 2**63 - 1  # what the Engine API's integer fields hold
_MULT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_bytes(value: str | int) -> int:
    """Memory sizes as compose parses them (docker/go-units RAMInBytes: binary multiples)."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {brief(value)}")
    if isinstance(value, int):
        if not 0 <= value <= INT64_MAX:
            raise ValueError(f"invalid size {brief(value)}: must be 0 to {INT64_MAX}")
        return value
    match = _BYTES.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(
            f"invalid size {brief(value)}: expected e.g. '512m', '1g', '1.5gb', '1048576'"
        )
    unit = (match.group(2) or "").lower()
    size = int(float(match.group(1)) * _MULT[unit])
    if size > INT64_MAX:
        raise ValueError(f"invalid size {brief(value)}: larger than {INT64_MAX} bytes")
    return size


def check_keys(loc: Located, path: Path, value: dict[str, Any], allowed: Iterable[str]) -> None:
    """Unknown keys are errors: a typo must not silently disable a setting.

    `x-*` keys are compose extensions, ignored at every level as compose ignores them;
    `x-berth` has a meaning only where Berth reads it (the top level and a service), so
    anywhere else it is reported rather than silently dropped. Inside `x-berth` itself
    (Berth's own schema) every key must be known."""
    known = set(allowed)
    inside_berth = "x-berth" in path
    for key in value:
        if key in known:
            continue
        if key == "x-berth" and not inside_berth:
            loc.error(
                (*path, key),
                "x-berth has no meaning here: Berth reads it at the top level and in a service",
            )
        elif not (isinstance(key, str) and key.startswith("x-") and not inside_berth):
            loc.error((*path, key), f"unknown key; allowed: {', '.join(sorted(known))}")


def want_map(loc: Located, path: Path, value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    loc.error(path, f"must be a mapping, got {_kind(value)}")
    return None


def want_str(loc: Located, path: Path, value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    loc.error(path, f"must be a string, got {_kind(value)}")
    return None


def want_int(
    loc: Located,
    path: Path,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int = INT64_MAX,
) -> int | None:
    """An integer in [minimum, maximum]; digits are ASCII only (`int()` takes any script)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value)
    if number is None:
        loc.error(path, f"must be an integer, got {_kind(value)} {brief(value)}")
        return None
    low = -INT64_MAX - 1 if minimum is None else minimum
    if not low <= number <= maximum:
        bound = f">= {minimum}" if number < low and minimum is not None else f"<= {maximum}"
        if number < low and minimum is None:
            bound = f">= {low}"
        loc.error(path, f"must be {bound}, got {number}")
        return None
    return number


def want_float(
    loc: Located,
    path: Path,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    """A finite number (`.inf` and `.nan` are YAML floats, and no field means them)."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value) if abs(value) <= 1e300 else math.inf
    elif isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        number = float(value)
    if number is None or not math.isfinite(number):
        loc.error(path, f"must be a finite number, got {_kind(value)} {brief(value)}")
        return None
    if minimum is not None and number < minimum:
        loc.error(path, f"must be >= {minimum:g}, got {number:g}")
        return None
    if maximum is not None and number > maximum:
        loc.error(path, f"must be <= {maximum:g}, got {number:g}")
        return None
    return number


def want_bool(loc: Located, path: Path, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    loc.error(path, f"must be true or false, got {_kind(value)} {brief(value)}")
    return None


def want_duration(loc: Located, path: Path, value: Any) -> float | None:
    try:
        return parse_duration(value)
    except ValueError as exc:
        loc.error(path, str(exc))
        return None


def want_bytes(loc: Located, path: Path, value: Any) -> int | None:
    try:
        return parse_bytes(value)
    except ValueError as exc:
        loc.error(path, str(exc))
        return None


def want_str_list(
    loc: Located, path: Path, value: Any, *, allow_str: bool = True
) -> list[str] | None:
    """A list of strings; a single string is a one-item list where compose allows that."""
    if allow_str and isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        loc.error(path, f"must be a list of strings, got {_kind(value)}")
        return None
    out: list[str] = []
    for i, item in enumerate(value):
        text = want_str(loc, (*path, i), item)
        if text is None:
            return None
        out.append(text)
    return out


def want_command(loc: Located, path: Path, value: Any) -> tuple[str, ...] | None:
    """A command as a list of arguments, or a string split the way a shell would."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:  # an unbalanced quote
            loc.error(path, f"cannot split into arguments: {exc}")
            return None
    items = want_str_list(loc, path, value, allow_str=False)
    return None if items is None else tuple(items)


def scalar_text(value: Any) -> str:
    """Stringify a map value the way compose does (`true` -> "true", null -> "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def kv_pairs(
    loc: Located, path: Path, value: Any, *, sep: str = "="
) -> dict[str, str | None] | None:
    """Compose's list-or-map fields (`labels`, `environment`, `sysctls`...).

    A list item without the separator maps to None, which callers interpret (environment:
    take it from the project environment; labels: empty value).
    """
    if isinstance(value, dict):
        out_map: dict[str, str | None] = {}
        for k, v in value.items():
            if isinstance(v, dict | list):  # compose refuses these; a repr would go through
                loc.error((*path, k), f"must be a string, number or boolean, got {_kind(v)}")
            elif isinstance(v, float) and not math.isfinite(v):
                loc.error((*path, k), f"must be a finite number, got {v}")
            else:
                out_map[k] = None if v is None else scalar_text(v)
        return out_map
    items = want_str_list(loc, path, value, allow_str=False)
    if items is None:
        return None
    out: dict[str, str | None] = {}
    for item in items:
        key, found, val = item.partition(sep)
        out[key] = val if found else None
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "a string"
