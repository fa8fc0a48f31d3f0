"""One contract for the ContainerRuntime port, run against the real DockerRuntime and the
FakeRuntime of tests/fakes.py: if the fake drifts from Docker, a test here fails.

Measured on Docker 20.10.24 (API 1.41) with DockerRuntime.add_aliases (disconnect +
reconnect with aliases): the call takes 70-90 ms, the IP is kept (pinned on networks with a
user-configured subnet, handed back by the first-free IPAM otherwise), and the host cannot
open connections to the container for about 0.6 s from the disconnect (SYNs are dropped,
not refused). So: add aliases before the nginx cut-over and re-probe afterwards.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.core.model import (
    LABEL_MANAGED,
    LABEL_NUMBER,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_TAG,
    ContainerState,
    NetworkAttachment,
    NetworkDef,
    VolumeDef,
)
from controller.errors import ContainerRuntimeError, ImagePullError, NotFound
from controller.ports import ContainerRuntime, ContainerStatus
from tests.fakes import Behaviour, FakeRuntime

HEALTHCHECK = {
    "Test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/health"],
    "Interval": 200_000_000,
    "Timeout": 1_000_000_000,
    "Retries": 1,
}
MISSING_IMAGE = "127.0.0.1:1/berth-nope:x"  # refused at once: no registry on port 1
CRASH_LINE = "berth-test/app: crash mode, exiting 1"  # what the crash image writes (stderr)


@dataclass
class World:
    """A runtime plus the images and names one test needs, and cleanup of what it made."""

    rt: Any  # DockerRuntime | FakeRuntime
    real: bool
    images: dict[str, str]
    project: str = field(default_factory=lambda: f"bc{uuid.uuid4().hex[:8]}")
    cids: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def net(self, key: str = "default") -> str:
        name = f"{self.project}_{key}"
        self.rt.ensure_network(NetworkDef(name=name, key=key), project=self.project)
        self.networks.append(name)
        return name

    def create(
        self,
        mode: str = "good",
        *,
        n: int = 1,
        healthcheck: bool = False,
        networks: tuple[NetworkAttachment, ...] | None = None,
        aliases: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> str:
        nets = networks if networks is not None else (NetworkAttachment(self.net(), ("api",)),)
        body: dict[str, Any] = {"HostConfig": {"Init": True}, **(extra or {})}
        if healthcheck:
            body["Healthcheck"] = HEALTHCHECK
        cid: str = self.rt.create(
            name=f"{self.project}-api-abcdef12-{n}",
            image=self.images[mode],
            body=body,
            labels={
                LABEL_PROJECT: self.project,
                LABEL_SERVICE: "api",
                LABEL_NUMBER: str(n),
                LABEL_MANAGED: "true",
                LABEL_REVISION: "abcdef1234",
                LABEL_TAG: mode,
            },
            networks=nets,
            aliases=aliases,
        )
        self.cids.append(cid)
        return cid

    def until(
        self, cid: str, pred: Callable[[ContainerStatus], bool], timeout: float = 15.0
    ) -> ContainerStatus:
        deadline = time.monotonic() + timeout
        while True:
            st: ContainerStatus = self.rt.inspect(cid)
            if pred(st) or time.monotonic() > deadline:
                return st
            time.sleep(0.1 if self.real else 0)


@pytest.fixture(scope="module")
def app_images() -> dict[str, str]:
    from tests.support.images import ensure_app_image

    images = {m: ensure_app_image(f"contract-{m}", mode=m) for m in ("good", "unhealthy", "crash")}
    return {**images, "ignores-term": images["good"]}  # its entrypoint is overridden


def _fake_world() -> World:
    refs = {
        m: f"berth-test/app:contract-{m}" for m in ("good", "unhealthy", "crash", "ignores-term")
    }
    rt = FakeRuntime(
        behaviours={
            refs["good"]: Behaviour(health="healthy", health_after=2),
            refs["unhealthy"]: Behaviour(health="unhealthy", health_after=2),
            refs["crash"]: Behaviour(exit_after=2, exit_code=1, log=(CRASH_LINE,)),
            refs["ignores-term"]: Behaviour(ignores_stop=True),
        }
    )
    return World(rt=rt, real=False, images=refs)


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "fake"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "fake":
        yield _fake_world()
        return
    import docker

    from controller.adapters.docker_runtime import DockerRuntime

    w = World(rt=DockerRuntime(), real=True, images=request.getfixturevalue("app_images"))
    client = docker.APIClient(version="auto")
    try:
        yield w
    finally:
        for cid in w.cids:
            w.rt.remove(cid)
        for name in set(w.networks):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_network(name)
        for name in set(w.volumes):
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_volume(name, force=True)
        w.rt.close()
        client.close()


def test_both_implement_the_port(world: World) -> None:
    rt: ContainerRuntime = world.rt
    assert rt is not None


def test_create_without_aliases_is_listed_with_labels_as_created(world: World) -> None:
    cid = world.create(n=2)
    [row] = world.rt.list_containers(project=world.project)
    assert row.id == cid
    assert row.name == f"{world.project}-api-abcdef12-2"
    assert (row.project, row.service, row.number) == (world.project, "api", 2)
    assert (row.revision, row.tag, row.managed) == ("abcdef1234", "good", True)
    assert row.image == world.images["good"]
    assert row.state is ContainerState.CREATED
    assert row.health is None and row.exit_code is None and dict(row.ips) == {}
    assert abs(row.created - time.time()) < 60
    assert world.rt.aliases_of(cid) == {f"{world.project}_default": ()}
    assert world.rt.list_containers(project=world.project + "x") == []


def test_name_conflict_is_a_runtime_error(world: World) -> None:
    world.create()
    with pytest.raises(ContainerRuntimeError):
        world.create()


def test_rename_shows_in_the_listing_and_a_taken_name_is_a_runtime_error(world: World) -> None:
    first, second = world.create(n=1), world.create(n=2)
    world.rt.start(second)
    world.rt.rename(second, f"{world.project}-fixed")  # running containers can be renamed
    names = {r.id: r.name for r in world.rt.list_containers(project=world.project)}
    assert names[second] == f"{world.project}-fixed"
    with pytest.raises(ContainerRuntimeError):
        world.rt.rename(first, f"{world.project}-fixed")
    assert world.rt.list_containers(project=world.project)[0].name != ""


def test_start_runs_and_reports_ips(world: World) -> None:
    cid = world.create()
    world.rt.start(cid)
    st = world.rt.inspect(cid)
    net = f"{world.project}_default"
    assert st.state is ContainerState.RUNNING and st.exit_code is None
    assert st.restart_count == 0 and st.health is None
    assert st.ips[net].count(".") == 3
    assert st.started_at is not None and abs(st.started_at - time.time()) < 60
    [row] = world.rt.list_containers(project=world.project)
    assert row.running and dict(row.ips) == dict(st.ips)


def test_stop_uses_the_stop_signal_within_the_timeout(world: World) -> None:
    cid = world.create()
    world.rt.start(cid)
    t0 = time.monotonic()
    world.rt.stop(cid, timeout=10)
    assert time.monotonic() - t0 < 5  # SIGTERM honoured, not the SIGKILL after 10 s
    st = world.rt.inspect(cid)
    assert st.state is ContainerState.EXITED and st.exit_code == 0
    assert dict(st.ips) == {}
    [row] = world.rt.list_containers(project=world.project)
    assert row.state is ContainerState.EXITED and row.exit_code == 0 and row.health is None


def test_stop_without_timeout_uses_the_containers_own_grace_period(world: World) -> None:
    """StopTimeout 1 s, and a process that ignores SIGTERM: SIGKILL comes after 1 s, not
    after the engine's 10 s default (the fake records the grace it applied)."""
    stubborn = {
        "StopTimeout": 1,
        "Entrypoint": ["sh", "-c", "trap '' TERM INT; while :; do sleep 1; done"],
    }
    cid = world.create("ignores-term", extra=stubborn)
    world.rt.start(cid)
    t0 = time.monotonic()
    world.rt.stop(cid)
    elapsed = time.monotonic() - t0
    st = world.rt.inspect(cid)
    assert st.state is ContainerState.EXITED and st.exit_code == 137
    if world.real:
        assert elapsed < 8, elapsed
    else:
        assert isinstance(world.rt, FakeRuntime) and ("stop", cid, 1.0) in world.rt.calls


