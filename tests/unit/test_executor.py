"""The executor and the reconcile scheduler against the fakes (pinned by contract tests)."""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.adapters.sqlite_store import SqliteStateStore
from controller.core.model import (
    ContainerState,
    NetworkDef,
    Observed,
    ProxySpec,
    StackSpec,
    Target,
)
from controller.core.plan import plan
from controller.shell.rollout.executor import Executor, Ports
from controller.shell.rollout.reconcile import run_plan
from tests.fakes import Behaviour, FakeClock, FakeContainer, FakeProber, FakeRuntime
from tests.unit.builders import target

HC = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000}}


def hc_target(
    tag: str,
    replicas: int = 2,
    *,
    strategy: str = "start-first",
    name: str = "api",
    depends: tuple[str, ...] = (),
) -> Target:
    t = target(
        name,
        tag=tag,
        replicas=replicas,
        docker_health=True,
        strategy=strategy,
        health=None,
        depends=depends,
    )
    spec = dataclasses.replace(t.spec, create={**t.spec.create, **HC})
    return dataclasses.replace(t, spec=spec)


def world() -> tuple[FakeRuntime, Ports, FakeClock, SqliteStateStore]:
    rt = FakeRuntime()
    clock = FakeClock()
    store = SqliteStateStore(":memory:")
    return rt, Ports(rt, FakeProber(), clock, store), clock, store


def stack(*targets: Target) -> dict[str, StackSpec]:
    net = NetworkDef(name="demo_default", key="default")
    return {
        "demo": StackSpec("demo", (), {t.service: t.spec for t in targets}, {"default": net}, {})
    }


def converge(ports: Ports, targets: list[Target]) -> list[str]:
    rt = ports.runtime
    q = frozenset((f"{x.project}/{x.service}", x.revision) for x in ports.store.quarantined())
    p = plan(targets, Observed(tuple(rt.list_containers()), q))
    results = run_plan(p, stack(*targets), Executor(ports))
    return [r.outcome for r in results]


def running(rt: FakeRuntime, tag: str) -> list[str]:
    return sorted(c.id for c in rt.list_containers() if c.tag == tag and c.running)


def test_create_then_replace_then_nothing() -> None:
    rt, ports, _, store = world()
    v1, v2 = hc_target("1"), hc_target("2")
    rt.images |= {v1.image, v2.image}
    assert converge(ports, [v1]) == ["succeeded"]
    assert len(running(rt, "1")) == 2
    assert converge(ports, [v2]) == ["succeeded"]
    assert len(running(rt, "2")) == 2 and running(rt, "1") == []
    assert len(rt.list_containers()) == 2  # old ones removed, not just stopped
    assert converge(ports, [v2]) == ["unchanged"]
    hist = store.history("demo", "api")
    assert [h.outcome for h in hist][:2] == ["succeeded", "succeeded"]


def _client_on(rt: FakeRuntime, network: str) -> None:
    """A container of another service on `network`: it could resolve the service name."""
    rt.containers["c" * 64] = FakeContainer(
        "c" * 64,
        "demo-worker-1",
        "example/worker:1",
        {"com.docker.compose.project": "demo", "com.docker.compose.service": "worker"},
        {},
        0.0,
        {network: {"aliases": ("worker",), "ip": "10.0.9.9"}},
        ContainerState.RUNNING,
    )


def test_new_containers_join_without_alias_until_gate_passes() -> None:
    rt, ports, _, _ = world()
    v1 = hc_target("1", replicas=1)
    rt.images.add(v1.image)
    _client_on(rt, v1.spec.networks[0].network)
    converge(ports, [v1])
    creates = [c for c in rt.calls if c[0] == "create"]
    assert creates and all(c[3] is False for c in creates)
    assert any(c[0] == "add_aliases" for c in rt.calls)


def test_without_dns_clients_new_containers_get_their_aliases_at_create() -> None:
    """Nobody but the service itself (and nginx) shares the network: no one can resolve the
    name early, so the containers are created with their aliases and never reconnected."""
    rt, ports, _, _ = world()
    v1, v2 = hc_target("1", replicas=2), hc_target("2", replicas=2)
    rt.images |= {v1.image, v2.image}
    assert converge(ports, [v1]) == ["succeeded"]
    assert converge(ports, [v2]) == ["succeeded"]
    creates = [c for c in rt.calls if c[0] == "create"]
    assert len(creates) == 4 and all(c[3] is True for c in creates)
    assert not [c for c in rt.calls if c[0] in ("add_aliases", "drop_aliases")]


