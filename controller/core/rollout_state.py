"""The rollout machine's state and what it observes (`controller.core.rollout` holds the
transitions, `rollout_steps` the steps and events): plain values, so the machine, the
canary logic (`core/canary.py`) and the executor share them without import cycles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from controller.core.analysis import Measurement, Traffic
from controller.core.gate import GateInput
from controller.core.model import ObservedContainer
from controller.core.outcome import Outcome
from controller.core.rollout_config import RolloutConfig


class Phase(StrEnum):
    PREPARE = "prepare"
    START = "start"
    GATE = "gate"
    CANARY = "canary"
    BAKE = "bake"
    RETIRE = "retire"
    WITHDRAW = "withdraw"
    ABORT = "abort"
    DONE = "done"


# The phases in which the executor inspects and probes the new containers (observe())
PROBED_PHASES = frozenset({Phase.GATE, Phase.CANARY, Phase.BAKE})


@dataclass(frozen=True)
class NewObs:
    """A container of the target revision, as the gate sees it."""

    number: int
    created: float
    gate: GateInput


@dataclass(frozen=True)
class RolloutObs:
    image_present: bool
    new: tuple[NewObs, ...]
    old: tuple[ObservedContainer, ...]
    # canary and bake with an analysis: the new and the stable revision's traffic so far,
    # the PromQL checks' values (by index), an operator's command (promote|abort|pause|resume)
    traffic: tuple[Traffic, Traffic] | None = None
    queries: Mapping[int, float | None] = field(default_factory=dict)
    command: str | None = None


@dataclass(frozen=True)
class RolloutState:
    cfg: RolloutConfig
    phase: Phase = Phase.PREPARE
    deadline: float = 0.0
    bake_until: float = 0.0
    passes: Mapping[str, int] = field(default_factory=dict)
    # the restart count a container had when this rollout first probed it (0 for its own)
    restart_base: Mapping[str, int] = field(default_factory=dict)
    failure: str = ""
    outcome: Outcome | None = None  # set when it ends without success
    cut_over: bool = False
    infra_failure: bool = False  # the failure was not the revision's fault: no quarantine
    pull_failed: bool = False  # a service that builds too: the pull failed, build instead
    fetched: bool = False  # pull_policy always/build/refresh: pulled or built once already
    published: bool = False  # the new containers carry their service aliases
    released: bool = False  # the release tasks ran (or were found done) for this revision
    smoked: bool = False  # the smoke checks before the cut-over passed
    bake_smoked: bool = False  # the smoke checks after the cut-over (in the bake) ran
    started_at: float = 0.0  # when this rollout began (containers created later are ours)
    # canary (core/canary.py)
    canary_step: int = -1  # index into cfg.canary.steps
    step_started: float = 0.0
    window: tuple[Traffic, Traffic] | None = None  # traffic when the open measurement began
    failures: int = 0  # failed measurements in this step (or in bake)
    measured: bool = False  # a measurement of this step passed
    measurements: int = 0
    last_measurement: Measurement | None = None
    paused: bool = False
    withdrawn: bool = False  # the new containers were taken out of the traffic (weight 0)