def test_retire_stops_with_the_grace_period_then_removes_and_gone_is_done(
    world: World,
) -> None:
    cid = world.create()
    world.rt.start(cid)
    world.rt.retire(cid)
    with pytest.raises(NotFound):
        world.rt.inspect(cid)
    world.rt.retire(cid)
    assert world.rt.list_containers(project=world.project) == []


def test_remove_is_idempotent_and_inspect_of_gone_is_not_found(world: World) -> None:
    cid = world.create()
    world.rt.start(cid)
    world.rt.remove(cid)
    world.rt.remove(cid)
    with pytest.raises(NotFound):
        world.rt.inspect(cid)
    assert world.rt.list_containers(project=world.project) == []


def test_pull_of_a_missing_image_fails_with_image_pull_error(world: World) -> None:
    assert not world.rt.image_present(MISSING_IMAGE)
    with pytest.raises(ImagePullError):
        world.rt.pull(MISSING_IMAGE)
    assert world.rt.image_present(world.images["good"])


def test_network_and_volume_ensure_are_idempotent(world: World) -> None:
    first = world.net("back")
    assert world.net("back") == first
    with pytest.raises(ContainerRuntimeError):
        world.rt.ensure_network(
            NetworkDef(name=first + "-ext", key="x", external=True), project=world.project
        )
    vol = VolumeDef(name=f"{world.project}_data", key="data")
    world.volumes.append(vol.name)
    world.rt.ensure_volume(vol, project=world.project)
    world.rt.ensure_volume(vol, project=world.project)
    with pytest.raises(ContainerRuntimeError):
        world.rt.ensure_volume(
            VolumeDef(name=vol.name + "-ext", key="x", external=True), project=world.project
        )