def test_unhealthy_tag_rolls_back_keeps_old_and_is_quarantined() -> None:
    rt, ports, _, store = world()
    v1, bad = hc_target("1"), hc_target("bad")
    rt.images |= {v1.image, bad.image}
    rt.behaviours[bad.image] = Behaviour(health="unhealthy")
    converge(ports, [v1])
    before = running(rt, "1")
    assert converge(ports, [bad]) == ["rolled_back"]
    assert running(rt, "1") == before
    kept = [c for c in rt.list_containers() if c.tag == "bad"]
    assert len(kept) == 1 and kept[0].state is ContainerState.EXITED  # kept for logs
    assert store.quarantined()[0].tag == "bad"
    assert "unhealthy" in store.history("demo", "api")[0].reason
    # not retried: the second pass creates nothing
    n_creates = len([c for c in rt.calls if c[0] == "create"])
    assert converge(ports, [bad]) == ["quarantined"]
    assert len([c for c in rt.calls if c[0] == "create"]) == n_creates


def test_deadline_failure_via_fake_clock() -> None:
    rt, ports, clock, store = world()
    v1, slow = hc_target("1", replicas=1), hc_target("slow", replicas=1)
    rt.images |= {v1.image, slow.image}
    rt.behaviours[slow.image] = Behaviour(health_after=10**9)
    converge(ports, [v1])
    assert converge(ports, [slow]) == ["rolled_back"]
    assert "progress_deadline" in store.history("demo", "api")[0].reason
    assert sum(clock.sleeps) >= 120.0  # waited the whole (fake) deadline, no real sleep


def test_stop_first_crash_restores_old() -> None:
    rt, ports, _, _ = world()
    v1 = hc_target("1", replicas=1, strategy="stop-first")
    crash = hc_target("crash", replicas=1, strategy="stop-first")
    rt.images |= {v1.image, crash.image}
    rt.behaviours[crash.image] = Behaviour(exit_after=0)
    converge(ports, [v1])
    old = running(rt, "1")
    assert converge(ports, [crash]) == ["rolled_back"]
    assert running(rt, "1") == old  # the same container, started again
    stops = [c for c in rt.calls if c[0] == "stop" and c[1] == old[0]]
    assert stops, "stop-first must stop the old container before starting the new one"


def test_pull_failure_touches_nothing() -> None:
    rt, ports, _, store = world()
    v1, missing = hc_target("1"), hc_target("nope")
    rt.images.add(v1.image)
    rt.behaviours[missing.image] = Behaviour(present=False, pullable=False)
    converge(ports, [v1])
    calls_before = len(rt.calls)
    assert converge(ports, [missing]) == ["failed"]
    new_calls = {c[0] for c in rt.calls[calls_before:]}
    assert new_calls <= {
        "list_containers",
        "image_present",
        "pull",
        "ensure_network",
        "ensure_volume",
    }
    assert "pull failed" in store.history("demo", "api")[0].reason
    assert store.quarantined() == []  # a registry outage is not the revision's fault
    # retried (as the daemon does with backoff): still one history record, counted
    assert converge(ports, [missing]) == ["failed"]
    assert converge(ports, [missing]) == ["failed"]
    newest, before = store.history("demo", "api")[:2]
    assert "pull failed" in newest.reason and newest.attempts == 3
    assert before.outcome == "succeeded"


def test_dependency_order_and_failed_dependency_skips_dependent() -> None:
    rt, ports, _, _ = world()
    db = hc_target("bad", replicas=1, name="db")
    api = hc_target("1", replicas=1, name="api", depends=("db",))
    rt.images |= {db.image, api.image}
    rt.behaviours[db.image] = Behaviour(health="unhealthy")
    outcomes = converge(ports, [api, db])
    assert outcomes == ["failed", "failed"]
    assert not [c for c in rt.calls if c[0] == "create" and "-api-" in c[1]]


def test_resume_after_interrupted_rollout_reuses_new_containers() -> None:
    rt, ports, _, _ = world()
    v1, v2 = hc_target("1"), hc_target("2")
    rt.images |= {v1.image, v2.image}
    converge(ports, [v1])
    # simulate a controller killed after creating one new container
    rt.create(
        name=f"demo-api-{v2.revision[:8]}-1",
        image=v2.image,
        body=v2.spec.create,
        labels={
            "berth.managed": "true",
            "com.docker.compose.project": "demo",
            "com.docker.compose.service": "api",
            "com.docker.compose.container-number": "1",
            "berth.revision": v2.revision,
            "berth.tag": "2",
        },
        networks=v2.spec.networks,
        aliases=False,
    )
    assert converge(ports, [v2]) == ["succeeded"]
    names = sorted(c.name for c in rt.list_containers())
    assert names == [f"demo-api-{v2.revision[:8]}-1", f"demo-api-{v2.revision[:8]}-2"]


