"""The rollout machine through a canary (CANARY and WITHDRAW, core/canary.py), driven with
a fake clock: each test feeds observations and checks the exact step asked for."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.core import rollout as r
from controller.core.analysis import Traffic
from controller.core.gate import GateInput
from controller.core.model import AnalysisSpec, CanarySpec, ContainerState
from controller.core.plan import ActionKind
from tests.unit.builders import container, target

RUN, EXITED = ContainerState.RUNNING, ContainerState.EXITED
V1 = target(tag="1", replicas=2)
OLD = (container(V1, 1), container(V1, 2))
OLD_IDS = tuple(c.id for c in OLD)
NEW_IDS = ("new1", "new2")
SPEC = CanarySpec(
    steps=(10, 50), interval=5, analysis=AnalysisSpec(min_requests=20, success_rate=95)
)
DEADLINE = 30.0
T0 = 100.0  # when the gate passes


def cfg(**kw: object) -> r.RolloutConfig:
    base = r.RolloutConfig(
        kind=ActionKind.REPLACE,
        strategy="start-first",
        replicas=2,
        image="example/api:2",
        progress_deadline=DEADLINE,
        probe_interval=0.25,
        threshold=2,
        docker_health=False,
        http_probe=True,
        bake=0.0,
        from_revision=V1.revision,
        canary=SPEC,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def new(
    n: int,
    state: ContainerState = RUN,
    *,
    probe: bool | None = True,
    health: str | None = None,
    restarts: int = 0,
) -> r.NewObs:
    gi = GateInput(
        f"new{n}", f"api-new-{n}", state, health, 1 if state is EXITED else None, restarts, probe
    )
    return r.NewObs(n, float(n), gi)  # new2 is the newest


def tr(ok: int, bad: int = 0) -> Traffic:
    return Traffic({"2xx": ok, "5xx": bad} if bad else {"2xx": ok})


def obs(
    new_: tuple[r.NewObs, ...] = (new(1), new(2)),
    *,
    old: tuple[object, ...] = OLD,
    traffic: tuple[Traffic, Traffic] | None = None,
    command: str | None = None,
) -> r.RolloutObs:
    return r.RolloutObs(True, new_, old, traffic=traffic, command=command)  # type: ignore[arg-type]


def seen(new_ok: int, new_bad: int = 0, stable_ok: int = 10_000) -> r.RolloutObs:
    """An observation with nginx's counters (cumulative since nginx started)."""
    return obs(traffic=(tr(new_ok, new_bad), tr(stable_ok)))


def gating(c: r.RolloutConfig | None = None) -> r.RolloutState:
    """At the gate, one pass short of the threshold, aliases already given."""
    return r.RolloutState(
        c or cfg(),
        phase=r.Phase.GATE,
        deadline=T0 + DEADLINE,
        passes={"new1": 1, "new2": 1},
        published=True,
        started_at=T0 - 10,
    )


def in_canary(c: r.RolloutConfig | None = None) -> r.RolloutState:
    s, step = r.next_step(gating(c), obs(), T0)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 10)
    assert s.phase is r.Phase.CANARY and s.canary_step == 0 and s.step_started == T0
    return s


def withdrawn_by_analysis() -> r.RolloutState:
    s = in_canary()
    s, step = r.next_step(s, seen(100), T0 + 1)
    assert isinstance(step, r.Observe)
    s, step = r.next_step(s, seen(116, 4), T0 + 2)  # 1 in 5 answered 5xx
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.phase is r.Phase.WITHDRAW
    return s


def assert_observe(step: r.Step) -> None:
    assert step == r.Observe(1.0, probe=True)


# ---- the happy path --------------------------------------------------------------------------


