"""The rollout state machine: `next_step(state, obs, now) -> (state, Step)`, pure.

The executor observes, asks for the next step, performs it, and repeats until a `Finish`.
Nothing here remembers more than an observation can restore: a controller that dies between
two steps starts a new rollout from the same observed containers and lands in the same
place (existing new containers are reused, finished steps are not repeated).

Phases (start-first): PREPARE (pull; release tasks, once per revision through the store)
-> START (create + start new; without service aliases where DNS gating applies) -> GATE
(smoke checks; ends in the cut-over step) -> [CANARY (core/canary.py)] -> [BAKE] -> RETIRE
(stop + remove old) -> DONE; a failed canary goes WITHDRAW (weight 0) -> ABORT. Parameters:
core/rollout_config.py. stop-first stops (keeps) the old containers in START; ABORT restores
them.

The machine is closed: what performing a step reports back (a pull failed, Docker refused a
container, nginx could not be switched, a newer revision arrived...) is an `Event` fed to
the next `next_step` call, never a transition made from the shell.
"""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from controller.core import canary
from controller.core.bake import bake_health
from controller.core.gate import GateRules, GateVerdict, evaluate
from controller.core.model import ContainerState
from controller.core.outcome import Outcome as Outcome
from controller.core.plan import ActionKind
from controller.core.rollout_config import RolloutConfig as RolloutConfig
from controller.core.rollout_config import config_for as config_for
from controller.core.rollout_config import publishes_host_ports as publishes_host_ports
from controller.core.rollout_inputs import created_by, this_rollouts_restarts
from controller.core.rollout_state import NewObs as NewObs
from controller.core.rollout_state import Phase as Phase
from controller.core.rollout_state import RolloutObs as RolloutObs
from controller.core.rollout_state import RolloutState as RolloutState
from controller.core.rollout_steps import (
    Abort,
    Build,
    BuildFailed,
    Cancelled,
    Create,
    Created,
    CutOver,
    CutoverFailed,
    Event,
    Finish,
    Observe,
    Publish,
    Pull,
    PullFailed,
    ReleaseFailed,
    RemoveNew,
    Retire,
    RunRelease,
    SetWeight,
    Smoke,
    SmokeFailed,
    Start,
    StartFailed,
    Step,
    StopOld,
    SwitchBack,
    SwitchBackFailed,
    WeightFailed,
)

# The machine's vocabulary is used through this module (`r.Abort`, `r.next_step`...).
__all__ = [
    "Abort",
    "Build",
    "BuildFailed",
    "Cancelled",
    "Create",
    "Created",
    "CutOver",
    "CutoverFailed",
    "Event",
    "Finish",
    "NewObs",
    "Observe",
    "Outcome",
    "Phase",
    "Publish",
    "Pull",
    "PullFailed",
    "ReleaseFailed",
    "RemoveNew",
    "Retire",
    "RolloutConfig",
    "RolloutObs",
    "RolloutState",
    "RunRelease",
    "SetWeight",
    "Smoke",
    "SmokeFailed",
    "Start",
    "StartFailed",
    "Step",
    "StopOld",
    "SwitchBack",
    "SwitchBackFailed",
    "WeightFailed",
    "config_for",
    "next_step",
    "publishes_host_ports",
]


def next_step(
    state: RolloutState, obs: RolloutObs, now: float, event: Event | None = None
) -> tuple[RolloutState, Step]:
    """The step to perform now; `event` is what performing the previous one reported."""
    state, obs = this_rollouts_restarts(state, obs)
    if event is not None:
        state, step = _on_event(state, obs, event)
        if step is not None:
            return state, step
    return _HANDLERS[state.phase](state, obs, now)


