"""Table-driven tests of the rollout state machine (`next_step`) and the gate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core import rollout as r
from controller.core.gate import GateInput, GateRules, evaluate
from controller.core.model import ContainerState
from controller.core.outcome import NextPass, next_pass
from controller.core.plan import ActionKind
from tests.unit.builders import container, target

RUN, EXITED, CREATED = ContainerState.RUNNING, ContainerState.EXITED, ContainerState.CREATED
V1 = target(tag="1", replicas=2)
V2 = target(tag="2", replicas=2)
OLD = (container(V1, 1), container(V1, 2))


def cfg(**kw: object) -> r.RolloutConfig:
    base = r.RolloutConfig(
        kind=ActionKind.REPLACE,
        strategy="start-first",
        replicas=2,
        image="example/api:2",
        progress_deadline=10.0,
        probe_interval=0.25,
        threshold=2,
        docker_health=False,
        http_probe=True,
        bake=0.0,
        from_revision=V1.revision,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def new(
    n: int,
    state: ContainerState = RUN,
    probe: bool | None = True,
    created: float = 0.0,
    restarts: int = 0,
    health: str | None = None,
) -> r.NewObs:
    gi = GateInput(
        f"new{n}", f"api-new-{n}", state, health, 1 if state is EXITED else None, restarts, probe
    )
    return r.NewObs(n, created, gi)


def obs(
    new_: tuple[r.NewObs, ...] = (), old: tuple[object, ...] = OLD, image: bool = True
) -> r.RolloutObs:
    return r.RolloutObs(image, new_, old)  # type: ignore[arg-type]


S0 = r.RolloutState(cfg())
GATING = replace(S0, phase=r.Phase.GATE, deadline=10.0)

TABLE = [
    ("image missing -> pull", S0, obs(image=False), r.Pull),
    ("image present, no new -> create both", S0, obs(), r.Create),
    ("one new exists -> create only the other", S0, obs((new(1, CREATED),)), r.Create),
    (
        "both created, not started -> start",
        replace(S0, phase=r.Phase.START),
        obs((new(1, CREATED), new(2, CREATED))),
        r.Start,
    ),
    (
        "dead new container from earlier -> remove it first",
        replace(S0, phase=r.Phase.START),
        obs((new(1, EXITED), new(2))),
        r.RemoveNew,
    ),
    ("stop-first stops old first", r.RolloutState(cfg(strategy="stop-first")), obs(), r.StopOld),
    (
        "all running -> enter gate and observe",
        replace(S0, phase=r.Phase.START),
        obs((new(1), new(2))),
        r.Observe,
    ),
    ("gate: probes pass once -> observe again", GATING, obs((new(1), new(2))), r.Observe),
    (
        "gate: threshold reached -> publish aliases first",
        replace(GATING, passes={"new1": 1, "new2": 1}),
        obs((new(1), new(2))),
        r.Publish,
    ),
    (
        "gate: passed again after publishing -> cut over",
        replace(GATING, passes={"new1": 1, "new2": 1}, published=True),
        obs((new(1), new(2))),
        r.CutOver,
    ),
    ("gate: a container exited -> abort", GATING, obs((new(1), new(2, EXITED))), r.Abort),
    ("gate: a container restarted -> abort", GATING, obs((new(1), new(2, restarts=1))), r.Abort),
    (
        "gate: deadline passed -> abort",
        replace(GATING, deadline=-1.0),
        obs((new(1), new(2, probe=False))),
        r.Abort,
    ),
    (
        "retire: old containers remain -> retire",
        replace(S0, phase=r.Phase.RETIRE),
        obs((new(1), new(2))),
        r.Retire,
    ),
    (
        "retire: nothing old -> finish",
        replace(S0, phase=r.Phase.RETIRE),
        obs((new(1), new(2)), old=()),
        r.Finish,
    ),
    (
        "bake: new fails -> switch back",
        replace(S0, phase=r.Phase.BAKE, bake_until=99.0),
        obs((new(1), new(2, EXITED))),
        r.SwitchBack,
    ),
    (
        "bake: over -> retire",
        replace(S0, phase=r.Phase.BAKE, bake_until=-1.0),
        obs((new(1), new(2))),
        r.Retire,
    ),
    (
        "scale down -> retire extras",
        r.RolloutState(cfg(kind=ActionKind.SCALE_DOWN, replicas=1)),
        obs((new(1), new(2)), old=()),
        r.Retire,
    ),
]


@pytest.mark.parametrize(("name", "state", "o", "step_type"), TABLE, ids=[t[0] for t in TABLE])
def test_next_step_table(
    name: str, state: r.RolloutState, o: r.RolloutObs, step_type: type
) -> None:
    _, step = r.next_step(state, o, now=0.0)
    assert isinstance(step, step_type), step


def test_create_asks_only_for_missing_numbers() -> None:
    _, step = r.next_step(S0, obs((new(2, CREATED),)), now=0.0)
    assert step == r.Create((1,))


def test_abort_with_old_removes_all_new_and_keeps_newest_failed() -> None:
    o = obs((new(1, created=1.0), new(2, EXITED, created=2.0)))
    s, step = r.next_step(GATING, o, now=0.0)
    assert isinstance(step, r.Abort)
    assert step.keep == "new2" and step.remove == ("new1",) and step.quarantine
    assert "exited" in step.reason
    _, fin = r.next_step(s, obs(()), now=0.0)
    assert fin == r.Finish("rolled_back", step.reason)


def test_failed_create_from_nothing_is_failed_not_rolled_back() -> None:
    s = replace(GATING, cfg=cfg(kind=ActionKind.CREATE))
    s, step = r.next_step(s, obs((new(1, EXITED), new(2)), old=()), now=0.0)
    assert isinstance(step, r.Abort)
    _, fin = r.next_step(s, obs((), old=()), now=0.0)
    assert isinstance(fin, r.Finish) and fin.outcome == "failed"


def test_stop_first_abort_restores_old_of_previous_revision_only() -> None:
    stopped = (
        container(V1, 1, state=EXITED),
        container(V2, 1, state=EXITED, cid="junk", revision="ffff0000"),
    )
    s = replace(GATING, cfg=cfg(strategy="stop-first", replicas=1))
    _, step = r.next_step(s, obs((new(1, EXITED),), old=stopped), now=0.0)
    assert isinstance(step, r.Abort)
    assert step.restore == (stopped[0].id,)


def test_pull_failure_finishes_failed() -> None:
    _, fin = r.next_step(S0, obs(), now=0.0, event=r.PullFailed("manifest unknown"))
    assert fin == r.Finish(r.Outcome.FAILED, "pull failed: manifest unknown")


def test_bake_without_old_containers_is_skipped() -> None:
    s = replace(
        GATING,
        cfg=cfg(bake=5.0, kind=ActionKind.CREATE),
        passes={"new1": 1, "new2": 1},
        published=True,
    )
    s2, step = r.next_step(s, obs((new(1), new(2)), old=()), now=0.0)
    assert isinstance(step, r.CutOver) and s2.phase is r.Phase.RETIRE


def test_bake_with_old_containers_bakes() -> None:
    s = replace(GATING, cfg=cfg(bake=5.0), passes={"new1": 1, "new2": 1}, published=True)
    s2, step = r.next_step(s, obs((new(1), new(2))), now=1.0)
    assert isinstance(step, r.CutOver) and s2.phase is r.Phase.BAKE and s2.bake_until == 6.0


RULES = GateRules(docker_health=True, http_probe=True, threshold=2, deadline=10.0)


@pytest.mark.parametrize(
    ("health", "probe", "streak_after"),
    [("healthy", True, 1), ("starting", True, 1), ("healthy", False, 0), (None, True, 1)],
)
def test_the_streak_counts_probe_passes_and_the_gate_needs_docker_healthy_too(
    health: str | None, probe: bool, streak_after: int
) -> None:
    gi = GateInput("c", "c", RUN, health, None, 0, probe)
    v = evaluate(RULES, [gi], {"c": 1}, now=0.0)
    assert v.passes["c"] == (2 if streak_after else 0) and not v.failed
    assert v.passed is (health == "healthy" and probe)


def test_a_probe_streak_built_while_docker_says_starting_passes_once_docker_says_healthy() -> None:
    starting = GateInput("c", "c", RUN, "starting", None, 0, True)
    v = evaluate(RULES, [starting], {}, now=0.0)
    v = evaluate(RULES, [starting], v.passes, now=0.0)
    v = evaluate(RULES, [starting], v.passes, now=0.0)
    assert not v.passed and v.passes["c"] == 3  # Docker's verdict is still missing
    v = evaluate(RULES, [replace(starting, health="healthy")], v.passes, now=0.0)
    assert v.passed  # at once: no second observation of Docker's healthy
    late = evaluate(RULES, [starting], v.passes, now=10.0)
    assert late.failed and "docker health starting" in late.reason


def test_without_a_probe_the_streak_counts_docker_healthy_observations() -> None:
    rules = replace(RULES, http_probe=False)
    starting = GateInput("c", "c", RUN, "starting", None, 0, None)
    healthy = replace(starting, health="healthy")
    v = evaluate(rules, [starting], {}, now=0.0)
    v = evaluate(rules, [healthy], v.passes, now=0.0)
    assert not v.passed and v.passes["c"] == 1
    assert evaluate(rules, [healthy], v.passes, now=0.0).passed


def test_gate_consecutive_passes_reset_on_failure() -> None:
    ok = GateInput("c", "c", RUN, "healthy", None, 0, True)
    bad = replace(ok, probe_ok=False)
    v = evaluate(RULES, [ok], {}, now=0.0)
    v = evaluate(RULES, [bad], v.passes, now=0.0)
    assert v.passes["c"] == 0
    v = evaluate(RULES, [ok], v.passes, now=0.0)
    v = evaluate(RULES, [ok], v.passes, now=0.0)
    assert v.passed


def test_gate_unhealthy_docker_fails_fast() -> None:
    gi = GateInput("c", "c", RUN, "unhealthy", None, 0, True)
    v = evaluate(RULES, [gi], {}, now=0.0)
    assert v.failed and "unhealthy" in v.reason


def test_after_publish_one_more_pass_is_needed() -> None:
    s = replace(GATING, passes={"new1": 1, "new2": 1})
    s2, step = r.next_step(s, obs((new(1), new(2))), now=0.0)
    assert step == r.Publish(("new1", "new2")) and s2.published
    assert s2.passes == {"new1": 1, "new2": 1}  # threshold - 1: one pass after reconnect
    _, step = r.next_step(s2, obs((new(1), new(2, probe=False))), now=0.0)
    assert isinstance(step, r.Observe)  # not reachable yet after the reconnect
    _, step = r.next_step(s2, obs((new(1), new(2))), now=0.0)
    assert isinstance(step, r.CutOver)


def test_gate_honours_a_healthcheck_baked_into_the_image() -> None:
    rules = GateRules(docker_health=False, http_probe=False, threshold=1, deadline=10.0)
    starting = GateInput("c", "c", RUN, "starting", None, 0, None)
    assert not evaluate(rules, [starting], {}, now=0.0).passed
    healthy = replace(starting, health="healthy")
    assert evaluate(rules, [healthy], {}, now=0.0).passed
    unhealthy = replace(starting, health="unhealthy")
    assert evaluate(rules, [unhealthy], {}, now=0.0).failed


def test_a_container_of_this_rollout_dying_at_start_fails_instead_of_looping() -> None:
    s = replace(S0, phase=r.Phase.START, started_at=100.0)
    _, step = r.next_step(s, obs((new(1, EXITED, created=100.0), new(2))), now=100.5)
    assert isinstance(step, r.Abort) and "exited" in step.reason and step.quarantine


def test_start_has_a_deadline() -> None:
    s = replace(S0, phase=r.Phase.START, started_at=100.0)
    _, step = r.next_step(s, obs((new(1, CREATED, created=100.0),)), now=200.0)
    assert isinstance(step, r.Abort) and "did not start" in step.reason


def test_serving_containers_are_neither_gated_nor_removed() -> None:
    # scale-up 1 -> 2: #1 already serves; the new #2 crashes
    s = replace(
        GATING, cfg=cfg(kind=ActionKind.SCALE_UP, serving=frozenset({"new1"})), passes={"new1": 0}
    )
    _, step = r.next_step(s, obs((new(1), new(2, EXITED, created=5.0)), old=()), now=0.0)
    assert isinstance(step, r.Abort)
    assert "new1" not in step.remove and step.keep != "new1"


def _scale_up_gate(*, started_at: float = 100.0) -> r.RolloutState:
    """Scale-up 1 -> 2 with nothing routed: #1 ran before this rollout, #2 is its own."""
    c = cfg(kind=ActionKind.SCALE_UP, serving=frozenset())
    s = replace(GATING, cfg=c, started_at=started_at, deadline=started_at + 10)
    return replace(s, published=True)  # no DNS gating in this stack


