"""Digest pinning: which registry digest a service's containers run (`x-berth.track`).

A tag can move: `1.4` today and `1.4` after a rebuild are different images under one name.
Containers therefore run the digest the tag pointed at when it was rolled out, and a moved
tag is a decision, taken per service:

- `pinned` (the default): the digest is fixed when the tag is first rolled out; if the tag
  later points elsewhere, that is reported as drift (`berth plan`, `status`, a metric) and
  nothing is replaced. A new tag in desired/ is resolved afresh.
- `digest`: the service follows the tag; a new digest is a new revision, rolled out as any
  change is (health-gated, rolled back and quarantined if bad).
- `tag`: no digest at all; the engine resolves the tag when it pulls (Docker's behaviour).

What the registry said is found by the shell (one HEAD of the manifest); deciding is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from controller.core.model import ObservedContainer, Target


@dataclass(frozen=True)
class Lookup:
    """What the shell found out about one `repository:tag`."""

    digest: str | None = None  # what the registry says the tag points at now
    error: str | None = None  # why it could not say
    local_only: bool = False  # present here and never pulled from a registry (built, imported)


@dataclass(frozen=True)
class Pinned:
    """A target after pinning, and what is worth telling about it."""

    target: Target
    drift: str | None = None  # pinned, and the tag now points at this other digest
    note: str | None = None  # runs by tag: why no digest (registry unreachable, say)


def reference_to_resolve(target: Target) -> str | None:
    """The `repository:tag` whose digest decides this target; None when nothing is asked:
    a digest already written in desired/, `track: tag`, or an image built on this host."""
    if target.spec.berth.track == "tag" or target.spec.build is not None:
        return None
    if "@" in target.image or target.tag.startswith("sha256:"):
        return None
    return target.image


def running_digest(target: Target, containers: Iterable[ObservedContainer]) -> str | None:
    """The digest the service's newest running container of the same tag was created
    from (a replica set mid-rollout may hold two: the newest is the one rolled out last)."""
    same = [c for c in containers if c.tag == target.tag and c.digest and c.running]
    if not same:
        return None
    return max(same, key=lambda c: c.created).digest


def pin(target: Target, *, running: str | None, lookup: Lookup | None) -> Pinned:
    """The target with the digest its containers must run, under its `track` policy."""
    if lookup is None or reference_to_resolve(target) is None:
        return Pinned(target)
    found = lookup.digest
    if target.spec.berth.track == "pinned" and running is not None:
        drift = found if found is not None and found != running else None
        return Pinned(_with_digest(target, running), drift=drift)
    if found is not None:
        return Pinned(_with_digest(target, found))
    if running is not None:  # `digest`, and the registry cannot say: keep what runs
        return Pinned(_with_digest(target, running), note=lookup.error)
    return Pinned(target, note=None if lookup.local_only else lookup.error)


def _with_digest(target: Target, digest: str) -> Target:
    return replace(target, image=f"{target.image}@{digest}", digest=digest)
