"""More of the ContainerRuntime contract (same `world` fixture as test_contract_runtime.py,
real DockerRuntime and FakeRuntime): injected files (compose secrets/configs without a host
file), stop + start as the restart of a depends_on `restart: true` dependent, and, against
the real engine only, the EndpointSettings fields and the Engine API version gating.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
import uuid

import pytest

from controller.core.model import ContainerState, InjectedFile, NetworkAttachment
from controller.errors import ContainerRuntimeError, NotFound
from tests.integration import test_contract_runtime as contract
from tests.integration.test_contract_runtime import World

world = contract.world  # the same fixtures: the real engine and the fake, one contract
app_images = contract.app_images

SECRET = "s3cr3t-\N{SNOWMAN}-do-not-print"


def read_back(w: World, cid: str, target: str) -> tuple[str, int, int, int]:
    """(content, permission bits, uid, gid) of a file in the container: the real engine's
    `GET /containers/{id}/archive`, the fake's record."""
    if not w.real:
        f = w.rt.file_of(cid, target)
        return f.content, f.mode, f.uid, f.gid
    import docker

    api = docker.APIClient(version="auto")
    try:
        stream, _ = api.get_archive(cid, target)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            [m] = tar.getmembers()
            data = tar.extractfile(m)
            assert data is not None
            return data.read().decode(), m.mode & 0o7777, m.uid, m.gid
    finally:
        api.close()


def test_put_files_writes_each_file_before_start(world: World) -> None:
    cid = world.create()
    files = [
        InjectedFile("/run/secrets/db_password", SECRET + "\n", uid=1000, gid=1001, mode=0o400),
        InjectedFile("/etc/app/conf.d/app.conf", "level=debug\n"),  # 0444, root
    ]
    world.rt.put_files(cid, files)
    assert read_back(world, cid, "/run/secrets/db_password") == (SECRET + "\n", 0o400, 1000, 1001)
    assert read_back(world, cid, "/etc/app/conf.d/app.conf") == ("level=debug\n", 0o444, 0, 0)
    world.rt.start(cid)
    assert world.rt.inspect(cid).state is ContainerState.RUNNING
    if world.real:  # the process sees them, parents made as directories
        code, out = world.rt.exec(cid, ["sh", "-c", "cat /run/secrets/db_password; ls -ln /run"])
        assert code == 0 and out.startswith(SECRET + "\n") and "secrets" in out


def test_put_files_again_replaces_content_and_mode(world: World) -> None:
    cid = world.create()
    world.rt.put_files(cid, [InjectedFile("/run/secrets/token", "one", mode=0o440)])
    world.rt.put_files(cid, [InjectedFile("/run/secrets/token", "two", mode=0o400)])
    assert read_back(world, cid, "/run/secrets/token") == ("two", 0o400, 0, 0)


def test_put_files_into_a_missing_container_is_not_found(world: World) -> None:
    with pytest.raises(NotFound) as info:
        world.rt.put_files("0" * 64, [InjectedFile("/run/secrets/x", SECRET)])
    assert SECRET not in str(info.value)


def test_a_refused_write_never_quotes_the_content(world: World) -> None:
    """Docker does not write into a read-only root filesystem (compose `read_only: true`)."""
    cid = world.create(extra={"HostConfig": {"Init": True, "ReadonlyRootfs": True}})
    with pytest.raises(ContainerRuntimeError) as info:
        world.rt.put_files(cid, [InjectedFile("/run/secrets/x", SECRET)])
    assert "/run/secrets/x" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(ContainerRuntimeError) as relative:
        world.rt.put_files(cid, [InjectedFile("run/secrets/x", SECRET)])
    assert SECRET not in str(relative.value)
    assert SECRET not in repr(InjectedFile("/x", SECRET))