def test_a_replica_from_before_the_rollout_is_judged_by_its_restarts_since() -> None:
    # #1 restarted once long before (Swarm rescheduled its task after a node loss) and
    # serves again: the history is not this scale-up's evidence
    s = _scale_up_gate()
    before, mine = new(1, created=50.0, restarts=1), new(2, created=100.0)
    s, step = r.next_step(s, obs((before, mine), old=()), now=100.5)
    assert isinstance(step, r.Observe), step
    s, step = r.next_step(s, obs((before, mine), old=()), now=100.8)
    assert isinstance(step, r.CutOver), step
    # ...but a restart while this rollout watches it still counts
    s = _scale_up_gate()
    s, _ = r.next_step(s, obs((before, mine), old=()), now=100.5)
    again = new(1, created=50.0, restarts=2)
    _, step = r.next_step(s, obs((again, mine), old=()), now=100.8)
    assert isinstance(step, r.Abort) and "restart count 1" in step.reason


def test_a_container_this_rollout_created_counts_every_restart() -> None:
    s = _scale_up_gate()
    mine = (new(1, created=100.0, restarts=1), new(2, created=100.0))
    _, step = r.next_step(s, obs(mine, old=()), now=100.5)
    assert isinstance(step, r.Abort) and "restarted" in step.reason