def test_cancel_before_cutover_supersedes_cleanly() -> None:
    import threading

    rt, ports, clock, store = world()
    v1, slow = hc_target("1"), hc_target("slow")
    rt.images |= {v1.image, slow.image}
    rt.behaviours[slow.image] = Behaviour(health_after=10**9)
    converge(ports, [v1])
    before = running(rt, "1")
    cancel = threading.Event()
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:  # the newer revision arrives during the gate
        real_sleep(seconds)
        if len(clock.sleeps) == 3:
            cancel.set()

    clock.sleep = sleep  # type: ignore[method-assign]
    q = frozenset((f"{x.project}/{x.service}", x.revision) for x in store.quarantined())
    (action,) = plan([slow], Observed(tuple(rt.list_containers()), q)).actions
    result = Executor(ports).execute(action, None, cancel=cancel)
    assert result.outcome == "superseded"
    assert running(rt, "1") == before
    assert [c.tag for c in rt.list_containers()] == ["1", "1"]  # new ones gone, none kept
    assert store.quarantined() == []
    assert sum(clock.sleeps) < 5  # stopped at once, not at the progress deadline


class RecordingProxy:
    """A ProxySwitch that remembers who is routed, like the upstream file does."""

    def __init__(self, fail_switch_back: bool = False) -> None:
        self.routes: set[str] = set()
        self.fail_switch_back = fail_switch_back

    def cut_over(self, action: object, new_ids: Any, old_ids: Any) -> None:
        self.routes = {i[:12] for i in new_ids}

    def switch_back(self, action: object, old_ids: Any, new_ids: Any) -> None:
        from controller.errors import ProxyError

        if self.fail_switch_back:
            raise ProxyError("nginx -t failed")
        self.routes = {i[:12] for i in old_ids}

    def retire(self, action: object, ids: Any) -> None:
        self.routes -= {i[:12] for i in ids}

    def routed(self, action: object) -> frozenset[str] | None:
        return frozenset(self.routes)


def test_restart_after_cut_over_does_not_regate_or_remove_routed_containers() -> None:
    rt, _, clock, store = world()
    proxy = RecordingProxy()
    ports = Ports(rt, FakeProber(), clock, store, proxy)  # type: ignore[arg-type]
    v1, v2 = hc_target("1"), hc_target("2")
    rt.images |= {v1.image, v2.image}
    converge(ports, [v1])
    # a controller cut over to v2 and died before retiring v1; v2 now reports unhealthy
    for n in (1, 2):
        cid = rt.create(
            name=f"demo-api-{v2.revision[:8]}-{n}",
            image=v2.image,
            body=v2.spec.create,
            labels={
                "berth.managed": "true",
                "com.docker.compose.project": "demo",
                "com.docker.compose.service": "api",
                "com.docker.compose.container-number": str(n),
                "berth.revision": v2.revision,
                "berth.tag": "2",
            },
            networks=v2.spec.networks,
            aliases=True,
        )
        rt.start(cid)
        proxy.routes.add(cid[:12])
    rt.behaviours[v2.image] = Behaviour(health="unhealthy")
    routed_v2 = {c.id[:12] for c in rt.list_containers() if c.tag == "2"}
    assert routed_v2 <= proxy.routes
    assert converge(ports, [v2]) == ["succeeded"]
    assert {c.id[:12] for c in rt.list_containers()} == routed_v2  # kept, old ones retired
    assert store.quarantined() == []


def test_failed_switch_back_keeps_new_containers_serving() -> None:
    rt, _, clock, store = world()
    proxy = RecordingProxy(fail_switch_back=True)
    ports = Ports(rt, FakeProber(), clock, store, proxy)  # type: ignore[arg-type]
    v1 = hc_target("1")
    rt.images.add(v1.image)
    converge(ports, [v1])
    bad = hc_target("bad")
    bad = dataclasses.replace(
        bad,
        spec=dataclasses.replace(bad.spec, berth=dataclasses.replace(bad.spec.berth, bake=30.0)),
    )
    rt.images.add(bad.image)
    rt.behaviours[bad.image] = Behaviour(health_after=1, exit_after=6)  # dies during bake
    assert converge(ports, [bad]) == ["failed"]
    assert "switch-back failed" in store.history("demo", "api")[0].reason
    assert proxy.routes  # never emptied
    assert store.quarantined()[0].tag == "bad"


