"""Image-update automation's choice (Flux image-automation's model, without Kubernetes):
of a repository's tags, which one a service should run by its policy.

The policy lives in the compose file (`x-berth.update`), which the operator owns; the
choice is then written into desired/ as an ordinary commit, so automation can do nothing a
person with push access to desired/ could not (DESIGN §2): change a tag.

- `semver: RANGE`: npm-style ranges (`^1.2`, `~1.4.0`, `>=1.2.0 <2`, `1.x`, `||`), through
  `semantic_version`'s NpmSpec: the highest version in range. A leading `v` is allowed.
  Pre-releases count only when the range names one, as npm does.
- `pattern: RE2` with `order: numerical | alphabetical`: tags the pattern matches whole,
  ordered by the named group `v` when the pattern has one (else the whole tag); numerical
  orders the group as an integer (a build number, a timestamp).

Never downhill: a tag that ranks below the current one is not chosen, so a quarantined
newest tag (skipped) does not send a service back to an older release.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from controller.core.reference import tag_problem
from controller.core.tagpolicy import compiled, pattern_problem, tag_allowed

ORDERS = ("numerical", "alphabetical")
MIN_INTERVAL = 10.0  # seconds; a registry is somebody else's server
MAX_DIGITS = 30  # a numerical key longer than this is not a build number


@dataclass(frozen=True)
class UpdatePolicy:
    semver: str | None = None
    pattern: str | None = None
    order: str = "numerical"
    interval: float = 300.0
    branch: str | None = None  # propose on this branch instead of committing to the tracked one


def semver_problem(spec: str) -> str | None:
    if len(spec) > 200:
        return "semver range longer than 200 characters"
    try:
        _range(spec)
    except ValueError as exc:
        return f"invalid semver range: {exc}"
    return None


@lru_cache(maxsize=256)
def _range(spec: str) -> Any:
    """The parsed range, once per policy: `rank` runs once per tag of a repository (up to
    the registry client's MAX_TAGS), and parsing a long range costs far more than a match."""
    import semantic_version

    return semantic_version.NpmSpec(spec)


def policy_pattern_problem(pattern: str) -> str | None:
    return pattern_problem(pattern)


def _semver(tag: str) -> Any:
    import semantic_version

    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semantic_version.Version(text)
    except ValueError:
        return None


def rank(tag: str, policy: UpdatePolicy) -> tuple[Any, ...] | None:
    """The tag's place in the policy's order; None when the policy does not take it."""
    if tag_problem(tag) is not None or "@" in tag or tag.startswith("sha256:"):
        return None
    if policy.semver is not None:
        v = _semver(tag)
        if v is None or not _range(policy.semver).match(v):
            return None
        return (v,)
    if policy.pattern is None:
        return None
    m = compiled(policy.pattern).fullmatch(tag)
    if m is None:
        return None
    group = m.group("v") if "v" in m.re.groupindex else None
    key = group if isinstance(group, str) else tag
    if policy.order == "numerical":
        if not key.isdigit() or len(key) > MAX_DIGITS:
            return None
        return (int(key), tag)
    return (key, tag)


def choose(
    tags: Iterable[str],
    policy: UpdatePolicy,
    *,
    current: str,
    allowed: str | None = None,
    skip: frozenset[str] = frozenset(),
) -> str | None:
    """The tag to move to, or None: the best tag by the policy that is allowed, not
    skipped (quarantined), and ranks above the current one (or the current one is outside
    the policy)."""
    best: tuple[tuple[Any, ...], str] | None = None
    for tag in tags:
        if tag in skip or (allowed is not None and not tag_allowed(allowed, tag)):
            continue
        r = rank(tag, policy)
        if r is not None and (best is None or r > best[0]):
            best = (r, tag)
    if best is None or best[1] == current:
        return None
    now = rank(current, policy)
    if now is not None and not best[0] > now:
        return None
    return best[1]