@pytest.mark.parametrize(
    ("kind", "quarantined"),
    [(ActionKind.SCALE_UP, False), (ActionKind.CREATE, True), (ActionKind.REPLACE, True)],
)
def test_only_a_new_revision_is_quarantined_when_its_gate_fails(
    kind: ActionKind, quarantined: bool
) -> None:
    # a scale-up adds replicas of a revision that took: retried with backoff, not quarantined
    s = replace(GATING, cfg=cfg(kind=kind), started_at=100.0, deadline=110.0)
    old = OLD if kind is ActionKind.REPLACE else ()
    _, step = r.next_step(s, obs((new(1, EXITED, created=100.0),), old=old), now=100.5)
    assert isinstance(step, r.Abort) and step.quarantine is quarantined
    outcome = r.Outcome.ROLLED_BACK if old else r.Outcome.FAILED
    assert next_pass(outcome, quarantined=step.quarantine) is (
        NextPass.WAIT if quarantined else NextPass.BACKOFF
    )


def test_supersede_keeps_serving_containers() -> None:
    s = replace(GATING, cfg=cfg(kind=ActionKind.SCALE_UP, serving=frozenset({"new1"})))
    done, step = r.next_step(s, obs((new(1), new(2)), old=()), now=0.0, event=r.Cancelled())
    assert isinstance(step, r.Abort) and step.remove == ("new2",) and not step.quarantine
    assert done.outcome is r.Outcome.SUPERSEDED


