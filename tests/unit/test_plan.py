"""Table-driven tests of the pure planner."""

from __future__ import annotations

import pytest

from controller.core.model import ContainerState, Observed
from controller.core.plan import ActionKind, blockers, plan
from tests.unit.builders import container, target

V1 = target(tag="1", replicas=2)
V2 = target(tag="2", replicas=2)
RUN, EXITED, CREATED = ContainerState.RUNNING, ContainerState.EXITED, ContainerState.CREATED


CASES = [
    ("nothing running -> create", V2, [], ActionKind.CREATE),
    ("converged -> nothing", V2, [container(V2, 1), container(V2, 2)], ActionKind.NOTHING),
    ("old tag -> replace", V2, [container(V1, 1), container(V1, 2)], ActionKind.REPLACE),
    (
        "interrupted rollout (mix) -> replace",
        V2,
        [container(V1, 1), container(V1, 2), container(V2, 1)],
        ActionKind.REPLACE,
    ),
    (
        "stop-first interrupted (old stopped) -> replace",
        V2,
        [container(V1, 1, state=EXITED)],
        ActionKind.REPLACE,
    ),
    ("one missing -> scale up", V2, [container(V2, 1)], ActionKind.SCALE_UP),
    (
        "one exited (drift) -> scale up",
        V2,
        [container(V2, 1), container(V2, 2, state=EXITED)],
        ActionKind.SCALE_UP,
    ),
    (
        "created but never started -> scale up",
        V2,
        [container(V2, 1), container(V2, 2, state=CREATED)],
        ActionKind.SCALE_UP,
    ),
    (
        "too many -> scale down",
        V2,
        [container(V2, 1), container(V2, 2), container(V2, 3)],
        ActionKind.SCALE_DOWN,
    ),
    (
        "replicas 0 with old -> scale down",
        target(tag="2", replicas=0),
        [container(V1, 1)],
        ActionKind.SCALE_DOWN,
    ),
    ("replicas 0, nothing -> nothing", target(tag="2", replicas=0), [], ActionKind.NOTHING),
]


@pytest.mark.parametrize(("name", "tgt", "containers", "kind"), CASES, ids=[c[0] for c in CASES])
def test_plan_table(name: str, tgt: object, containers: list[object], kind: ActionKind) -> None:
    p = plan([tgt], Observed(tuple(containers)))  # type: ignore[list-item,arg-type]
    assert [a.kind for a in p.actions] == [kind]
    assert p.actions[0].reason
    assert p.changes == (kind not in (ActionKind.NOTHING, ActionKind.QUARANTINED))


def test_changed_environment_is_a_new_revision() -> None:
    a = target(tag="1", env="A=1")
    b = target(tag="1", env="A=2")
    assert a.revision != b.revision
    p = plan([b], Observed((container(a, 1),)))
    assert p.actions[0].kind is ActionKind.REPLACE


def test_quarantined_revision_is_not_retried() -> None:
    obs = Observed((container(V1, 1), container(V1, 2)), frozenset({(V2.key, V2.revision)}))
    p = plan([V2], obs)
    assert p.actions[0].kind is ActionKind.QUARANTINED
    assert not p.changes
    assert "berth retry" in p.actions[0].reason


def test_service_removed_from_compose_is_removed_but_other_projects_are_left() -> None:
    gone = target("worker", tag="1")
    other = target("api", tag="1", project="other")
    obs = Observed((container(V2, 1), container(V2, 2), container(gone, 1), container(other, 1)))
    p = plan([V2], obs)
    kinds = {a.key: a.kind for a in p.actions}
    assert kinds == {"demo/api": ActionKind.NOTHING, "demo/worker": ActionKind.REMOVE}


def test_split_old_and_current() -> None:
    obs = Observed((container(V1, 1), container(V2, 1)))
    (a,) = plan([V2], obs).actions
    assert [c.tag for c in a.current] == ["2"]
    assert [c.tag for c in a.old] == ["1"]


def test_blockers_are_changing_or_busy_dependencies_within_the_plan() -> None:
    db = target("db")
    api = target("api", depends=("db", "cache"))
    actions = plan([db, api], Observed(())).actions  # both are created: both change
    assert blockers(actions) == {"demo/db": frozenset(), "demo/api": frozenset({"demo/db"})}
    db_runs = Observed((container(db, 1),))  # db converged: nothing blocks api ...
    steady = plan([db, api], db_runs).actions
    assert blockers(steady)["demo/api"] == frozenset()
    assert blockers(steady, busy={"demo/db"})["demo/api"] == {"demo/db"}  # ... unless busy
