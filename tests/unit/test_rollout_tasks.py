"""The rollout machine's release tasks and smoke checks (core/rollout.py): where they come
in the rollout, and what their failure leads to."""

from __future__ import annotations

from dataclasses import replace

from controller.core import rollout as r
from controller.core.outcome import Outcome
from controller.core.plan import ActionKind
from controller.core.task_options import ReleaseTask, SmokeCheck
from tests.unit.test_rollout import OLD, cfg, new, obs

MIGRATE = (ReleaseTask("migrate", ("migrate",)),)
BEFORE = SmokeCheck(name="items", path="/items", port=8000)
BAKE = SmokeCheck(name="late", path="/late", port=8000, when="bake")
BOTH = SmokeCheck(name="both", path="/both", port=8000, when="both")


def drive(
    state: r.RolloutState, o: r.RolloutObs, event: r.Event | None = None, now: float = 1.0
) -> tuple[r.RolloutState, r.Step]:
    return r.next_step(state, o, now, event)


def test_release_tasks_run_once_the_image_is_here_and_before_any_container() -> None:
    s = r.RolloutState(cfg(release=MIGRATE))
    s1, step = drive(s, obs(image=False))
    assert isinstance(step, r.Pull)  # the image first: the tasks run with it
    s2, step = drive(s1, obs())
    assert step == r.RunRelease(MIGRATE)
    _, step = drive(s2, obs())  # they passed (no event): the containers come next
    assert isinstance(step, r.Create)


def test_release_tasks_come_before_stop_first_stops_the_old_containers() -> None:
    s = r.RolloutState(cfg(release=MIGRATE, strategy="stop-first"))
    s1, step = drive(s, obs())
    assert isinstance(step, r.RunRelease)
    _, step = drive(s1, obs())
    assert isinstance(step, r.StopOld)


def test_a_failed_release_task_touches_nothing_and_quarantines() -> None:
    s, step = drive(r.RolloutState(cfg(release=MIGRATE)), obs())
    done, step = drive(s, obs(), r.ReleaseFailed("migrate: exited with code 3"))
    assert step == r.Abort((), None, (), True, "release task failed: migrate: exited with code 3")
    assert done.phase is r.Phase.DONE and done.outcome is Outcome.FAILED
    _, fin = drive(done, obs())
    assert fin == r.Finish(Outcome.FAILED, "release task failed: migrate: exited with code 3")


def test_a_scale_change_runs_no_release_task() -> None:
    action_cfg = cfg(kind=ActionKind.SCALE_UP, release=())  # config_for drops them
    _, step = drive(r.RolloutState(action_cfg), obs())
    assert isinstance(step, r.Create)


def gated(smoke: tuple[SmokeCheck, ...], **kw: object) -> r.RolloutState:
    return replace(
        r.RolloutState(cfg(smoke=smoke, **kw)), phase=r.Phase.GATE, deadline=10.0, published=True
    )


PASSING = obs((new(1), new(2)))


def test_smoke_checks_run_after_the_gate_and_before_the_dns_name_and_the_cut_over() -> None:
    s = replace(gated((BEFORE, BAKE), bake=5.0), published=False)
    s = replace(s, passes={"new1": 1, "new2": 1})
    s1, step = drive(s, PASSING)
    assert step == r.Smoke(("new1", "new2"), (BEFORE,), "before")
    s2, step = drive(s1, PASSING)  # passed: the DNS name, then the cut-over
    assert isinstance(step, r.Publish)
    s3, step = drive(s2, PASSING)
    assert isinstance(step, r.CutOver)
    assert s3.phase is r.Phase.BAKE


def test_a_failed_smoke_check_before_the_cut_over_rolls_back() -> None:
    s = replace(gated((BEFORE,)), passes={"new1": 1, "new2": 1})
    s1, step = drive(s, PASSING)
    assert isinstance(step, r.Smoke)
    s2, step = drive(s1, PASSING, r.SmokeFailed("items on new1: expected status 200, got 500"))
    assert isinstance(step, r.Abort) and step.quarantine
    assert step.reason == "smoke check failed: items on new1: expected status 200, got 500"
    assert s2.outcome is Outcome.ROLLED_BACK and not s2.cut_over


def test_bake_checks_run_once_after_the_cut_over_and_a_failure_switches_back() -> None:
    s = replace(gated((BAKE, BOTH), bake=5.0), passes={"new1": 1, "new2": 1})
    s1, step = drive(s, PASSING)
    assert step == r.Smoke(("new1", "new2"), (BOTH,), "before")
    s2, step = drive(s1, PASSING)
    assert isinstance(step, r.CutOver)
    s3, step = drive(s2, PASSING)
    assert step == r.Smoke(("new1", "new2"), (BAKE, BOTH), "bake")
    s4, step = drive(s3, PASSING, r.SmokeFailed("late on new2: body does not match"))
    assert step == r.SwitchBack(tuple(c.id for c in OLD), ("new1", "new2"))
    assert "smoke check failed: late on new2" in s4.failure and "(in the bake)" in s4.failure


def test_passing_bake_checks_leave_the_bake_to_its_timer() -> None:
    s = replace(gated((BAKE,), bake=5.0), passes={"new1": 1, "new2": 1})
    s1, step = drive(s, PASSING)
    assert isinstance(step, r.CutOver)
    s2, step = drive(s1, PASSING)
    assert isinstance(step, r.Smoke)
    s3, step = drive(s2, PASSING)
    assert isinstance(step, r.Observe) and s3.phase is r.Phase.BAKE
    _, step = drive(s3, PASSING, now=s3.bake_until + 0.1)
    assert isinstance(step, r.Retire)


def test_no_smoke_check_when_every_replica_serves_already() -> None:
    s = replace(gated((BEFORE,)), cfg=cfg(smoke=(BEFORE,), serving=frozenset({"new1", "new2"})))
    _, step = drive(s, PASSING)
    assert not isinstance(step, r.Smoke)