def test_resumed_after_cut_over_goes_straight_to_cut_over_again() -> None:
    s = replace(GATING, cfg=cfg(serving=frozenset({"new1", "new2"})), published=True)
    _, step = r.next_step(s, obs((new(1, probe=False), new(2, probe=False))), now=0.0)
    assert isinstance(step, r.CutOver) and set(step.new_ids) == {"new1", "new2"}


def test_bake_failure_without_old_containers_keeps_the_new_ones() -> None:
    s = replace(S0, phase=r.Phase.BAKE, bake_until=99.0, cut_over=True)
    s2, step = r.next_step(s, obs((new(1), new(2, EXITED)), old=()), now=0.0)
    assert isinstance(step, r.Abort) and step.remove == () and step.keep is None
    _, fin = r.next_step(s2, obs((new(1),), old=()), now=0.0)
    assert isinstance(fin, r.Finish) and fin.outcome == "failed"


# ---- the machine is closed ---------------------------------------------------------------


def test_every_phase_has_a_handler() -> None:
    assert set(r._HANDLERS) == set(r.Phase)


@pytest.mark.parametrize(
    ("event", "phase", "step_type", "quarantine"),
    [
        (r.StartFailed("port is already allocated"), r.Phase.DONE, r.Abort, True),
        (r.CutoverFailed("nginx -t failed"), r.Phase.DONE, r.Abort, False),
        (r.SwitchBackFailed("nginx down"), r.Phase.DONE, r.Abort, True),
        (r.Cancelled(), r.Phase.DONE, r.Abort, False),
    ],
)
def test_events_are_transitions_of_the_machine(
    event: r.Event, phase: r.Phase, step_type: type, quarantine: bool
) -> None:
    """What performing a step reported is fed to next_step; the shell makes no transition."""
    s = replace(GATING, passes={"new1": 1, "new2": 1})
    s2, step = r.next_step(s, obs((new(1), new(2))), now=0.0, event=event)
    assert s2.phase is phase and isinstance(step, step_type)
    assert isinstance(step, r.Abort) and step.quarantine is quarantine


