"""The canary phase of the rollout machine (pure): weights step by step, each judged.

After the gate, a service with `x-berth.canary` does not cut over at once: the new
containers get `steps[0]` % of the requests beside the old ones, then the next step, each
held at least `interval` and (with an analysis) until one measurement of its own traffic
passed; then the machine cuts over to 100 % as usual, and the bake goes on measuring.

A failed analysis (or a new container that turns unhealthy, or an operator's abort)
withdraws the release: weight 0 at once (the new peers drain), then the abort removes the
new containers and quarantines the revision. Too few requests to judge wait, up to
`progress_deadline` per step, then withdraw too. A daemon that restarts mid-canary finds
the new containers serving beside the old ones and starts the steps again from the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from controller.core.analysis import Measurement, Traffic, measure
from controller.core.gate import GateRules, evaluate
from controller.core.outcome import Outcome
from controller.core.rollout_state import Phase, RolloutObs, RolloutState
from controller.core.rollout_steps import Abort, Observe, SetWeight, Step

Next = Callable[["RolloutState", "RolloutObs", float], tuple["RolloutState", Step]]
OBSERVE_EVERY = 1.0  # seconds between looks at the canary's traffic


def _ids(obs: RolloutObs, replicas: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    new = tuple(n.gate.cid for n in sorted(obs.new, key=lambda n: n.number) if n.number <= replicas)
    old = tuple(c.id for c in obs.old if c.running)
    return new, old


def begin(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    """The gate passed: the first step's weight."""
    spec = s.cfg.canary
    assert spec is not None
    new, old = _ids(obs, s.cfg.replicas)
    s = _at_step(replace(s, phase=Phase.CANARY), 0, now)
    return s, SetWeight(new, old, spec.steps[0], spec.sticky)


def _at_step(s: RolloutState, index: int, now: float) -> RolloutState:
    return replace(s, canary_step=index, step_started=now, window=None, measured=False, failures=0)


def withdraw(s: RolloutState, obs: RolloutObs, reason: str) -> tuple[RolloutState, Step]:
    """Weight 0 for the new revision at once; the abort follows (see `after_withdraw`)."""
    new, old = _ids(obs, s.cfg.replicas)
    sticky = bool(s.cfg.canary and s.cfg.canary.sticky)
    return replace(s, phase=Phase.WITHDRAW, failure=reason), SetWeight(new, old, 0, sticky)


def after_withdraw(
    s: RolloutState, obs: RolloutObs, now: float, abort: Next
) -> tuple[RolloutState, Step]:
    """The new revision has no traffic any more: remove it as any failed release is."""
    return abort(replace(s, phase=Phase.ABORT, withdrawn=True), obs, now)


def weight_failed(s: RolloutState, obs: RolloutObs, reason: str) -> tuple[RolloutState, Step]:
    """nginx did not take a weight. Before withdrawing: try weight 0. While withdrawing:
    the new containers may still get requests, so they stay (and keep serving)."""
    if s.phase is Phase.WITHDRAW:
        why = f"{s.failure}; and weight 0 failed too, the new containers keep serving: {reason}"
        done = replace(s, phase=Phase.DONE, outcome=Outcome.FAILED, failure=why)
        return done, Abort((), None, (), not s.infra_failure, why)
    return withdraw(replace(s, infra_failure=True), obs, f"canary weight failed: {reason}")


def analyse(s: RolloutState, obs: RolloutObs) -> tuple[RolloutState, Measurement | None]:
    """One more look at the new revision's traffic: a measurement when the window since the
    last one holds enough requests (the window then starts again)."""
    spec = s.cfg.canary.analysis if s.cfg.canary else None
    if spec is None or obs.traffic is None:
        return s, None
    if s.window is None:
        return replace(s, window=obs.traffic), None
    new, stable = obs.traffic
    if new.restarted_since(s.window[0]) or stable.restarted_since(s.window[1]):
        s = replace(s, window=(Traffic(), Traffic()))  # nginx restarted: count from zero
    assert s.window is not None
    m = measure(spec, new.since(s.window[0]), stable.since(s.window[1]), obs.queries)
    if m.result == "inconclusive" and m.checks[0].name == "min_requests":
        return s, m  # the window stays open
    s = replace(
        s,
        window=obs.traffic,
        measurements=s.measurements + 1,
        last_measurement=m,
        failures=s.failures + (m.result == "fail"),
        measured=s.measured or m.result == "pass",
    )
    return s, m


def _unhealthy(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, str | None]:
    """As during bake: a container that exits or turns unhealthy fails at once, a probe
    that fails max(2, threshold) times in a row fails too (s.passes counts those)."""
    rules = GateRules(s.cfg.docker_health, s.cfg.http_probe, 1, float("inf"))
    new = [n for n in obs.new if n.number <= s.cfg.replicas]
    if len(new) < s.cfg.replicas:
        return s, "a new container disappeared"
    failures = dict(s.passes)
    for n in new:
        verdict = evaluate(rules, [n.gate], {}, now=now)
        if verdict.failed:
            return s, verdict.reason
        failures[n.gate.cid] = 0 if verdict.passed else failures.get(n.gate.cid, 0) + 1
        if failures[n.gate.cid] >= max(2, s.cfg.threshold):
            return s, f"{n.gate.name} stopped passing its health check"
    return replace(s, passes=failures), None


def step(s: RolloutState, obs: RolloutObs, now: float, cut_over: Next) -> tuple[RolloutState, Step]:
    """One look at a canary step: operator commands, health, analysis, then hold, advance,
    cut over, or withdraw."""
    canary = s.cfg.canary
    assert canary is not None
    weight = canary.steps[s.canary_step]
    where = f"at {weight}%"
    if obs.command == "abort":
        return withdraw(s, obs, f"canary aborted {where} by an operator (berth abort)")
    if obs.command == "promote":
        return cut_over(replace(s, paused=False), obs, now)
    paused = obs.command == "pause" or (s.paused and obs.command != "resume")
    if s.paused and not paused:  # resumed: the step's hold (and deadline) start again
        s = replace(s, step_started=now)
    s = replace(s, paused=paused)
    s, sick = _unhealthy(s, obs, now)
    if sick is not None:
        return withdraw(s, obs, f"canary failed {where}: {sick}")
    s, m = analyse(s, obs)
    analysis = canary.analysis
    if analysis is not None and m is not None and s.failures >= analysis.failure_limit:
        return withdraw(s, obs, f"canary analysis failed {where}: {m.reason}")
    held = now - s.step_started
    if not paused and held >= canary.interval and (s.measured or analysis is None):
        if s.canary_step + 1 < len(canary.steps):
            new, old = _ids(obs, s.cfg.replicas)
            nxt = _at_step(s, s.canary_step + 1, now)
            return nxt, SetWeight(new, old, canary.steps[s.canary_step + 1], canary.sticky)
        return cut_over(s, obs, now)
    if analysis is not None and not s.measured and not paused and held >= s.cfg.progress_deadline:
        why = m.reason if m is not None else "no traffic counted"
        return withdraw(s, obs, f"canary analysis inconclusive {where} after {held:.0f}s: {why}")
    return s, Observe(OBSERVE_EVERY, probe=True)


def bake_check(s: RolloutState, obs: RolloutObs) -> tuple[RolloutState, str | None]:
    """During bake (100 %), the same analysis: the reason to switch back, or None."""
    s, m = analyse(s, obs)
    analysis = s.cfg.canary.analysis if s.cfg.canary else None
    if analysis is not None and m is not None and s.failures >= analysis.failure_limit:
        return s, f"analysis failed during bake: {m.reason}"
    return s, None