def test_stop_then_start_restarts_a_running_container(world: World) -> None:
    """What a depends_on `restart: true` dependent gets (controller/shell/rollout/dependents):
    it runs again, on its networks, not counted as a crash (restart count 0)."""
    cid = world.create()
    world.rt.start(cid)
    before = world.rt.inspect(cid)
    time.sleep(0.05 if world.real else 0)
    world.rt.stop(cid)
    world.rt.start(cid)
    after = world.rt.inspect(cid)
    assert after.state is ContainerState.RUNNING and after.restart_count == 0
    assert set(after.ips) == set(before.ips)
    assert after.started_at is not None and before.started_at is not None
    assert after.started_at >= before.started_at


# -- real Docker only: the EndpointSettings the core computes reach the engine -------------


def _v6_network(w: World, key: str) -> tuple[str, str, str]:
    """A user network with an IPv4 and an IPv6 subnet (compose's `enable_ipv6`); returns
    (name, IPv4 prefix, IPv6 prefix)."""
    import docker

    api = docker.APIClient(version="auto")
    name = f"{w.project}_{key}"
    n = uuid.uuid4().int
    v4, v6 = f"10.{200 + n % 50}.{(n >> 8) % 250}", f"fd00:{(n >> 16) % 0xFFFF:x}:{key}::"
    pools = [
        docker.types.IPAMPool(subnet=f"{v4}.0/24"),
        docker.types.IPAMPool(subnet=f"{v6}/64"),
    ]
    api.create_network(name, enable_ipv6=True, ipam=docker.types.IPAMConfig(pool_configs=pools))
    api.close()
    w.networks.append(name)
    return name, v4, v6


def _endpoints(cid: str) -> dict[str, dict[str, object]]:
    import docker

    api = docker.APIClient(version="auto")
    try:
        nets: dict[str, dict[str, object]] = api.inspect_container(cid)["NetworkSettings"][
            "Networks"
        ]
        return nets
    finally:
        api.close()


@pytest.mark.docker
@pytest.mark.parametrize("world", ["docker"], indirect=True)
def test_ipv6_link_local_and_driver_opts_reach_the_engine(world: World) -> None:
    front, _, v6a = _v6_network(world, "a1")
    back, _, v6b = _v6_network(world, "b2")
    first = NetworkAttachment(
        front,
        ("api",),
        ipv6_address=f"{v6a}42",
        link_local_ips=("169.254.10.10",),
        driver_opts=(("com.example.opt", "1"),),
    )
    second = NetworkAttachment(back, ("api",), ipv6_address=f"{v6b}43")  # connected
    cid = world.create(networks=(first, second))
    world.rt.start(cid)
    eps = _endpoints(cid)
    assert eps[front]["GlobalIPv6Address"] == f"{v6a}42"
    assert eps[front]["IPAMConfig"] == {
        "IPv6Address": f"{v6a}42",
        "LinkLocalIPs": ["169.254.10.10"],
    }
    assert eps[front]["DriverOpts"] == {"com.example.opt": "1"}
    assert eps[back]["GlobalIPv6Address"] == f"{v6b}43"
    world.rt.add_aliases(cid, [first, second])  # the reconnect keeps every field
    eps = _endpoints(cid)
    assert world.rt.aliases_of(cid) == {front: ("api",), back: ("api",)}
    assert eps[front]["GlobalIPv6Address"] == f"{v6a}42"
    assert eps[back]["GlobalIPv6Address"] == f"{v6b}43"
    assert eps[front]["DriverOpts"] == {"com.example.opt": "1"}