def test_created_event_records_whether_aliases_were_given() -> None:
    s = replace(S0, phase=r.Phase.START, started_at=1.0)
    s2, _ = r.next_step(s, obs((new(1), new(2))), now=1.0, event=r.Created(resolvable=True))
    assert s2.published


def test_cancel_after_the_cut_over_lets_the_rollout_finish() -> None:
    s = replace(S0, phase=r.Phase.RETIRE, cut_over=True)
    s2, step = r.next_step(s, obs((new(1), new(2))), now=0.0, event=r.Cancelled())
    assert isinstance(step, r.Retire) and s2.outcome is None


@pytest.mark.parametrize(
    ("outcome", "quarantined", "expected"),
    [
        (r.Outcome.SUPERSEDED, False, NextPass.NOW),
        (r.Outcome.ROLLED_BACK, False, NextPass.BACKOFF),  # nginx or a pull: not the revision
        (r.Outcome.FAILED, False, NextPass.BACKOFF),
        (r.Outcome.ROLLED_BACK, True, NextPass.WAIT),  # quarantined: terminal until a change
        (r.Outcome.FAILED, True, NextPass.WAIT),
        (r.Outcome.SUCCEEDED, False, NextPass.WAIT),
        (r.Outcome.UNCHANGED, False, NextPass.WAIT),
        (r.Outcome.QUARANTINED, True, NextPass.WAIT),
    ],
)
def test_next_pass_policy(outcome: r.Outcome, quarantined: bool, expected: NextPass) -> None:
    assert next_pass(outcome, quarantined=quarantined) is expected


def test_a_service_that_builds_builds_a_missing_image() -> None:
    s = replace(S0, cfg=cfg(build=True))
    _, step = r.next_step(s, obs(image=False), now=0.0)
    assert step == r.Build("example/api:2")
    _, step = r.next_step(s, obs(image=True), now=0.0)  # present: no build
    assert not isinstance(step, r.Build | r.Pull)


def test_a_service_with_image_and_build_pulls_first_and_builds_when_that_fails() -> None:
    s = replace(S0, cfg=cfg(build=True, pull_first=True))
    s, step = r.next_step(s, obs(image=False), now=0.0)
    assert step == r.Pull("example/api:2")
    s, step = r.next_step(s, obs(image=False), now=0.0, event=r.PullFailed("not found"))
    assert step == r.Build("example/api:2")
    _, fin = r.next_step(s, obs(image=False), now=0.0, event=r.PullFailed("again"))
    assert fin == r.Finish(r.Outcome.FAILED, "pull failed: again")  # no second build


def test_a_failed_build_touches_nothing_and_quarantines_the_tag() -> None:
    s = replace(S0, cfg=cfg(build=True))
    s, step = r.next_step(s, obs(image=False), now=0.0, event=r.BuildFailed("exit 1\ntail"))
    assert step == r.Abort((), None, (), True, "build failed: exit 1\ntail")
    _, fin = r.next_step(s, obs(image=False), now=0.0)
    assert isinstance(fin, r.Finish) and fin.outcome is r.Outcome.FAILED