def test_a_container_that_exits_1_shows_exited_and_its_code(world: World) -> None:
    cid = world.create("crash")
    world.rt.start(cid)
    st = world.until(cid, lambda s: s.state is ContainerState.EXITED)
    assert st.state is ContainerState.EXITED and st.exit_code == 1
    [row] = world.rt.list_containers(project=world.project)
    assert row.state is ContainerState.EXITED and row.exit_code == 1


@pytest.mark.parametrize(("mode", "final"), [("good", "healthy"), ("unhealthy", "unhealthy")])
def test_health_starts_then_settles(world: World, mode: str, final: str) -> None:
    cid = world.create(mode, healthcheck=True)
    world.rt.start(cid)
    assert world.rt.inspect(cid).health == "starting"
    st = world.until(cid, lambda s: s.health != "starting")
    assert st.health == final and st.state is ContainerState.RUNNING
    [row] = world.rt.list_containers(project=world.project)
    assert row.health == final


def test_kill_with_sigkill_exits_137(world: World) -> None:
    cid = world.create()
    world.rt.start(cid)
    world.rt.kill(cid, "SIGKILL")
    st = world.until(cid, lambda s: s.state is ContainerState.EXITED)
    assert st.exit_code == 137


def test_processes_of_a_running_container(world: World) -> None:
    cid = world.create()
    world.rt.start(cid)
    procs = world.rt.processes(cid)
    assert procs and all(pid > 0 and isinstance(cmd, str) for pid, cmd in procs)
    world.rt.stop(cid, timeout=5)
    with pytest.raises(ContainerRuntimeError):
        world.rt.processes(cid)


def test_aliases_true_sets_them_and_add_aliases_adds_them(world: World) -> None:
    net = world.net()
    att = NetworkAttachment(net, ("api", "api-v2"))
    with_aliases = world.create(n=1, networks=(att,), aliases=True)
    assert world.rt.aliases_of(with_aliases) == {net: ("api", "api-v2")}
    later = world.create(n=2, networks=(att,), aliases=False)
    world.rt.start(later)
    ip = world.rt.inspect(later).ips[net]
    world.rt.add_aliases(later, [att])
    world.rt.add_aliases(later, [att])  # idempotent
    assert world.rt.aliases_of(later) == {net: ("api", "api-v2")}
    st = world.rt.inspect(later)
    assert st.state is ContainerState.RUNNING and st.ips[net] == ip


def test_create_joins_every_network_before_start(world: World) -> None:
    a, b = world.net("front"), world.net("back")
    cid = world.create(networks=(NetworkAttachment(a, ("api",)), NetworkAttachment(b)))
    world.rt.start(cid)
    assert set(world.rt.inspect(cid).ips) == {a, b}
    assert world.rt.aliases_of(cid) == {a: (), b: ()}