def _on_event(s: RolloutState, obs: RolloutObs, ev: Event) -> tuple[RolloutState, Step | None]:
    match ev:
        case PullFailed(reason):
            if s.cfg.build and not s.pull_failed:  # compose: an image it cannot pull, it builds
                return replace(s, pull_failed=True), Build(s.cfg.image)
            return replace(s, phase=Phase.DONE, failure=f"pull failed: {reason}"), None
        case BuildFailed(reason):
            why = f"build failed: {reason}"
            done = replace(s, phase=Phase.DONE, outcome=Outcome.FAILED, failure=why)
            return done, Abort((), None, (), True, why)  # nothing touched; quarantine the tag
        case ReleaseFailed(reason):
            why = f"release task failed: {reason}"
            done = replace(s, phase=Phase.DONE, outcome=Outcome.FAILED, failure=why)
            return done, Abort((), None, (), True, why)  # nothing started; quarantine the tag
        case SmokeFailed(reason):
            why = f"smoke check failed: {reason}"
            if s.phase is Phase.BAKE:
                return _switch_back(s, obs, f"{why} (in the bake)")
            return replace(s, phase=Phase.ABORT, failure=why), None
        case StartFailed(reason):
            return replace(s, phase=Phase.ABORT, failure=f"could not start: {reason}"), None
        case Created(resolvable):
            return replace(s, published=resolvable), None
        case CutoverFailed(reason):
            failure = f"cut-over failed: {reason}"
            aborted = replace(s, phase=Phase.ABORT, failure=failure, infra_failure=True)
            return replace(aborted, cut_over=False), None
        case SwitchBackFailed(reason):
            why = f"switch-back failed, the new containers keep serving: {reason}"
            done = replace(s, phase=Phase.DONE, outcome=Outcome.FAILED, failure=why)
            return done, Abort((), None, (), True, why)  # only the quarantine is left to do
        case WeightFailed(reason):
            return canary.weight_failed(s, obs, reason)
        case Cancelled():
            return _supersede(s, obs) or (s, None)
        case _:
            assert_never(ev)


def _supersede(state: RolloutState, obs: RolloutObs) -> tuple[RolloutState, Step] | None:
    """Before the cut-over the rollout stops here: its new containers go, stop-first old
    ones come back, nothing is quarantined. After the cut-over it is left to finish
    (traffic already moved)."""
    if state.cut_over or state.phase in (Phase.RETIRE, Phase.ABORT, Phase.DONE, Phase.WITHDRAW):
        return None
    if state.phase is Phase.CANARY:  # its weight first, then the abort (no quarantine)
        why = "superseded by a newer desired revision"
        state = replace(state, outcome=Outcome.SUPERSEDED, infra_failure=True)
        return canary.withdraw(state, obs, why)
    restore: tuple[str, ...] = ()
    if state.cfg.strategy == "stop-first":
        restore = tuple(
            c.id for c in obs.old if not c.running and c.revision == state.cfg.from_revision
        )
    remove = tuple(n.gate.cid for n in obs.new if n.gate.cid not in state.cfg.serving)
    done = replace(
        state,
        phase=Phase.DONE,
        failure="superseded by a newer desired revision",
        outcome=Outcome.SUPERSEDED,
    )
    return done, Abort(remove, None, restore, False, done.failure)


