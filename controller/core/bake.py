"""What fails a bake (after the cut-over, before the old containers retire): pure.

A new container that exits, restarts or turns unhealthy fails it at once; one whose probe
fails `max(2, healthy_threshold)` times in a row fails it too (one miss is not a failure:
the machine is busy moving traffic). The rollout machine (core/rollout.py) switches back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from controller.core.gate import GateRules, evaluate
from controller.core.rollout_state import NewObs, RolloutState


def bake_health(
    s: RolloutState, gated: Sequence[NewObs], now: float
) -> tuple[Mapping[str, int], str | None]:
    """Consecutive probe failures per container, and why the bake failed (None: not)."""
    rules = GateRules(s.cfg.docker_health, s.cfg.http_probe, 1, float("inf"))
    failures = dict(s.passes)  # during bake, counts consecutive probe failures per container
    for n in gated:
        verdict = evaluate(rules, [n.gate], {}, now=now)
        if verdict.failed:
            return failures, f"failed during bake: {verdict.reason}"
        failures[n.gate.cid] = 0 if verdict.passed else failures.get(n.gate.cid, 0) + 1
        if failures[n.gate.cid] >= max(2, s.cfg.threshold):
            return failures, f"failed during bake: {n.gate.name} stopped passing its health check"
    if len(gated) < s.cfg.replicas:
        return failures, "failed during bake: a new container disappeared"
    return failures, None
