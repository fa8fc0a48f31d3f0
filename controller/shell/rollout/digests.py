"""Finds out what a tag points at (for core/digests.py) and pins the targets of a pass.

One HEAD per `repository:tag`, cached for `ttl` (the drift check's interval): the daemon
plans every service every resync, and a registry rate-limits (Docker Hub: per pull, but
also per manifest request). An unreachable registry is remembered for `ttl_error`, so it
costs one timeout per reference and period, not one per pass; a quick "no" (unknown tag,
refused login) is not remembered: CI may push the tag, or the login be fixed, any moment.

An image that is present on the host without any registry digest was built or imported
here: it is in no registry, and asking one would only fail (or find a namesake).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from controller.core.config import settle_peers
from controller.core.digests import Lookup, Pinned, pin, reference_to_resolve, running_digest
from controller.core.model import Observed, Target
from controller.errors import BerthError
from controller.ports import ContainerRuntime, RegistryPort


@dataclass
class DigestResolver:
    registry: RegistryPort
    runtime: ContainerRuntime
    ttl: float = 60.0
    ttl_error: float = 30.0
    now: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, Lookup]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup(self, ref: str) -> Lookup:
        with self._lock:
            hit = self._cache.get(ref)
        if hit is not None and hit[0] > self.now():
            return hit[1]
        found, slow = self._ask(ref)
        if found.digest is None and not found.local_only and not slow:
            return found  # a quick "no" (not found, refused): ask again next time
        ttl = self.ttl if not slow else self.ttl_error
        with self._lock:
            self._cache[ref] = (self.now() + ttl, found)
        return found

    def forget(self, ref: str | None = None) -> None:
        """Ask again at the next lookup (a webhook said a tag moved, or `berth plan`)."""
        with self._lock:
            if ref is None:
                self._cache.clear()
            else:
                self._cache.pop(ref, None)

    def _ask(self, ref: str) -> tuple[Lookup, bool]:
        """The lookup, and whether the registry was unreachable (a failure worth caching:
        asking again at once would only wait for the same timeout)."""
        local = self.runtime.image_digests(ref)
        if local is not None and not local:
            return Lookup(local_only=True), False
        try:
            return Lookup(digest=self.registry.digest(ref)), False
        except BerthError as exc:
            # the registry cannot say now; the copy here came from it, under this name
            mine = [d.partition("@")[2] for d in local or () if d.partition("@")[0] == _repo(ref)]
            slow = getattr(exc, "kind", "unreachable") == "unreachable"
            return Lookup(digest=mine[0] if mine else None, error=str(exc)), slow


def _repo(ref: str) -> str:
    head, _, tail = ref.rpartition(":")
    return head if head and "/" not in tail else ref


@dataclass(frozen=True)
class Pinning:
    targets: tuple[Target, ...]
    notes: dict[str, Pinned]  # key -> how it was pinned (drift, why not)

    def drift(self) -> dict[str, str]:
        return {k: p.drift for k, p in self.notes.items() if p.drift}


def pin_targets(
    targets: Sequence[Target], observed: Observed, resolver: DigestResolver | None
) -> Pinning:
    """Every target with the digest its containers run; peers' revisions settled again."""
    if resolver is None:
        return Pinning(tuple(targets), {})
    notes: dict[str, Pinned] = {}
    out: list[Target] = []
    for t in targets:
        ref = reference_to_resolve(t)
        if ref is None:
            out.append(t)
            continue
        mine = observed.of_service(t.project, t.service)
        p = pin(t, running=running_digest(t, mine), lookup=resolver.lookup(ref))
        notes[t.key] = p
        out.append(p.target)
    return Pinning(_settled(out), notes)


def _settled(targets: Iterable[Target]) -> tuple[Target, ...]:
    by_project: dict[str, list[Target]] = {}
    for t in targets:
        by_project.setdefault(t.project, []).append(t)
    settled = {t.key: t for ts in by_project.values() for t in settle_peers(ts)}
    return tuple(settled[t.key] for t in targets)


def related(targets: Sequence[Target], service: str) -> set[str]:
    """`service` and every service it depends on or joins (depends_on, network_mode /
    volumes_from peers), transitively: what a pass over `service` compares revisions of."""
    by = {t.service: t for t in targets}
    out: set[str] = set()
    todo = [service]
    while todo:
        name = todo.pop()
        if name in out or name not in by:
            continue
        out.add(name)
        spec = by[name].spec
        todo += [*spec.peers, *(d.service for d in spec.depends_on)]
    return out
