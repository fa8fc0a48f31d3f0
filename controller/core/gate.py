"""The health gate, decided purely from observations.

A new container passes when Berth's HTTP probe (if `x-berth.health` is set) has succeeded
`healthy_threshold` observations in a row and its own Docker healthcheck (if the image or
compose defines one) reports healthy. The probe's streak counts while Docker still says
`starting`: Docker's `healthy` is already its own verdict (a passing check, with `retries`
for the way down), so seeing it on more than one observation adds no evidence, only a probe
interval of delay. Without a probe, the streak counts observations of Docker's `healthy` (or
of the container running, when it has no healthcheck either). A container that exits,
restarts or turns unhealthy, or a gate that runs past `progress_deadline`, fails at once:
waiting longer would only delay the rollback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.core.model import ContainerState


@dataclass(frozen=True)
class GateInput:
    """One observation of one new container."""

    cid: str
    name: str
    state: ContainerState
    health: str | None  # Docker health status
    exit_code: int | None
    restart_count: int
    probe_ok: bool | None  # None: no probe configured (or not probed this round)
    probe_detail: str = ""


@dataclass(frozen=True)
class GateRules:
    docker_health: bool  # the container has a Docker healthcheck
    http_probe: bool  # x-berth.health is set
    threshold: int
    deadline: float  # absolute time


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    failed: bool
    reason: str
    passes: Mapping[str, int]


def evaluate(
    rules: GateRules, obs: Sequence[GateInput], passes: Mapping[str, int], *, now: float
) -> GateVerdict:
    counts = dict(passes)
    for o in obs:
        fail = _hard_failure(o, rules)
        if fail:
            return GateVerdict(False, True, fail, counts)
        counts[o.cid] = counts.get(o.cid, 0) + 1 if _streak_holds(o, rules) else 0
    if obs and all(counts.get(o.cid, 0) >= rules.threshold and _ready(o, rules) for o in obs):
        return GateVerdict(True, False, "all new containers healthy", counts)
    if now >= rules.deadline:
        waiting = [o for o in obs if counts.get(o.cid, 0) < rules.threshold or not _ready(o, rules)]
        detail = "; ".join(f"{o.name}: {_why_not(o, rules)}" for o in waiting)
        return GateVerdict(False, True, f"not healthy within progress_deadline ({detail})", counts)
    return GateVerdict(False, False, "waiting for health", counts)


def _docker(o: GateInput, rules: GateRules) -> bool:
    """The container's own Docker healthcheck counts when compose defines one, and also when
    the image does (HEALTHCHECK in its Dockerfile): Docker then reports a health state."""
    return rules.docker_health or o.health is not None


def _hard_failure(o: GateInput, rules: GateRules) -> str:
    if o.state in (ContainerState.EXITED, ContainerState.DEAD):
        return f"{o.name} exited with code {o.exit_code}"
    if o.state is ContainerState.RESTARTING or o.restart_count > 0:
        return f"{o.name} restarted (restart count {o.restart_count})"
    if _docker(o, rules) and o.health == "unhealthy":
        return f"{o.name}: Docker healthcheck reports unhealthy"
    return ""


def _streak_holds(o: GateInput, rules: GateRules) -> bool:
    """This observation continues the streak: the probe passed (with a probe), else Docker's
    healthcheck reports healthy (with one), else the container runs."""
    if o.state is not ContainerState.RUNNING:
        return False
    if rules.http_probe:
        return bool(o.probe_ok)
    return not (_docker(o, rules) and o.health != "healthy")


def _ready(o: GateInput, rules: GateRules) -> bool:
    """Docker's own verdict, now: healthy when the container has a healthcheck."""
    return o.state is ContainerState.RUNNING and not (_docker(o, rules) and o.health != "healthy")


def _why_not(o: GateInput, rules: GateRules) -> str:
    if o.state is not ContainerState.RUNNING:
        return f"state {o.state.value}"
    if _docker(o, rules) and o.health != "healthy":
        return f"docker health {o.health or 'none'}"
    if rules.http_probe and not o.probe_ok:
        return f"probe failed: {o.probe_detail or 'no answer'}"
    return "not enough consecutive passes"
