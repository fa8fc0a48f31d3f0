"""One reconcile pass: observe, plan, and run the plan's rollouts in dependency order.

Services whose compose `depends_on` each other roll out one after the other; independent
services roll out concurrently (threads: the Docker SDK and the prober are blocking, and a
rollout spends its time waiting on health, not on the CPU).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Mapping
from dataclasses import dataclass

from controller.core.model import Observed, StackSpec
from controller.core.outcome import Outcome
from controller.core.plan import Plan, ServiceAction, blockers
from controller.ports import ContainerRuntime, StateStore
from controller.shell.rollout.executor import Executor, RolloutResult


@dataclass(frozen=True)
class Pass:
    plan: Plan
    results: tuple[RolloutResult, ...]

    @property
    def converged(self) -> bool:
        return all(r.ok for r in self.results)


def quarantined(store: StateStore) -> frozenset[tuple[str, str]]:
    """(key "project/service", revision) of every quarantined revision."""
    return frozenset((f"{q.project}/{q.service}", q.revision) for q in store.quarantined())


def observe(runtime: ContainerRuntime, store: StateStore) -> Observed:
    """One list call for every managed container, plus the quarantine from the store."""
    return Observed(tuple(runtime.list_containers()), quarantined(store))


def run_plan(
    the_plan: Plan,
    stacks: Mapping[str, StackSpec],
    executor: Executor,
    *,
    max_parallel: int = 32,
) -> tuple[RolloutResult, ...]:
    """Run every action, each once its in-plan dependencies have succeeded."""
    actions = {a.key: a for a in the_plan.actions}
    deps = blockers(the_plan.actions)
    results: dict[str, RolloutResult] = {}
    running: dict[cf.Future[RolloutResult], str] = {}

    def run(a: ServiceAction) -> RolloutResult:
        return executor.execute(a, stacks.get(a.project))

    prepare_stacks(the_plan, stacks, executor.p.runtime)

    with cf.ThreadPoolExecutor(max_workers=max_parallel) as pool:
        while len(results) < len(actions):
            started = set(running.values())
            for key, a in actions.items():
                if key in results or key in started:
                    continue
                waits_for = deps[key]
                failed = [d for d in waits_for if d in results and not results[d].ok]
                if failed:
                    results[key] = _skipped(a, f"dependency {failed[0]} did not converge")
                elif all(d in results for d in waits_for):
                    running[pool.submit(run, a)] = key
            if not running:
                for key, a in actions.items():  # only a dependency cycle can leave us here
                    if key not in results:
                        results[key] = _skipped(a, "dependency cycle in depends_on")
                break
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                results[running.pop(fut)] = fut.result()
    return tuple(results[a.key] for a in the_plan.actions)


def prepare_stacks(
    the_plan: Plan, stacks: Mapping[str, StackSpec], runtime: ContainerRuntime
) -> None:
    """Create the networks and volumes of every stack that has work, once and before any
    rollout: concurrent rollouts would otherwise race to create the same network."""
    for project in sorted({a.project for a in the_plan.changing() if a.target is not None}):
        stack = stacks.get(project)
        if stack is None:
            continue
        used = {att.network for svc in stack.services.values() for att in svc.networks}
        for net in stack.networks.values():
            if net.name in used:
                runtime.ensure_network(net, project=project)
        for vol in stack.volumes.values():
            runtime.ensure_volume(vol, project=project)


def _skipped(a: ServiceAction, reason: str) -> RolloutResult:
    return RolloutResult(
        a.project,
        a.service,
        a.kind.value,
        Outcome.FAILED,
        reason,
        None,
        a.target.tag if a.target else None,
        0.0,
    )
