"""What a canary needs from the world, beside the executor's loop (core/canary.py decides).

Observing: nginx's counters for the new and the stable revision, the PromQL checks' values,
and an operator's command left in the state store by `berth promote|abort|pause|resume`
(another process). Acting: a step's weight in nginx, and where the canary stands in the
store (for `berth status` and the metrics), as events for `apply` and the logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from controller.core import rollout as r
from controller.core.analysis import traffic_of
from controller.core.plan import ServiceAction
from controller.errors import ProxyError
from controller.ports import CanaryRecord
from controller.shell.rollout.results import Event, Ports

_PLACEHOLDER = re.compile(r"\{\{\s*(revision|service|project)\s*\}\}")
Emit = Callable[[Event], None]


class CanaryLink:
    def __init__(self, ports: Ports, emit: Emit) -> None:
        self.p = ports
        self.emit = emit

    def observe(self, a: ServiceAction, s: r.RolloutState, obs: r.RolloutObs) -> r.RolloutObs:
        spec = s.cfg.canary
        target = a.target
        if spec is None or target is None or s.phase not in (r.Phase.CANARY, r.Phase.BAKE):
            return obs
        command = None
        if s.phase is r.Phase.CANARY:
            command = self.p.store.take_canary_command(a.project, a.service, target.revision)
        analysis = spec.analysis
        up = target.spec.berth.upstream
        if analysis is None or up is None:
            return replace(obs, command=command)
        traffic = None
        stats = self.p.proxy.traffic(a)
        if stats is not None:
            new = traffic_of(stats, up.name, target.revision)
            stable = traffic_of(stats, up.name, s.cfg.from_revision or "")
            traffic = (new, stable)
        queries: dict[int, float | None] = {}
        if analysis.prometheus:
            names = {"revision": target.revision, "service": a.service, "project": a.project}
            for i, q in enumerate(analysis.queries):
                promql = _PLACEHOLDER.sub(lambda m: names[m.group(1)], q.query)
                queries[i] = self.p.metrics.value(analysis.prometheus, promql)
        return replace(obs, traffic=traffic, queries=queries, command=command)

    def set_weight(self, a: ServiceAction, s: r.RolloutState, step: r.SetWeight) -> r.Event | None:
        what = f"{step.weight}% of requests to the new revision"
        if step.weight == 0:
            what = f"weight 0: the new revision is out of the traffic ({s.failure})"
        self.emit(Event(a.project, a.service, "canary", what, self.p.clock.now(), step.weight))
        try:
            self.p.proxy.set_weight(a, step.new_ids, step.old_ids, step.weight, sticky=step.sticky)
        except ProxyError as exc:
            return r.WeightFailed(str(exc))
        self._progress(a, s, step.weight)
        return None

    def after(self, a: ServiceAction, before: r.RolloutState, s: r.RolloutState) -> None:
        """Report what the machine decided about the canary in its last step."""
        m = s.last_measurement
        if m is not None and s.measurements != before.measurements:
            checks = tuple((c.name, c.result) for c in m.checks)
            self.emit(
                Event(
                    a.project,
                    a.service,
                    "analysis",
                    f"{m.result}: {m.reason}",
                    self.p.clock.now(),
                    checks=checks,
                )
            )
        if s.phase is r.Phase.CANARY and s.paused != before.paused:
            word = "paused (berth promote, berth resume or berth abort)" if s.paused else "resumed"
            self.emit(Event(a.project, a.service, "canary", word, self.p.clock.now()))
            spec = s.cfg.canary
            if spec is not None:
                self._progress(a, s, spec.steps[s.canary_step])

    def end(self, a: ServiceAction, s: r.RolloutState) -> None:
        if s.cfg.canary is not None:
            self.p.store.canary_end(a.project, a.service)

    def _progress(self, a: ServiceAction, s: r.RolloutState, weight: int) -> None:
        spec, target = s.cfg.canary, a.target
        if spec is None or target is None:
            return
        if weight <= 0:
            self.p.store.canary_end(a.project, a.service)
            return
        self.p.store.canary_progress(
            CanaryRecord(
                project=a.project,
                service=a.service,
                revision=target.revision,
                tag=target.tag,
                step=s.canary_step + 1,
                steps=len(spec.steps),
                weight=weight,
                paused=s.paused,
                updated_at=self.p.clock.now(),
            )
        )
