"""Release tasks, smoke checks and hooks through the executor, against the fakes (the
runtime's pinned by test_contract_runtime*, the task ports' by test_contract_tasks)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controller.adapters.sqlite_store import SqliteStateStore
from controller.core.model import ContainerState, NetworkAttachment, Observed, Target
from controller.core.plan import plan
from controller.core.task_options import HookSpec, HooksSpec, ReleaseTask, SmokeCheck
from controller.errors import ContainerRuntimeError
from controller.shell.rollout.executor import Event, Executor, Ports
from controller.shell.rollout.reconcile import run_plan
from controller.shell.rollout.release_io import (
    LABEL_RELEASE,
    release_body,
    release_name,
    release_networks,
)
from controller.task_ports import HttpAnswer
from tests.fakes import Behaviour, FakeClock, FakeContainer, FakeProber, FakeRuntime
from tests.fakes_tasks import FakeHooks, FakeHttp
from tests.unit.test_executor import converge, hc_target, running, stack

MIGRATE = ReleaseTask("migrate", ("migrate", "--up"), timeout=60.0)


def with_berth(t: Target, **kw: object) -> Target:
    berth = dataclasses.replace(t.spec.berth, **kw)  # type: ignore[arg-type]
    return dataclasses.replace(t, spec=dataclasses.replace(t.spec, berth=berth))


def world() -> tuple[FakeRuntime, Ports, FakeClock, SqliteStateStore, FakeHttp, FakeHooks]:
    rt, clock, store = FakeRuntime(), FakeClock(), SqliteStateStore(":memory:")
    http, hooks = FakeHttp(), FakeHooks()
    ports = Ports(rt, FakeProber(), clock, store, http=http, hooks=hooks)
    return rt, ports, clock, store, http, hooks


def release_creates(rt: FakeRuntime) -> list[str]:
    return [c[1] for c in rt.calls if c[0] == "create" and "-release-" in c[1]]


def migrating(tag: str, *, code: int = 0, after: int = 2) -> tuple[Target, Behaviour]:
    t = with_berth(hc_target(tag), release=(MIGRATE,))
    return t, Behaviour(exit_after=after, exit_code=code, log=("applying 2", "done"))


def test_a_release_task_runs_once_per_revision_before_the_new_containers() -> None:
    rt, ports, _, store, _, _ = world()
    v1, job = migrating("1")
    rt.images.add(v1.image)
    rt.behaviours[f"{v1.image} migrate --up"] = job
    assert converge(ports, [v1]) == ["succeeded"]
    names = [c[1] for c in rt.calls if c[0] == "create"]
    assert names[0] == release_name("demo", "api", v1.revision, "migrate")  # first
    assert len(names) == 3 and len(running(rt, "1")) == 2
    rec = store.release_task("demo", "api", v1.revision, "migrate")
    assert rec is not None and rec.state == "succeeded" and rec.exit_code == 0
    assert not [c for c in rt.containers.values() if LABEL_RELEASE in c.labels]  # --rm
    assert store.history("demo", "api")[0].notes.startswith("release migrate: done (")
    # the same revision again (a scale-up): the task does not run a second time
    assert converge(ports, [dataclasses.replace(v1, replicas=3)]) == ["succeeded"]
    assert len(release_creates(rt)) == 1


def test_the_one_off_container_is_compose_run_shaped() -> None:
    rt, ports, _, _, _, _ = world()
    v1, _job = migrating("1")
    rt.images.add(v1.image)
    rt.behaviours[f"{v1.image} migrate --up"] = Behaviour(exit_after=None)
    v1 = with_berth(v1, release=(dataclasses.replace(MIGRATE, timeout=1.0),))
    converge(ports, [v1])
    c = next(c for c in rt.containers.values() if LABEL_RELEASE in c.labels)
    assert c.labels["com.docker.compose.oneoff"] == "True"
    assert "berth.managed" not in c.labels  # never taken for a replica
    assert c.body["Cmd"] == ["migrate", "--up"]
    assert c.body["HostConfig"]["RestartPolicy"] == {"Name": "no"}
    assert c.body["Healthcheck"] == {"Test": ["NONE"]}
    assert all(not aliases for aliases in rt.aliases_of(c.id).values())


def test_a_failing_release_task_leaves_the_old_version_serving_and_quarantines() -> None:
    rt, ports, _, store, _, _ = world()
    v1 = hc_target("1")
    v2, job = migrating("2", code=3)
    rt.images |= {v1.image, v2.image}
    rt.behaviours[f"{v2.image} migrate --up"] = job
    converge(ports, [v1])
    before = running(rt, "1")
    assert converge(ports, [v2]) == ["failed"]
    assert running(rt, "1") == before and running(rt, "2") == []
    replicas = [c for c in rt.calls if c[0] == "create" and "-release-" not in c[1]]
    assert not [c for c in replicas if v2.revision[:8] in c[1]]  # no replica of 2 created
    reason = store.history("demo", "api")[0].reason
    assert "release task failed: migrate: exited with code 3: done" in reason
    assert "applying 2" in reason  # the log's tail
    assert store.quarantined()[0].tag == "2"
    rec = store.release_task("demo", "api", v2.revision, "migrate")
    assert rec is not None and rec.state == "failed" and "applying 2" in rec.log_tail
    kept = [c for c in rt.containers.values() if LABEL_RELEASE in c.labels]
    assert len(kept) == 1 and kept[0].state is ContainerState.EXITED  # for `docker logs`
    assert converge(ports, [v2]) == ["quarantined"]
    assert len(release_creates(rt)) == 1  # not retried in a loop
    # the operator fixed the database and asked again (`berth retry`): it runs once more,
    # after the failed attempt's container made way
    store.lift_quarantine("demo", "api")
    rt.behaviours[f"{v2.image} migrate --up"] = Behaviour(exit_after=1, exit_code=0)
    assert converge(ports, [v2]) == ["succeeded"]
    assert len(release_creates(rt)) == 2 and ("remove", kept[0].id) in rt.calls
    rec = store.release_task("demo", "api", v2.revision, "migrate")
    assert rec is not None and rec.state == "succeeded" and rec.log_tail == ""


def _left_running(rt: FakeRuntime, t: Target, *, started: bool) -> str:
    """What a controller killed mid-task leaves: the task's container, created (and maybe
    started), and a `running` record."""
    cid = "r" * 64
    rt.containers[cid] = FakeContainer(
        cid,
        release_name("demo", "api", t.revision, "migrate"),
        t.image,
        {LABEL_RELEASE: f"{t.revision}/migrate", "com.docker.compose.oneoff": "True"},
        {"Cmd": ["migrate", "--up"]},
        0.0,
        {},
        ContainerState.RUNNING if started else ContainerState.CREATED,
    )
    return cid


def test_a_task_found_running_after_a_restart_is_waited_for_not_run_again() -> None:
    rt, ports, clock, store, _, _ = world()
    v1, job = migrating("1", after=5)
    rt.images.add(v1.image)
    rt.behaviours[f"{v1.image} migrate --up"] = job
    cid = _left_running(rt, v1, started=True)
    store.release_begin("demo", "api", v1.revision, "migrate", tag="1", at=clock.now())
    store.release_container("demo", "api", v1.revision, "migrate", cid)
    assert converge(ports, [v1]) == ["succeeded"]
    assert release_creates(rt) == [] and ("start", cid) not in rt.calls
    rec = store.release_task("demo", "api", v1.revision, "migrate")
    assert rec is not None and rec.state == "succeeded"


def test_a_task_created_but_never_started_is_started_once() -> None:
    rt, ports, clock, store, _, _ = world()
    v1, job = migrating("1")
    rt.images.add(v1.image)
    rt.behaviours[f"{v1.image} migrate --up"] = job
    cid = _left_running(rt, v1, started=False)  # killed between create and its record
    store.release_begin("demo", "api", v1.revision, "migrate", tag="1", at=clock.now())
    assert converge(ports, [v1]) == ["succeeded"]
    assert release_creates(rt) == [] and rt.calls.count(("start", cid)) == 1


def test_a_recorded_task_whose_container_vanished_is_not_run_again() -> None:
    rt, ports, clock, store, _, _ = world()
    v1, _job = migrating("1")
    rt.images.add(v1.image)
    store.release_begin("demo", "api", v1.revision, "migrate", tag="1", at=clock.now())
    store.release_container("demo", "api", v1.revision, "migrate", "gone" * 16)
    assert converge(ports, [v1]) == ["failed"]
    assert release_creates(rt) == []
    assert "outcome is unknown" in store.history("demo", "api")[0].reason


def test_a_task_past_its_timeout_is_stopped_and_fails_the_rollout() -> None:
    rt, ports, clock, store, _, _ = world()
    v1 = with_berth(hc_target("1"), release=(dataclasses.replace(MIGRATE, timeout=3.0),))
    rt.images.add(v1.image)
    rt.behaviours[f"{v1.image} migrate --up"] = Behaviour(exit_after=None)
    t0 = clock.now()
    assert converge(ports, [v1]) == ["failed"]
    assert 3.0 <= clock.now() - t0 < 4.0
    assert any(c[0] == "stop" and c[2] == 10.0 for c in rt.calls)
    assert "migrate: timed out after 3s" in store.history("demo", "api")[0].reason


SMOKE = SmokeCheck(name="items", path="/items", port=8000, body_matches='"items"')


def test_a_failing_smoke_check_rolls_back_before_any_traffic_moves() -> None:
    rt, ports, _, store, http, _ = world()
    v1, v2 = hc_target("1"), with_berth(hc_target("2"), smoke=(SMOKE,))
    rt.images |= {v1.image, v2.image}
    converge(ports, [v1])
    before = running(rt, "1")
    http.answers["/items"] = HttpAnswer(200, {}, b'{"wrong": []}')
    assert converge(ports, [v2]) == ["rolled_back"]
    assert running(rt, "1") == before
    reason = store.history("demo", "api")[0].reason
    assert reason.startswith("smoke check failed: items (GET /items) on ")
    assert "body does not match" in reason and store.quarantined()[0].tag == "2"
    old_ips = {ip for c in rt.list_containers() for ip in c.ips.values()}
    assert http.requests and not {r[0] for r in http.requests} & old_ips  # the new ones only


def test_passing_smoke_checks_reach_every_new_container() -> None:
    rt, ports, _, _, http, _ = world()
    v1 = with_berth(hc_target("1"), smoke=(SMOKE,))
    rt.images.add(v1.image)
    http.answers["/items"] = HttpAnswer(200, {}, b'{"items": []}')
    assert converge(ports, [v1]) == ["succeeded"]
    ips = {c.ips[next(iter(c.ips))] for c in rt.list_containers() if c.running}
    assert {r[0] for r in http.requests} == ips and all(r[1] == 8000 for r in http.requests)


def hooks(**events: tuple[HookSpec, ...]) -> HooksSpec:
    return HooksSpec(**events)


def test_hooks_run_at_start_and_success_with_the_rollout_in_their_payload() -> None:
    rt, ports, _, _, _, fake = world()
    pre, ok = HookSpec(command=("./pre.sh",)), HookSpec(url="http://127.0.0.1:9/ok")
    v1 = with_berth(hc_target("1"), hooks=hooks(start=(pre,), success=(ok,)))
    rt.images.add(v1.image)
    assert converge(ports, [v1]) == ["succeeded"]
    assert [(h, p["event"], p["outcome"]) for h, p, _ in fake.runs] == [
        (pre, "start", ""),
        (ok, "success", "succeeded"),
    ]
    assert fake.runs[1][1]["to_tag"] == "1" and fake.runs[1][1]["revision"] == v1.revision
    notes = ports.store.history("demo", "api")[0].notes.split("\n")
    assert [n.rsplit(" (", 1)[0] for n in notes] == [
        "hook start: start hook pre.sh: exit 0",
        "hook success: success hook http://127.0.0.1:9: exit 0",
    ]


def test_a_failing_optional_hook_is_reported_not_fatal() -> None:
    rt, ports, _, _, _, fake = world()
    fake.fail.add("pre.sh")
    events: list[Event] = []
    v1 = with_berth(hc_target("1"), hooks=hooks(start=(HookSpec(command=("./pre.sh",)),)))
    rt.images.add(v1.image)
    p = plan([v1], Observed((), frozenset()))
    [result] = run_plan(p, stack(v1), Executor(ports, emit=events.append))
    assert result.outcome == "succeeded" and len(fake.runs) == 1
    [said] = [e for e in events if e.phase.startswith("hook")]
    assert (said.phase, said.message, said.task) == (
        "hook-failed",
        "start hook pre.sh: exit 1: refused",
        "start",
    )


def test_a_failing_required_start_hook_fails_the_rollout_before_anything_is_touched() -> None:
    rt, ports, _, store, _, fake = world()
    fake.fail.add("gate.sh")
    gate = HookSpec(command=("./gate.sh",), required=True)
    rb = HookSpec(url="http://127.0.0.1:9/rb")
    v1 = with_berth(hc_target("1"), hooks=hooks(start=(gate,), rollback=(rb,)))
    rt.images.add(v1.image)
    assert converge(ports, [v1]) == ["failed"]
    assert not [c for c in rt.calls if c[0] == "create"]
    assert store.history("demo", "api")[0].reason == "start hook gate.sh failed: exit 1: refused"
    assert store.quarantined() == []  # not the revision's fault: retried with backoff
    assert [p["event"] for _, p, _ in fake.runs] == ["start"]  # no rollback hook for it


def test_a_rollback_calls_the_rollback_hooks() -> None:
    rt, ports, _, _, _, fake = world()
    rb = HookSpec(url="http://127.0.0.1:9/rb")
    v1, bad = hc_target("1"), with_berth(hc_target("bad"), hooks=hooks(rollback=(rb,)))
    rt.images |= {v1.image, bad.image}
    rt.behaviours[bad.image] = Behaviour(health="unhealthy")
    converge(ports, [v1])
    assert converge(ports, [bad]) == ["rolled_back"]
    [(hook, payload, _)] = fake.runs
    assert hook == rb and payload["outcome"] == "rolled_back" and payload["from_tag"] == "1"
    assert "unhealthy" in payload["reason"]


def test_a_one_off_takes_no_fixed_address_of_the_replica_it_runs_beside() -> None:
    nets = (
        NetworkAttachment("demo_back", ("api",), ipv4_address="10.5.0.9", ipv6_address="fd::9"),
    )
    [free] = release_networks(nets)
    assert (free.network, free.aliases, free.ipv4_address, free.ipv6_address) == (
        "demo_back",
        ("api",),
        None,
        None,
    )
    body = release_body(
        {"MacAddress": "02:42:ac:11:00:02", "HostConfig": {"PortBindings": {"80/tcp": [{}]}}},
        ("migrate",),
    )
    assert "MacAddress" not in body and "PortBindings" not in body["HostConfig"]


def test_docker_failing_while_a_task_runs_is_no_outcome_and_the_next_pass_adopts_it() -> None:
    """An engine error while waiting (not the task's exit) must not mark the task failed:
    `berth retry` would then remove the still running one-off and run it a second time."""
    rt, ports, _, store, _, _ = world()
    v1, job = migrating("1", after=4)
    rt.images.add(v1.image)
    rt.behaviours[f"{v1.image} migrate --up"] = job
    real, calls = rt.inspect, []

    def flaky(cid: str) -> Any:
        calls.append(cid)
        if len(calls) == 3:  # mid-wait
            raise ContainerRuntimeError("inspect: 500 Server Error: the engine is restarting")
        return real(cid)

    rt.inspect = flaky  # type: ignore[method-assign]
    with pytest.raises(ContainerRuntimeError):
        converge(ports, [v1])
    rec = store.release_task("demo", "api", v1.revision, "migrate")
    assert rec is not None and rec.state == "running" and rec.container
    rt.inspect = real  # type: ignore[method-assign]
    assert converge(ports, [v1]) == ["succeeded"]
    assert len(release_creates(rt)) == 1  # adopted, not run again