def test_a_container_docker_refuses_to_start_rolls_back_and_quarantines() -> None:
    from controller.errors import ContainerRuntimeError

    class Refusing(FakeRuntime):
        def start(self, cid: str) -> None:
            if self._find(cid).image.endswith(":broken"):
                raise ContainerRuntimeError("start: bind source path does not exist")
            super().start(cid)

    rt = Refusing()
    clock, store = FakeClock(), SqliteStateStore(":memory:")
    ports = Ports(rt, FakeProber(), clock, store)
    v1, broken = hc_target("1"), hc_target("broken")
    rt.images |= {v1.image, broken.image}
    converge(ports, [v1])
    before = running(rt, "1")
    assert converge(ports, [broken]) == ["rolled_back"]
    assert running(rt, "1") == before
    assert "could not start" in store.history("demo", "api")[0].reason
    assert store.quarantined()[0].tag == "broken"


def _with_grace(t: Target, seconds: int) -> Target:
    s = dataclasses.replace(
        t.spec, create={**t.spec.create, "StopTimeout": seconds}, stop_grace_period=seconds
    )
    return dataclasses.replace(t, spec=s)


def test_old_containers_stop_with_their_own_grace_period() -> None:
    """A release that shortens stop_grace_period must not cut the old release's shutdown
    short: old containers get the grace period they were created with."""
    for strategy in ("start-first", "stop-first"):
        rt, ports, _, _ = world()
        v1 = _with_grace(hc_target("1", replicas=1, strategy=strategy), 60)
        v2 = _with_grace(hc_target("2", replicas=1, strategy=strategy), 5)
        rt.images |= {v1.image, v2.image}
        converge(ports, [v1])
        old = running(rt, "1")
        assert converge(ports, [v2]) == ["succeeded"]
        assert {c[2] for c in rt.calls if c[0] == "stop" and c[1] == old[0]} == {60}, strategy