def test_steps_then_cut_over_then_retire() -> None:
    s = in_canary()
    # nothing counted yet: the step holds past its interval
    s, step = r.next_step(s, obs(), T0 + 6)
    assert_observe(step)
    s, step = r.next_step(s, seen(100), T0 + 7)  # the window opens here
    assert_observe(step)
    s, step = r.next_step(s, seen(110), T0 + 8)  # 10 requests: not enough to judge
    assert_observe(step)
    assert not s.measured and s.measurements == 0
    s, step = r.next_step(s, seen(125), T0 + 9)  # 25 good: passed, interval over
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 50)
    assert s.phase is r.Phase.CANARY and s.canary_step == 1 and s.step_started == T0 + 9
    assert s.measurements == 1 and not s.measured and s.window is None
    assert s.last_measurement is not None and s.last_measurement.result == "pass"
    # second step: measured early, then held until its interval is over
    s, step = r.next_step(s, seen(125), T0 + 10)
    assert_observe(step)
    s, step = r.next_step(s, seen(160), T0 + 11)
    assert_observe(step)
    assert s.measured
    s, step = r.next_step(s, seen(160), T0 + 13.9)
    assert_observe(step)
    s, step = r.next_step(s, seen(160), T0 + 14)
    assert step == r.CutOver(NEW_IDS, OLD_IDS)
    assert s.phase is r.Phase.RETIRE and s.cut_over
    s, step = r.next_step(s, obs(), T0 + 15)
    assert step == r.Retire(OLD_IDS)
    s, step = r.next_step(s, obs(old=()), T0 + 16)
    assert step == r.Finish(r.Outcome.SUCCEEDED, "2 replica(s) healthy")
    assert s.outcome is None and s.failure == ""


def test_step_held_until_interval_even_when_measured() -> None:
    s = in_canary()
    s, _ = r.next_step(s, seen(0), T0 + 1)
    s, step = r.next_step(s, seen(50), T0 + 2)
    assert_observe(step)
    assert s.measured
    s, step = r.next_step(s, seen(50), T0 + 4.9)
    assert_observe(step)
    s, step = r.next_step(s, seen(50), T0 + 5)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 50)


def test_without_analysis_the_interval_alone_advances() -> None:
    c = cfg(canary=CanarySpec(steps=(10, 50), interval=5))
    s = in_canary(c)
    s, step = r.next_step(s, obs(), T0 + 4)
    assert_observe(step)
    s, step = r.next_step(s, obs(), T0 + 5)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 50)
    s, step = r.next_step(s, obs(), T0 + 10)
    assert step == r.CutOver(NEW_IDS, OLD_IDS)


def test_sticky_canary_asks_for_sticky_weights() -> None:
    c = cfg(canary=CanarySpec(steps=(25,), interval=0, sticky=True))
    s, step = r.next_step(gating(c), obs(), T0)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 25, True)
    s, step = r.next_step(s, obs(command="abort"), T0 + 1)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0, True)


def test_bake_after_the_canary_measures_and_then_retires() -> None:
    s = in_canary(cfg(bake=20.0))
    s, step = r.next_step(s, obs(command="promote"), T0 + 1)
    assert step == r.CutOver(NEW_IDS, OLD_IDS)
    assert s.phase is r.Phase.BAKE and s.bake_until == T0 + 21 and s.window is None
    s, step = r.next_step(s, seen(1000), T0 + 2)
    assert isinstance(step, r.Observe)
    s, step = r.next_step(s, seen(1300), T0 + 3)  # 300 good requests at 100 %
    assert isinstance(step, r.Observe)
    assert s.measurements == 1 and s.failures == 0
    s, step = r.next_step(s, seen(1900), T0 + 21)
    assert step == r.Retire(OLD_IDS)
    assert s.phase is r.Phase.RETIRE


def test_a_failing_window_during_bake_switches_back() -> None:
    s = in_canary(cfg(bake=20.0))
    s, step = r.next_step(s, obs(command="promote"), T0 + 1)
    assert isinstance(step, r.CutOver) and s.phase is r.Phase.BAKE
    s, _ = r.next_step(s, seen(1000), T0 + 2)
    s, step = r.next_step(s, seen(1090, 10), T0 + 3)  # 90 %
    assert step == r.SwitchBack(OLD_IDS, NEW_IDS)
    assert s.phase is r.Phase.ABORT and not s.cut_over
    assert "analysis failed during bake" in s.failure and "success_rate" in s.failure
    assert "90.00%" in s.failure
    s, step = r.next_step(s, obs(), T0 + 4)
    assert step == r.Abort(("new1",), "new2", (), True, s.failure)
    assert s.outcome is r.Outcome.ROLLED_BACK


# ---- withdraw ---------------------------------------------------------------------------------