def test_network_members_and_drop_aliases(world: World) -> None:
    net = world.net()
    att = NetworkAttachment(net, ("api",))
    a = world.create(n=1, networks=(att,), aliases=True)
    b = world.create(n=2, networks=(att,), aliases=True)
    world.rt.start(a)
    assert world.rt.network_members(net) == [a]  # running members only; b never started
    world.rt.start(b)
    assert world.rt.network_members(net) == sorted([a, b])
    world.rt.drop_aliases(b, [att])
    assert world.rt.aliases_of(b) == {net: ()}
    assert world.rt.inspect(b).state is ContainerState.RUNNING
    assert world.rt.network_members(net) == sorted([a, b])  # still on the network
    assert world.rt.network_members("no-such-network") == []


@pytest.mark.parametrize("position", [0, 1])
def test_a_missing_network_fails_at_start_not_at_create(world: World, position: int) -> None:
    """Docker 20.10 accepts unknown networks at create and at connect of a created container;
    only start notices. The executor must treat NotFound from start as a failed rollout."""
    nets = [NetworkAttachment(world.net())]
    nets.insert(position, NetworkAttachment(f"{world.project}_missing"))
    cid = world.create(networks=tuple(nets))
    with pytest.raises(NotFound):
        world.rt.start(cid)
    assert world.rt.inspect(cid).state is ContainerState.CREATED


# -- real Docker only: what the fake cannot show -------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("world", ["docker"], indirect=True)
def test_service_alias_resolves_only_after_add_aliases(world: World) -> None:
    net = world.net()
    att = NetworkAttachment(net, ("api",))
    client = world.create(n=9, networks=(NetworkAttachment(net),))
    target = world.create(n=1, networks=(att,), aliases=False)
    world.rt.start(client)
    world.rt.start(target)
    code, out = world.rt.exec(client, ["nslookup", "api", "127.0.0.11"])
    assert code != 0 and "NXDOMAIN" in out
    world.rt.add_aliases(target, [att])
    ip = world.rt.inspect(target).ips[net]
    code, out = world.rt.exec(client, ["nslookup", "api", "127.0.0.11"])
    assert code == 0 and ip in out


@pytest.mark.docker
@pytest.mark.parametrize("world", ["docker"], indirect=True)
def test_ipv4_address_is_honoured_and_kept_by_add_aliases(world: World) -> None:
    import docker

    api = docker.APIClient(version="auto")
    net = f"{world.project}_fixed"
    subnet = f"10.{200 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    pool = docker.types.IPAMPool(subnet=f"{subnet}.0/24")
    api.create_network(net, ipam=docker.types.IPAMConfig(pool_configs=[pool]))
    world.networks.append(net)
    att = NetworkAttachment(net, ("api",), ipv4_address=f"{subnet}.42")
    cid = world.create(networks=(att,))
    world.rt.start(cid)
    assert world.rt.inspect(cid).ips[net] == f"{subnet}.42"
    world.rt.add_aliases(cid, [att])
    assert world.rt.inspect(cid).ips[net] == f"{subnet}.42"
    assert world.rt.aliases_of(cid) == {net: ("api",)}


@pytest.mark.docker
@pytest.mark.parametrize("world", ["docker"], indirect=True)
def test_exec_returns_code_and_output(world: World) -> None:
    cid = world.create()
    world.rt.start(cid)
    code, out = world.rt.exec(cid, ["sh", "-c", "echo hi; echo err >&2; exit 3"])
    assert code == 3 and sorted(out.splitlines()) == ["err", "hi"]  # stdout and stderr
    world.rt.stop(cid, timeout=5)
    with pytest.raises(ContainerRuntimeError):
        world.rt.exec(cid, ["true"])


@pytest.mark.docker
@pytest.mark.parametrize("world", ["docker"], indirect=True)
def test_events_report_managed_container_lifecycle(world: World) -> None:
    t0 = time.time() - 1
    cid = world.create()
    world.rt.start(cid)
    world.rt.stop(cid, timeout=5)
    events = list(world.rt.events(since=t0, until=time.time() + 0.5))
    mine = [e.get("status") for e in events if e.get("id") == cid]
    assert {"create", "start", "die"} <= set(mine)
    assert all(e.get("Type") == "container" for e in events)


def test_an_unreachable_engine_is_a_temporary_error() -> None:
    from controller.adapters.docker_runtime import DockerRuntime
    from controller.errors import TemporaryError

    rt = DockerRuntime(f"unix:///tmp/berth-no-such-{uuid.uuid4().hex}.sock")
    with pytest.raises(TemporaryError):
        rt.list_containers()