def _prepare(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    if s.started_at == 0.0:
        s = replace(s, started_at=now)
    if s.cfg.kind in (ActionKind.REMOVE, ActionKind.SCALE_DOWN):
        return _retire(replace(s, phase=Phase.RETIRE), obs, now)
    policy = s.cfg.pull_policy
    if not s.fetched and policy == "build" and s.cfg.build:  # compose: build even if present
        return replace(s, fetched=True), Build(s.cfg.image)
    if not s.fetched and policy not in ("missing", "if_not_present", "never", "build"):
        return replace(s, fetched=True), Pull(s.cfg.image)  # always, and the refresh ones
    if not obs.image_present:
        if policy == "never":
            why = f"{s.cfg.image} is not present and pull_policy is never"
            return replace(s, phase=Phase.DONE, failure=why), Finish(Outcome.FAILED, why)
        if s.cfg.build and (not s.cfg.pull_first or policy == "build"):
            return s, Build(s.cfg.image)
        return s, Pull(s.cfg.image)
    if s.cfg.release and not s.released:  # the image is here: its tasks before any start
        return replace(s, released=True), RunRelease(s.cfg.release)
    return _start(replace(s, phase=Phase.START), obs, now)


def _start(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    if s.cfg.strategy == "stop-first":
        running_old = tuple(c.id for c in obs.old if c.running)
        if running_old:
            return s, StopOld(running_old)
    dead = [n for n in obs.new if n.gate.state in _DEAD]
    ours = [n for n in dead if created_by(s, n)]
    if ours:  # created by this rollout and dead already: the revision does not run
        g = ours[0].gate
        return _abort(
            replace(s, phase=Phase.ABORT, failure=f"{g.name} exited with code {g.exit_code}"),
            obs,
            now,
        )
    if dead:  # left over from an earlier attempt
        return s, RemoveNew(tuple(n.gate.cid for n in dead))
    if now > s.started_at + s.cfg.progress_deadline:
        return _abort(
            replace(
                s,
                phase=Phase.ABORT,
                failure="new containers did not start within progress_deadline",
            ),
            obs,
            now,
        )
    have = {n.number for n in obs.new}
    missing = tuple(i for i in range(1, s.cfg.replicas + 1) if i not in have)
    if missing:
        return s, Create(missing)
    created = tuple(n.gate.cid for n in _gated(s, obs) if n.gate.state is ContainerState.CREATED)
    if created:
        return s, Start(created)
    s = replace(s, phase=Phase.GATE, deadline=now + s.cfg.progress_deadline, passes={})
    return s, Observe(0.0, probe=True)


def _gate(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    gated = _gated(s, obs)
    present = {n.number for n in obs.new if n.number <= s.cfg.replicas}
    if len(present) < s.cfg.replicas:
        # A new container vanished under us (removed by hand): fail rather than guess.
        return _abort(
            replace(s, phase=Phase.ABORT, failure="a new container disappeared during the gate"),
            obs,
            now,
        )
    rules = GateRules(s.cfg.docker_health, s.cfg.http_probe, s.cfg.threshold, s.deadline)
    if not gated:  # every replica already serves (a resumed cut-over): nothing to gate
        verdict = GateVerdict(True, False, "already serving", {})
    else:
        verdict = evaluate(rules, [n.gate for n in gated], s.passes, now=now)
    s = replace(s, passes=verdict.passes)
    if verdict.failed:
        return _abort(replace(s, phase=Phase.ABORT, failure=verdict.reason), obs, now)
    if verdict.passed and gated and not s.smoked and any(c.before for c in s.cfg.smoke):
        # before the DNS name too: nothing but Berth reaches them until the checks pass
        checks = tuple(c for c in s.cfg.smoke if c.before)
        return replace(s, smoked=True), Smoke(tuple(n.gate.cid for n in gated), checks, "before")
    if verdict.passed and not s.published and gated:
        ids = tuple(n.gate.cid for n in gated)
        # After the reconnect one more pass per container is enough: the streak before it
        # already showed the release healthy; this pass shows it reachable again.
        again = {cid: max(0, s.cfg.threshold - 1) for cid in ids}
        return replace(s, published=True, passes=again), Publish(ids)
    if verdict.passed:
        if s.cfg.canary is not None and any(c.running for c in obs.old):
            return canary.begin(replace(s, passes={}), obs, now)
        return _cut_over(s, obs, now)
    return s, Observe(s.cfg.probe_interval, probe=True)


def _cut_over(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    """All traffic to the new containers; bake next when asked for and possible."""
    new_ids = tuple(n.gate.cid for n in _all_new(s, obs))
    old_ids = tuple(c.id for c in obs.old if c.running)
    bake = s.cfg.bake > 0 and bool(old_ids)
    nxt = Phase.BAKE if bake else Phase.RETIRE
    s = replace(s, window=None, failures=0)  # the bake measures afresh
    return replace(s, phase=nxt, cut_over=True, bake_until=now + s.cfg.bake, passes={}), CutOver(
        new_ids, old_ids
    )


def _canary(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    return canary.step(s, obs, now, _cut_over)


def _withdraw(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    return canary.after_withdraw(s, obs, now, _abort)


def _bake(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    gated = _gated(s, obs)
    if gated and not s.bake_smoked and any(c.bake for c in s.cfg.smoke):
        checks = tuple(c for c in s.cfg.smoke if c.bake)
        return replace(s, bake_smoked=True), Smoke(tuple(n.gate.cid for n in gated), checks, "bake")
    failures, why = bake_health(s, gated, now)
    if why is not None:
        return _switch_back(s, obs, why)
    s, judged = canary.bake_check(replace(s, passes=failures), obs)
    if judged is not None:
        return _switch_back(s, obs, judged)
    if now >= s.bake_until:
        return _retire(replace(s, phase=Phase.RETIRE), obs, now)
    return s, Observe(min(s.cfg.probe_interval, max(0.0, s.bake_until - now)), probe=True)


def _switch_back(s: RolloutState, obs: RolloutObs, reason: str) -> tuple[RolloutState, Step]:
    old_ids = tuple(c.id for c in obs.old if c.running)
    new_ids = tuple(n.gate.cid for n in obs.new)
    if not old_ids:  # nothing to go back to: keep the new ones serving, do not empty nginx
        why = f"{reason}; no old container left to switch back to, the new ones keep serving"
        done = replace(s, phase=Phase.DONE, outcome=Outcome.FAILED, failure=why)
        return done, Abort((), None, (), True, why)
    return replace(s, phase=Phase.ABORT, failure=reason, cut_over=False), SwitchBack(
        old_ids, new_ids
    )


def _retire(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    ids = [c.id for c in obs.old]
    ids += [n.gate.cid for n in obs.new if n.number > s.cfg.replicas]
    if ids:
        return s, Retire(tuple(ids))
    return replace(s, phase=Phase.DONE), Finish(Outcome.SUCCEEDED, _success_reason(s))


def _abort(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    has_old = bool(obs.old)
    mine = [n for n in obs.new if s.withdrawn or n.gate.cid not in s.cfg.serving]
    if has_old:
        victims = mine
    else:  # create / scale-up: keep new containers that do pass, remove the failing ones
        victims = [n for n in mine if s.passes.get(n.gate.cid, 0) < s.cfg.threshold]
    victims.sort(key=lambda n: n.created)
    # the newest failed container stays (stopped) for `docker logs`; a superseded one failed
    # nothing and goes
    keep = victims[-1].gate.cid if victims and s.outcome is not Outcome.SUPERSEDED else None
    remove = tuple(n.gate.cid for n in victims if n.gate.cid != keep)
    restore: tuple[str, ...] = ()
    if s.cfg.strategy == "stop-first":
        restore = tuple(
            c.id for c in obs.old if not c.running and c.revision == s.cfg.from_revision
        )
    outcome = s.outcome or (Outcome.ROLLED_BACK if has_old else Outcome.FAILED)
    done = replace(s, phase=Phase.DONE, outcome=outcome)
    # A scale-up adds replicas of a revision that already took and serves: its failure (a
    # lost node, a full disk) is retried with backoff; quarantining the serving revision
    # would leave the service short of replicas until someone edits desired/.
    quarantine = not s.infra_failure and s.cfg.kind is not ActionKind.SCALE_UP
    return done, Abort(remove, keep, restore, quarantine, s.failure)


def _done(s: RolloutState, obs: RolloutObs, now: float) -> tuple[RolloutState, Step]:
    if s.failure:
        return s, Finish(s.outcome or Outcome.FAILED, s.failure)
    return s, Finish(Outcome.SUCCEEDED, _success_reason(s))


def _all_new(s: RolloutState, obs: RolloutObs) -> list[NewObs]:
    return sorted((n for n in obs.new if n.number <= s.cfg.replicas), key=lambda n: n.number)


def _gated(s: RolloutState, obs: RolloutObs) -> list[NewObs]:
    """The new containers this rollout must gate: not those that already serve."""
    return [n for n in _all_new(s, obs) if n.gate.cid not in s.cfg.serving]


def _success_reason(s: RolloutState) -> str:
    return {
        ActionKind.REMOVE: "removed",
        ActionKind.SCALE_DOWN: f"scaled down to {s.cfg.replicas}",
    }.get(s.cfg.kind, f"{s.cfg.replicas} replica(s) healthy")


_DEAD = (ContainerState.EXITED, ContainerState.DEAD)

_HANDLERS = {
    Phase.PREPARE: _prepare,
    Phase.START: _start,
    Phase.GATE: _gate,
    Phase.CANARY: _canary,
    Phase.BAKE: _bake,
    Phase.RETIRE: _retire,
    Phase.WITHDRAW: _withdraw,
    Phase.ABORT: _abort,
    Phase.DONE: _done,
}
