"""`x-berth.update`: the image-update automation policy of one service (core/imageupdate.py)."""

from __future__ import annotations

import re
from typing import Any

from controller.core.compose.fields import check_keys, want_duration, want_map, want_str
from controller.core.imageupdate import (
    MIN_INTERVAL,
    ORDERS,
    UpdatePolicy,
    policy_pattern_problem,
    semver_problem,
)
from controller.core.yamlsrc import Located, Path

_KEYS = ("semver", "pattern", "order", "interval", "branch")
# A branch Berth may create and push: git's ref rules, narrowed (no "..", "@{", leading "-").
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,99}")


def _plain_branch(name: str) -> bool:
    """`git check-ref-format --branch`'s rules per component (none empty, none starting
    with '.' or ending in '.lock'), and no name git reads as something else: HEAD and its
    kin (FETCH_HEAD...) would make every `git ... HEAD` ambiguous, refs/... a full ref."""
    parts = name.split("/")
    return (
        _BRANCH.fullmatch(name) is not None
        and ".." not in name
        and not name.endswith(".")
        and all(p and not p.startswith(".") and not p.endswith(".lock") for p in parts)
        and not (name.endswith("HEAD") and name.upper() == name)
        and parts[0] != "refs"
    )


def update_options(loc: Located, path: Path, value: Any) -> UpdatePolicy | None:
    spec = want_map(loc, path, value)
    if spec is None:
        return None
    check_keys(loc, path, spec, _KEYS)
    kw: dict[str, Any] = {}
    has = [k for k in ("semver", "pattern") if spec.get(k) is not None]
    if len(has) != 1:
        loc.error(path, "needs exactly one of semver (a range) or pattern (RE2 with `order`)")
        return None
    key = has[0]
    text = want_str(loc, (*path, key), spec[key])
    if text is None:
        return None
    problem = semver_problem(text) if key == "semver" else policy_pattern_problem(text)
    if problem is not None:
        loc.error((*path, key), problem)
        return None
    kw[key] = text
    if "order" in spec:
        if key == "semver":
            loc.error((*path, "order"), "semver orders by version; order is for pattern")
        elif spec["order"] not in ORDERS:
            loc.error((*path, "order"), f"must be one of {', '.join(ORDERS)}")
        else:
            kw["order"] = spec["order"]
    if "interval" in spec:
        seconds = want_duration(loc, (*path, "interval"), spec["interval"])
        if seconds is not None and seconds < MIN_INTERVAL:
            loc.error((*path, "interval"), f"must be at least {MIN_INTERVAL:g}s")
        elif seconds is not None:
            kw["interval"] = seconds
    if spec.get("branch") is not None:
        branch = want_str(loc, (*path, "branch"), spec["branch"])
        if branch is not None and not _plain_branch(branch):
            loc.error(
                (*path, "branch"),
                "must be a plain git branch name (letters, digits, ._/-; no empty part or "
                "one starting with '.'; not HEAD or refs/...)",
            )
        elif branch is not None:
            kw["branch"] = branch
    return UpdatePolicy(**kw)
