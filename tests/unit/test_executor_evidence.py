"""The executor carries a failed rollout's evidence on its RolloutResult (for notifications):
the failed new container's last log lines, read before the abort removed it; the commit;
whether the revision was quarantined."""

from __future__ import annotations

from controller.core.model import Observed, Target
from controller.core.outcome import Outcome
from controller.core.plan import plan
from controller.shell.rollout.executor import Executor, RolloutResult
from controller.shell.rollout.reconcile import run_plan
from tests.fakes import Behaviour
from tests.unit.test_executor import Ports, hc_target, stack, world


def converge(ports: Ports, targets: list[Target], commit: str | None = None) -> list[RolloutResult]:
    rt = ports.runtime
    q = frozenset((f"{x.project}/{x.service}", x.revision) for x in ports.store.quarantined())
    p = plan(targets, Observed(tuple(rt.list_containers()), q))
    return list(run_plan(p, stack(*targets), Executor(ports, commit=commit)))


def test_a_rollback_carries_the_failed_containers_last_lines_and_the_quarantine() -> None:
    rt, ports, _, _ = world()
    v1, bad = hc_target("1", replicas=2), hc_target("bad", replicas=2)
    rt.images |= {v1.image, bad.image}
    noise = tuple(f"line {i}" for i in range(40))
    rt.behaviours[bad.image] = Behaviour(exit_after=1, log=(*noise, "fatal: \x1b[31mno db\x1b[0m"))
    converge(ports, [v1])
    [res] = converge(ports, [bad], commit="abc123")
    assert res.outcome is Outcome.ROLLED_BACK
    assert res.quarantined and res.commit == "abc123" and res.revision == bad.revision
    assert not res.canary
    assert len(res.log_tail) == 20 and res.log_tail[-1] == "fatal: ?[31mno db?[0m"
    assert res.log_container is not None and res.log_container.startswith("demo-api-")
    logs_at = max(i for i, c in enumerate(rt.calls) if c[0] == "logs")
    removes = [i for i, c in enumerate(rt.calls) if c[0] == "remove"]
    assert removes and logs_at < min(removes)  # read before anything was removed


def test_a_success_carries_no_evidence() -> None:
    rt, ports, _, _ = world()
    v1 = hc_target("1", replicas=1)
    rt.images |= {v1.image}
    [res] = converge(ports, [v1], commit="c1")
    assert res.outcome is Outcome.SUCCEEDED and res.log_tail == () and not res.quarantined
    assert res.commit == "c1" and not [c for c in rt.calls if c[0] == "logs"]