def test_a_failing_window_withdraws_then_aborts_and_quarantines() -> None:
    s = withdrawn_by_analysis()
    assert "success_rate" in s.failure and "80.00%" in s.failure and "4 of 20" in s.failure
    assert "at 10%" in s.failure
    assert not s.infra_failure
    s, step = r.next_step(s, obs(), T0 + 3)
    assert step == r.Abort(("new1",), "new2", (), True, s.failure)  # new2 kept for its logs
    assert s.phase is r.Phase.DONE and s.outcome is r.Outcome.ROLLED_BACK
    s, step = r.next_step(s, obs((new(2, EXITED),)), T0 + 4)
    assert step == r.Finish(r.Outcome.ROLLED_BACK, s.failure)


def test_a_failing_window_at_the_second_step_withdraws() -> None:
    s = in_canary()
    s, _ = r.next_step(s, seen(0), T0 + 1)
    s, step = r.next_step(s, seen(30), T0 + 5)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 50)
    s, _ = r.next_step(s, seen(30), T0 + 6)
    s, step = r.next_step(s, seen(40, 20), T0 + 7)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert "at 50%" in s.failure and "33.33% (20 of 30 failed)" in s.failure


def test_failure_limit_allows_one_bad_window() -> None:
    spec = replace(SPEC, analysis=AnalysisSpec(min_requests=20, success_rate=95, failure_limit=2))
    s = in_canary(cfg(canary=spec))
    s, _ = r.next_step(s, seen(0), T0 + 1)
    s, step = r.next_step(s, seen(10, 10), T0 + 2)
    assert_observe(step)
    assert s.failures == 1
    s, step = r.next_step(s, seen(20, 20), T0 + 3)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)


def test_inconclusive_past_the_progress_deadline_withdraws() -> None:
    s = in_canary()
    s, _ = r.next_step(s, seen(100), T0 + 1)
    s, step = r.next_step(s, seen(105), T0 + 10)
    assert_observe(step)
    s, step = r.next_step(s, seen(105), T0 + DEADLINE - 0.1)
    assert_observe(step)
    s, step = r.next_step(s, seen(105), T0 + DEADLINE)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.phase is r.Phase.WITHDRAW
    assert "inconclusive" in s.failure and "5 request(s)" in s.failure
    s, step = r.next_step(s, obs(), T0 + DEADLINE + 1)
    assert isinstance(step, r.Abort) and step.quarantine
    assert s.outcome is r.Outcome.ROLLED_BACK


def test_no_counters_at_all_past_the_progress_deadline_withdraws() -> None:
    s = in_canary()
    s, step = r.next_step(s, obs(), T0 + DEADLINE)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert "inconclusive" in s.failure and "no traffic counted" in s.failure


# ---- operator commands ---------------------------------------------------------------------


def test_abort_command_withdraws() -> None:
    s = in_canary()
    s, step = r.next_step(s, obs(command="abort"), T0 + 1)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.phase is r.Phase.WITHDRAW and "operator" in s.failure
    s, step = r.next_step(s, obs(), T0 + 2)
    assert isinstance(step, r.Abort) and set(step.remove) | {step.keep} == set(NEW_IDS)
    assert s.outcome is r.Outcome.ROLLED_BACK


def test_promote_command_cuts_over_at_once() -> None:
    s = in_canary()
    s, step = r.next_step(s, obs(command="promote"), T0 + 1)
    assert step == r.CutOver(NEW_IDS, OLD_IDS)
    assert s.phase is r.Phase.RETIRE and s.cut_over


def test_pause_holds_past_the_interval_and_resume_advances() -> None:
    s = in_canary()
    s, step = r.next_step(s, seen(0, stable_ok=0), T0 + 1)
    assert_observe(step)
    s, step = r.next_step(s, obs(traffic=(tr(0), tr(0)), command="pause"), T0 + 2)
    assert_observe(step)
    assert s.paused
    s, step = r.next_step(s, seen(50), T0 + 6)  # passed, interval over: still held
    assert_observe(step)
    assert s.measured and s.paused
    s, step = r.next_step(s, seen(50), T0 + DEADLINE + 60)  # nor withdrawn while paused
    assert_observe(step)
    s, step = r.next_step(s, obs(traffic=(tr(50), tr(10_000)), command="resume"), T0 + 100)
    assert_observe(step)  # resumed: the step's hold starts again
    assert not s.paused
    s, step = r.next_step(s, obs(traffic=(tr(50), tr(10_000))), T0 + 100 + 5)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 50)


