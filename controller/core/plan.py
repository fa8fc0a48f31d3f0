"""The planner: `plan(targets, observed) -> Plan`, a pure diff of desired against running.

Level-triggered: the plan is recomputed from scratch on every pass from what can be observed
(containers with their labels, and quarantined revisions from the state store), so a
controller killed mid-rollout picks the rollout up again from the same observations.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from controller.core.model import Observed, ObservedContainer, Target


class ActionKind(StrEnum):
    NOTHING = "nothing"
    CREATE = "create"
    REPLACE = "replace"
    SCALE_UP = "scale-up"
    SCALE_DOWN = "scale-down"
    REMOVE = "remove"
    QUARANTINED = "quarantined"


# Actions that bring a new revision (release tasks and hooks belong to these, not to a
# scale change of a revision that runs already, nor to a removal)
NEW_REVISION = frozenset({ActionKind.CREATE, ActionKind.REPLACE})

# Passes with no rollout, whose nginx routes are healed to follow the containers (a
# quarantined desired revision: the version that serves is still kept routed)
STEADY_KINDS = frozenset({ActionKind.NOTHING, ActionKind.QUARANTINED})

CHANGING = frozenset(
    {
        ActionKind.CREATE,
        ActionKind.REPLACE,
        ActionKind.SCALE_UP,
        ActionKind.SCALE_DOWN,
        ActionKind.REMOVE,
    }
)


@dataclass(frozen=True)
class ServiceAction:
    """What to do for one service, and why (shown by `berth plan`)."""

    project: str
    service: str
    kind: ActionKind
    reason: str
    target: Target | None
    current: tuple[ObservedContainer, ...] = ()  # containers of the target revision
    old: tuple[ObservedContainer, ...] = ()  # containers of any other revision

    @property
    def key(self) -> str:
        return f"{self.project}/{self.service}"

    @property
    def changes(self) -> bool:
        return self.kind in CHANGING


@dataclass(frozen=True)
class Plan:
    actions: tuple[ServiceAction, ...]

    @property
    def changes(self) -> bool:
        return any(a.changes for a in self.actions)

    def changing(self) -> tuple[ServiceAction, ...]:
        return tuple(a for a in self.actions if a.changes)


def plan(targets: Sequence[Target], observed: Observed) -> Plan:
    """Diff every target against the observed containers of its project.

    Containers of a project that desired/ names but of a service that left its compose file
    are removed. Projects that desired/ no longer names are left alone on purpose: deleting
    a desired file must not tear a stack down (that is `docker compose down`'s job).
    """
    projects = {t.project for t in targets}
    wanted = {(t.project, t.service) for t in targets}
    by_service = _group(observed.containers)
    actions = [
        _plan_service(t, by_service.get((t.project, t.service), ()), observed) for t in targets
    ]
    for (project, service), containers in sorted(by_service.items()):
        if project in projects and (project, service) not in wanted:
            actions.append(
                ServiceAction(
                    project,
                    service,
                    ActionKind.REMOVE,
                    f"service left the compose file; removing {len(containers)} container(s)",
                    None,
                    old=tuple(containers),
                )
            )
    return Plan(tuple(actions))


def _group(
    containers: Iterable[ObservedContainer],
) -> Mapping[tuple[str, str], tuple[ObservedContainer, ...]]:
    out: dict[tuple[str, str], list[ObservedContainer]] = {}
    for c in containers:
        out.setdefault((c.project, c.service), []).append(c)
    return {k: tuple(sorted(v, key=lambda c: (c.number, c.name))) for k, v in out.items()}


def _plan_service(
    t: Target, containers: tuple[ObservedContainer, ...], observed: Observed
) -> ServiceAction:
    rev = t.revision
    current = tuple(c for c in containers if c.revision == rev)
    old = tuple(c for c in containers if c.revision != rev)

    def act(kind: ActionKind, reason: str) -> ServiceAction:
        return ServiceAction(t.project, t.service, kind, reason, t, current, old)

    if observed.is_quarantined(t.key, rev):
        return act(
            ActionKind.QUARANTINED,
            f"revision {rev[:8]} (tag {t.tag}) failed before; quarantined until "
            f"desired/ changes or `berth retry {t.service}`",
        )
    live = [c for c in current if c.running]
    if old:
        if t.replicas == 0:
            return act(
                ActionKind.SCALE_DOWN, f"replicas 0: removing {len(containers)} container(s)"
            )
        tags = sorted({c.tag for c in old})
        if not current and not containers_running(old):
            return act(ActionKind.REPLACE, f"{', '.join(tags)} -> {t.tag} (old containers stopped)")
        return act(ActionKind.REPLACE, f"{', '.join(tags)} -> {t.tag}")
    if not current:
        if t.replicas == 0:
            return act(ActionKind.NOTHING, "replicas 0, nothing running")
        return act(ActionKind.CREATE, f"create {t.replicas} x {t.tag}")
    dead = len(current) - len(live)
    if len(live) > t.replicas:
        return act(ActionKind.SCALE_DOWN, f"{len(live)} running, {t.replicas} desired")
    if len(live) < t.replicas or dead:
        why = f"{len(live)}/{t.replicas} running"
        if dead:
            why += f", {dead} stopped or exited (drift)"
        return act(ActionKind.SCALE_UP, why)
    return act(ActionKind.NOTHING, f"{len(live)}/{t.replicas} running {t.tag}")


def containers_running(cs: Iterable[ObservedContainer]) -> bool:
    return any(c.running for c in cs)


def blockers(
    actions: Sequence[ServiceAction], *, busy: Collection[str] = ()
) -> dict[str, frozenset[str]]:
    """The one dependency-order policy (compose `depends_on`, same project): for each action
    that changes, the keys it must wait for, i.e. its dependencies that change in this plan
    too or are `busy` (a rollout in flight). `apply` runs a plan in this order; the daemon
    requeues a key while it has blockers."""
    changing = {a.key for a in actions if a.changes}
    waiting = changing | set(busy)
    out: dict[str, frozenset[str]] = {}
    for a in actions:
        if a.target is None or not a.changes:
            out[a.key] = frozenset()
            continue
        deps = (f"{a.project}/{d.service}" for d in a.target.spec.depends_on)
        out[a.key] = frozenset(k for k in deps if k in waiting and k != a.key)
    return out