def test_no_dns_gating_for_the_proxy_or_a_service_that_publishes_ports(tmp_path: Any) -> None:
    """Their ports carry traffic as soon as a container runs; reconnecting them to move an
    alias would cut that traffic (and nginx's backend connections) for a moment."""
    published = {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": "8080"}]}}}
    for case in ("ports", "proxy"):
        rt, ports, _, _ = world()
        v1 = hc_target("1", replicas=1, name="web", strategy="stop-first")
        if case == "ports":
            body = {**v1.spec.create, **published}
            v1 = dataclasses.replace(v1, spec=dataclasses.replace(v1.spec, create=body))
        rt.images.add(v1.image)
        _client_on(rt, v1.spec.networks[0].network)
        st = stack(v1)["demo"]
        if case == "proxy":
            proxy = ProxySpec("web", str(tmp_path / "upstreams.conf"))
            st = dataclasses.replace(st, proxy=proxy)
        q = frozenset((f"{x.project}/{x.service}", x.revision) for x in ports.store.quarantined())
        p = plan([v1], Observed(tuple(rt.list_containers()), q))
        res = run_plan(p, {"demo": st}, Executor(ports))
        assert [r.outcome for r in res] == ["succeeded"], (case, res)
        creates = [c for c in rt.calls if c[0] == "create"]
        assert creates and all(c[3] is True for c in creates), case
        assert not [c for c in rt.calls if c[0] == "add_aliases"], case


def build_target(tag: str, context: str = "/srv/app") -> Target:
    from controller.core.model import BuildSpec

    t = hc_target(tag)
    spec = dataclasses.replace(t.spec, image="demo-api", build=BuildSpec(context=context))
    return dataclasses.replace(t, image=f"demo-api:{tag}", spec=spec)


def test_a_service_that_builds_is_built_then_replaced_and_a_same_context_is_tagged() -> None:
    from tests.fakes import FakeBuilder

    rt, ports, _, _ = world()
    builder = FakeBuilder(rt)
    ports = dataclasses.replace(ports, builder=builder)
    events: list[str] = []
    v1 = build_target("1")
    rt.behaviours["demo-api:1"] = Behaviour(pullable=False, present=False)
    q = frozenset[tuple[str, str]]()
    p = plan([v1], Observed(tuple(rt.list_containers()), q))
    results = run_plan(p, stack(v1), Executor(ports, emit=lambda e: events.append(e.phase)))
    assert [r.outcome for r in results] == ["succeeded"]
    assert builder.built == ["demo-api:1"] and ("pull", "demo-api:1") not in rt.calls
    assert "build" in events and "built" in events and "build-log" in events
    assert len(running(rt, "1")) == 2
    v2 = build_target("2")  # same context, same options: tagged, not built again
    assert converge(ports, [v2]) == ["succeeded"]
    assert builder.built == ["demo-api:1"] and "demo-api:2" in rt.images


def test_a_failed_build_touches_nothing_and_quarantines_the_tag() -> None:
    from tests.fakes import FakeBuilder

    rt, ports, _, store = world()
    v1 = build_target("1")
    ports = dataclasses.replace(ports, builder=FakeBuilder(rt))
    assert converge(ports, [v1]) == ["succeeded"]
    before = running(rt, "1")
    ports = dataclasses.replace(ports, builder=FakeBuilder(rt, failing={"/srv/bad": "RUN false"}))
    v2 = build_target("2", context="/srv/bad")
    assert converge(ports, [v2]) == ["failed"]
    assert running(rt, "1") == before and not running(rt, "2")
    assert not any(c[0] == "create" and "demo-api:2" in str(c) for c in rt.calls)
    last = store.last("demo", "api")
    assert last is not None and "build failed" in last.reason and "RUN false" in last.reason
    assert [q.tag for q in store.quarantined()] == ["2"]
    assert converge(ports, [v2]) == ["quarantined"]  # not retried in a loop


def named_target(tag: str, *, name: str = "legacy-api") -> Target:
    t = hc_target(tag, replicas=1)
    return dataclasses.replace(t, spec=dataclasses.replace(t.spec, container_name=name))


def test_container_name_is_taken_by_the_new_container_once_the_old_is_gone() -> None:
    rt, ports, _, _ = world()
    rt.images |= {"example/api:1", "example/api:2", "example/api:3"}
    assert converge(ports, [named_target("1")]) == ["succeeded"]
    (first,) = rt.list_containers()
    assert first.name == "legacy-api"
    assert converge(ports, [named_target("2")]) == ["succeeded"]
    (second,) = rt.list_containers()
    assert second.name == "legacy-api" and second.tag == "2" and second.id != first.id
    creates = [c for c in rt.calls if c[0] == "create"]
    assert any("legacy-api-" in str(c) for c in creates[1:])  # a temporary name meanwhile
    stopped_first = [c[0] for c in rt.calls].index("stop") < [c[0] for c in rt.calls].index(
        "rename"
    )
    assert stopped_first


def test_container_name_rollback_keeps_the_name_on_the_old_container() -> None:
    rt, ports, _, store = world()
    rt.images |= {"example/api:1"}
    assert converge(ports, [named_target("1")]) == ["succeeded"]
    bad = named_target("bad")
    rt.behaviours["example/api:bad"] = Behaviour(health="unhealthy")
    assert converge(ports, [bad]) in (["rolled_back"], ["failed"])
    names = {c.name: c for c in rt.list_containers()}
    assert names["legacy-api"].tag == "1" and names["legacy-api"].running
    assert store.quarantined()[0].tag == "bad"


def test_the_gate_looks_every_probe_interval_however_long_a_look_takes() -> None:
    """The pause after a look is the probe interval less the look's own time (a Swarm
    manager's listing of three replicas took most of a 200 ms interval), never below 0."""
    rt, ports, clock, _ = world()
    v1, v2 = hc_target("1"), hc_target("2")
    rt.images |= {v1.image, v2.image}
    assert converge(ports, [v1]) == ["succeeded"]
    listing = rt.list_containers

    def slow_listing(**kw: Any) -> Any:
        clock.advance(0.15)
        return listing(**kw)

    rt.list_containers = slow_listing  # type: ignore[method-assign]
    clock.sleeps.clear()
    assert converge(ports, [v2]) == ["succeeded"]
    gate_pauses = [round(s, 6) for s in clock.sleeps if 0 < s < 0.25]
    assert gate_pauses and set(gate_pauses) == {0.1}, clock.sleeps
    assert 0.25 not in clock.sleeps  # no pause of the full interval after a slow look


def test_the_gate_probes_the_new_replicas_side_by_side() -> None:
    """Each probe waits (up to 1 s) until the other replica's probe has begun too; one
    after another, every probe would wait alone."""
    import threading

    from controller.ports import ProbeResult

    rt, ports, _, _ = world()
    v1, v2 = target("api", "1", 2), target("api", "2", 2)
    rt.images |= {v1.image, v2.image}
    assert converge(ports, [v1]) == ["succeeded"]
    both = threading.Barrier(2)
    alone: list[str] = []

    class SideBySide(FakeProber):
        def probe(self, host: str, spec: Any) -> ProbeResult:
            try:
                both.wait(timeout=1)
            except threading.BrokenBarrierError:
                both.reset()
                alone.append(host)
            return super().probe(host, spec)

    assert converge(dataclasses.replace(ports, prober=SideBySide()), [v2]) == ["succeeded"]
    assert len(running(rt, "2")) == 2 and alone == []