def test_promote_while_paused_cuts_over() -> None:
    s = in_canary()
    s, _ = r.next_step(s, obs(command="pause"), T0 + 1)
    s, step = r.next_step(s, obs(command="promote"), T0 + 2)
    assert step == r.CutOver(NEW_IDS, OLD_IDS) and not s.paused


def test_a_failing_window_while_paused_still_withdraws() -> None:
    s = in_canary()
    s, _ = r.next_step(s, obs(traffic=(tr(0), tr(0)), command="pause"), T0 + 1)
    s, step = r.next_step(s, seen(10, 10), T0 + 2)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)


# ---- health of the new containers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("new_", "why"),
    [
        ((new(1), new(2, EXITED)), "api-new-2 exited with code 1"),
        ((new(1), new(2, restarts=1)), "restarted"),
        ((new(1, health="unhealthy"), new(2)), "unhealthy"),
        ((new(1),), "a new container disappeared"),
    ],
)
def test_a_new_container_turning_bad_withdraws(new_: tuple[r.NewObs, ...], why: str) -> None:
    s = in_canary()
    s, _ = r.next_step(s, seen(0), T0 + 1)
    s, step = r.next_step(s, obs(new_, traffic=(tr(30), tr(10_000))), T0 + 6)  # would pass
    assert isinstance(step, r.SetWeight) and step.weight == 0
    assert s.phase is r.Phase.WITHDRAW and why in s.failure and "at 10%" in s.failure


def test_a_new_container_failing_its_probe_withdraws() -> None:
    s = in_canary()
    sick = (new(1), new(2, probe=False))
    step: r.Step = r.Observe(1.0, True)
    for i in range(1, 11):
        s, step = r.next_step(s, obs(sick, traffic=(tr(30 * i), tr(10_000))), T0 + i)
        if not isinstance(step, r.Observe):
            break
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.phase is r.Phase.WITHDRAW


# ---- events ----------------------------------------------------------------------------------


def test_weight_failed_during_canary_withdraws_without_quarantine() -> None:
    s = in_canary()
    s, step = r.next_step(s, obs(), T0 + 1, r.WeightFailed("nginx down"))
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.phase is r.Phase.WITHDRAW and s.infra_failure
    assert "canary weight failed: nginx down" in s.failure
    s, step = r.next_step(s, obs(), T0 + 2)
    assert step == r.Abort(("new1",), "new2", (), False, s.failure)
    assert s.outcome is r.Outcome.ROLLED_BACK
    _, step = r.next_step(s, obs(), T0 + 3)
    assert step == r.Finish(r.Outcome.ROLLED_BACK, s.failure)


def test_weight_failed_while_withdrawing_keeps_the_new_containers() -> None:
    s = withdrawn_by_analysis()
    first = s.failure
    s, step = r.next_step(s, obs(), T0 + 3, r.WeightFailed("nginx down"))
    assert isinstance(step, r.Abort)
    assert step.remove == () and step.keep is None and step.restore == ()
    assert step.quarantine  # the analysis blamed the revision
    assert s.phase is r.Phase.DONE and s.outcome is r.Outcome.FAILED
    assert first in s.failure and "keep serving" in s.failure and "nginx down" in s.failure
    _, step = r.next_step(s, obs(), T0 + 4)
    assert step == r.Finish(r.Outcome.FAILED, s.failure)


def test_weight_failed_twice_is_not_quarantined() -> None:
    s = in_canary()
    s, _ = r.next_step(s, obs(), T0 + 1, r.WeightFailed("nginx down"))
    s, step = r.next_step(s, obs(), T0 + 2, r.WeightFailed("still down"))
    assert step == r.Abort((), None, (), False, s.failure)
    assert s.outcome is r.Outcome.FAILED


