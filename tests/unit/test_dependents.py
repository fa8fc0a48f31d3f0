"""depends_on `restart: true` and injected files, through the executor with the fakes."""

from __future__ import annotations

import dataclasses

from controller.core.model import DependsOn, InjectedFile, Observed, Target
from controller.core.outcome import Outcome
from controller.core.plan import plan
from controller.errors import ContainerRuntimeError
from controller.shell.rollout.dependents import dependents, restart_dependents
from controller.shell.rollout.executor import Event, Executor, Ports
from controller.shell.rollout.reconcile import run_plan
from tests.fakes import Behaviour, FakeRuntime
from tests.unit.test_executor import hc_target, stack, world


def needing(t: Target, *deps: DependsOn) -> Target:
    return dataclasses.replace(t, spec=dataclasses.replace(t.spec, depends_on=deps))


def converge(ports: Ports, targets: list[Target], events: list[Event]) -> list[str]:
    rt = ports.runtime
    q = frozenset((f"{x.project}/{x.service}", x.revision) for x in ports.store.quarantined())
    p = plan(targets, Observed(tuple(rt.list_containers()), q))
    return [r.outcome for r in run_plan(p, stack(*targets), Executor(ports, emit=events.append))]


def trio(db_tag: str) -> list[Target]:
    """db; api restarts with db; worker only waits for it."""
    return [
        hc_target(db_tag, replicas=1, name="db"),
        needing(hc_target("1", replicas=2, name="api"), DependsOn("db", restart=True)),
        needing(hc_target("1", replicas=1, name="worker"), DependsOn("db")),
    ]


def stops(rt: FakeRuntime) -> list[str]:
    return [c[1] for c in rt.calls if c[0] == "stop"]


def ids_of(rt: FakeRuntime, service: str) -> list[str]:
    return sorted(c.id for c in rt.list_containers() if c.service == service)


def test_dependents_are_the_services_that_asked_for_it() -> None:
    [the_stack] = stack(*trio("1")).values()
    assert dependents(the_stack, "db") == ["api"]
    assert dependents(the_stack, "api") == []


def test_a_replaced_dependency_restarts_its_restart_dependents_only() -> None:
    rt, ports, _, _ = world()
    v1, v2 = trio("1"), trio("2")
    rt.images |= {t.image for t in v1 + v2}
    events: list[Event] = []
    assert converge(ports, v1, events) == ["succeeded"] * 3
    assert not [e for e in events if e.phase.startswith("restart")]  # db was new: no one ran
    api, worker = ids_of(rt, "api"), ids_of(rt, "worker")
    rt.calls.clear()
    assert converge(ports, v2, events) == ["succeeded", "unchanged", "unchanged"]
    assert sorted(set(stops(rt)) & set(api + worker)) == api  # the worker is left alone
    starts = [c[1] for c in rt.calls if c[0] == "start"]
    assert set(api) <= set(starts)
    assert ids_of(rt, "api") == api and all(c.running for c in rt.list_containers())
    said = [(e.service, e.phase, e.message) for e in events if e.phase.startswith("restart")]
    assert said == [
        ("api", "restart", "dependency db was replaced: 2 container(s)"),
        ("api", "restarted", "2 container(s) after db"),
    ]
    # with their own grace period (the fake records None -> the container's StopTimeout)
    assert all(c[2] == 10.0 for c in rt.calls if c[0] == "stop" and c[1] in api)


def test_no_restart_for_a_no_op_a_scale_a_failed_rollout_or_its_clean_up() -> None:
    rt, ports, _, _ = world()
    v1, bad = trio("1"), trio("bad")
    rt.images |= {t.image for t in v1 + bad}
    rt.behaviours[bad[0].image] = Behaviour(health="unhealthy")
    events: list[Event] = []
    converge(ports, v1, events)
    api = ids_of(rt, "api")
    rt.calls.clear()
    assert converge(ports, v1, events)[0] == "unchanged"
    scaled = [dataclasses.replace(v1[0], replicas=2), *v1[1:]]
    assert converge(ports, scaled, events)[0] == "succeeded"  # a scale-up
    assert converge(ports, bad, events)[0] == "rolled_back"
    # back to 1: the rolled-back container (stopped) is cleaned up, the running db stays
    assert converge(ports, scaled, events)[0] == "succeeded"
    assert not set(stops(rt)) & set(api)
    assert not [e for e in events if e.phase.startswith("restart")]


class _Refusing(FakeRuntime):
    def start(self, cid: str) -> None:
        if cid in self.refuse:
            raise ContainerRuntimeError(f"start {cid[:12]}: port is already allocated")
        super().start(cid)

    refuse: frozenset[str] = frozenset()


def test_a_failed_restart_is_an_event_and_the_rollout_stays_succeeded() -> None:
    rt = _Refusing()
    _, ports, _, _ = world()
    ports = dataclasses.replace(ports, runtime=rt)
    v1, v2 = trio("1"), trio("2")
    rt.images |= {t.image for t in v1 + v2}
    events: list[Event] = []
    converge(ports, v1, events)
    first, _ = ids_of(rt, "api")
    rt.refuse = frozenset({first})
    assert converge(ports, v2, events)[0] == "succeeded"
    failed = [e for e in events if e.phase == "restart-failed"]
    assert len(failed) == 1 and "port is already allocated" in failed[0].message
    assert [e.message for e in events if e.phase == "restarted"] == ["1 container(s) after db"]


def test_restart_dependents_without_a_stack_or_outcome_does_nothing() -> None:
    rt, ports, _, _ = world()
    v1 = trio("1")
    p = plan(v1, Observed((), frozenset()))
    [db_action] = [a for a in p.actions if a.service == "db"]
    assert restart_dependents(ports, db_action, Outcome.SUCCEEDED, None, print) == []
    [the_stack] = stack(*v1).values()
    assert restart_dependents(ports, db_action, Outcome.ROLLED_BACK, the_stack, print) == []
    assert rt.calls == []


def test_injected_files_are_written_after_create_and_before_start() -> None:
    rt, ports, _, _ = world()
    secret = InjectedFile("/run/secrets/db_password", "hunter2", uid=999, mode=0o400)
    t = hc_target("1", replicas=2)
    t = dataclasses.replace(t, spec=dataclasses.replace(t.spec, files=(secret,)))
    rt.images.add(t.image)
    events: list[Event] = []
    assert converge(ports, [t], events) == ["succeeded"]
    for cid in ids_of(rt, "api"):
        assert rt.file_of(cid, "/run/secrets/db_password") == secret
        mine = [c[0] for c in rt.calls if len(c) > 1 and c[1] == cid]
        assert mine.index("put_files") < mine.index("start")
    assert ("put_files", ids_of(rt, "api")[0], ("/run/secrets/db_password",)) in rt.calls
    assert "hunter2" not in repr(rt.calls) + repr(events)


def test_no_put_files_call_without_files() -> None:
    rt, ports, _, _ = world()
    t = hc_target("1", replicas=1)
    rt.images.add(t.image)
    converge(ports, [t], [])
    assert not [c for c in rt.calls if c[0] == "put_files"]