@pytest.mark.docker
@pytest.mark.parametrize("world", ["docker"], indirect=True)
def test_fields_of_a_newer_engine_api_are_left_out_and_logged_once(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.adapters import _docker_api

    monkeypatch.setattr(_docker_api, "_warned", set())
    assert world.rt.api_version == "1.41"  # this environment's engine (Docker 20.10)
    net = world.net()
    att = NetworkAttachment(net, ("api",), gw_priority=7)
    hc = {"Test": ["CMD", "true"], "Interval": 10**9, "StartInterval": 10**9}
    with caplog.at_level(logging.WARNING, logger="berth.docker"):
        a = world.create(n=1, networks=(att,), extra={"Healthcheck": hc})
        b = world.create(n=2, networks=(NetworkAttachment(world.net("x")), att))  # connect
    world.rt.start(a)
    world.rt.start(b)
    assert world.rt.inspect(b).state is ContainerState.RUNNING
    said = [r.getMessage() for r in caplog.records if r.name == "berth.docker"]
    assert len(said) == 2, said  # once per field, not per container
    assert any("Healthcheck.StartInterval needs 1.44" in m for m in said)
    assert any("EndpointSettings.GwPriority needs 1.48" in m for m in said)


# -- logs: the evidence a notification carries (controller/core/notify.py) ---------------


def test_logs_of_an_exited_container_end_with_its_last_words(world: World) -> None:
    cid = world.create("crash")
    world.rt.start(cid)
    world.until(cid, lambda s: s.state is ContainerState.EXITED)
    lines = world.rt.logs(cid, tail=20)
    assert lines and lines[-1] == contract.CRASH_LINE  # stderr is in it
    assert world.rt.logs(cid, tail=0) == []
    world.rt.remove(cid)
    with pytest.raises(NotFound):
        world.rt.logs(cid, tail=20)


def test_logs_tail_non_utf8_and_long_lines_against_the_engine(world: World) -> None:
    """Only the last `tail` lines, stdout and stderr both, undecodable bytes replaced, a
    long line returned whole (notify.bound_lines cuts it) and memory bounded."""
    if not world.real:
        pytest.skip("what the engine stores; the fake returns what it was given")
    # one stream: Docker orders stdout against stderr by when it read each pipe
    script = (
        "i=0; while [ $i -lt 30 ]; do echo out $i; i=$((i+1)); done; "
        "printf 'bad \\377\\376 bytes\\n'; "
        "head -c 5000 /dev/zero | tr '\\0' x; echo; echo last"
    )
    cid = world.create(extra={"Cmd": ["/bin/sh", "-c", script]})
    world.rt.start(cid)
    world.until(cid, lambda s: s.state is ContainerState.EXITED)
    lines = world.rt.logs(cid, tail=4)
    assert lines[0] == "out 29"
    assert lines[1] == "bad \ufffd\ufffd bytes"
    assert lines[2] == "x" * 5000
    assert lines[3] == "last"


def test_logs_of_a_running_container_return_without_following(world: World) -> None:
    """An unhealthy new container is still running when the abort reads its logs: the
    call must return what is there, not follow the stream until the container exits."""
    cid = world.create("unhealthy")
    world.rt.start(cid)
    assert isinstance(world.rt.logs(cid, tail=20), list)
    assert world.rt.inspect(cid).state is ContainerState.RUNNING


def test_many_threads_at_once_reuse_connections_without_a_pool_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """40 engine calls in flight at once (parallel rollouts inspect and probe their replicas
    side by side): each gets its answer, and no connection is dropped afterwards for a full
    pool (the SDK's default pool keeps 10). Each call is an event read bounded 1 s ahead, so
    the engine holds all 40 connections open together."""
    import concurrent.futures as cf

    from controller.adapters.docker_runtime import DockerRuntime

    rt = DockerRuntime(None)
    rt.list_containers(project="warm-up")  # the client exists before the threads start
    until = time.time() + 1.0

    def read(_: int) -> list[dict[str, object]]:
        return list(rt.events(since=until - 0.5, until=until))

    try:
        with (
            caplog.at_level(logging.WARNING, logger="urllib3"),
            cf.ThreadPoolExecutor(max_workers=40) as pool,
        ):
            answers = list(pool.map(read, range(40)))
    finally:
        rt.close()
    assert len(answers) == 40
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert full == []