def test_cancelled_during_canary_withdraws_then_supersedes() -> None:
    s = in_canary()
    s, step = r.next_step(s, obs(), T0 + 1, r.Cancelled())
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.phase is r.Phase.WITHDRAW and s.outcome is r.Outcome.SUPERSEDED
    s, step = r.next_step(s, obs(), T0 + 2)
    assert isinstance(step, r.Abort) and not step.quarantine
    # superseded, not failed: every new container goes (none is kept for its logs)
    assert step.keep is None and set(step.remove) == set(NEW_IDS) and step.restore == ()
    assert s.outcome is r.Outcome.SUPERSEDED
    _, step = r.next_step(s, obs(), T0 + 3)
    assert step == r.Finish(r.Outcome.SUPERSEDED, "superseded by a newer desired revision")


def test_cancelled_while_withdrawing_goes_on_withdrawing() -> None:
    s = withdrawn_by_analysis()
    s, step = r.next_step(s, obs(), T0 + 3, r.Cancelled())
    assert step == r.Abort(("new1",), "new2", (), True, s.failure)
    assert s.outcome is r.Outcome.ROLLED_BACK


# ---- where a canary starts, and where not ---------------------------------------------------


def test_resumed_after_a_restart_starts_the_canary_again() -> None:
    """The new containers were routed at 10 % when the controller died: they serve."""
    c = cfg(serving=frozenset(NEW_IDS))
    s = r.RolloutState(c)
    s, step = r.next_step(s, obs(), 200.0)  # PREPARE -> START -> GATE
    assert step == r.Observe(0.0, probe=True) and s.phase is r.Phase.GATE
    s, step = r.next_step(s, obs(), 200.0)  # "already serving": nothing to gate or publish
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 10)
    assert s.phase is r.Phase.CANARY and s.canary_step == 0
    s, _ = r.next_step(s, seen(100), 201.0)
    s, step = r.next_step(s, seen(110, 10), 202.0)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert s.withdrawn is False  # set when the abort follows
    s, step = r.next_step(s, obs(), 203.0)
    assert s.withdrawn
    # serving, yet withdrawn: they go like any failed release's
    assert step == r.Abort(("new1",), "new2", (), True, s.failure)


def test_no_canary_without_old_containers() -> None:
    c = cfg(kind=ActionKind.CREATE, from_revision=None)
    s, step = r.next_step(gating(c), obs(old=()), T0)
    assert step == r.CutOver(NEW_IDS, ())
    assert s.phase is r.Phase.RETIRE


def test_no_canary_when_the_old_containers_are_stopped() -> None:
    stopped = tuple(replace(c, state=EXITED) for c in OLD)
    _, step = r.next_step(gating(), obs(old=stopped), T0)
    assert step == r.CutOver(NEW_IDS, ())


# ---- nginx restarted mid-step ----------------------------------------------------------------


def test_a_counter_reset_is_no_negative_window_and_no_crash() -> None:
    s = in_canary()
    s, _ = r.next_step(s, obs(traffic=(tr(500), tr(5000))), T0 + 1)
    s, step = r.next_step(s, obs(traffic=(tr(3), tr(30))), T0 + 2)  # nginx restarted
    assert_observe(step)
    assert s.measurements == 0
    s, step = r.next_step(s, obs(traffic=(tr(30), tr(300))), T0 + 3)
    assert_observe(step)
    m = s.last_measurement
    assert m is not None and m.result == "pass"
    assert "100.00% (0 of 30 failed)" in m.reason
    s, step = r.next_step(s, obs(traffic=(tr(30), tr(300))), T0 + 5)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 50)


def test_a_counter_reset_with_failures_after_it_still_withdraws() -> None:
    s = in_canary()
    s, _ = r.next_step(s, obs(traffic=(tr(500), tr(5000))), T0 + 1)
    s, step = r.next_step(s, obs(traffic=(tr(10, 10), tr(30))), T0 + 2)
    assert step == r.SetWeight(NEW_IDS, OLD_IDS, 0)
    assert "50.00% (10 of 20 failed)" in s.failure


def test_after_a_reset_the_window_counts_from_the_restart() -> None:
    s = in_canary()
    s, _ = r.next_step(s, obs(traffic=(tr(40), tr(400))), T0 + 1)  # the window opens
    s, step = r.next_step(s, obs(traffic=(tr(10), tr(100))), T0 + 2)  # nginx restarted
    assert_observe(step)
    s, step = r.next_step(s, obs(traffic=(tr(59, 2), tr(500))), T0 + 3)
    assert_observe(step)
    assert s.measured
