"""The create body -> Swarm ServiceSpec translation, and task documents -> Berth's view."""

from __future__ import annotations

from typing import Any

import pytest

from controller.adapters._swarm_rows import observed_from_service, status_from_service
from controller.core.model import ContainerState, NetworkAttachment
from controller.core.swarm_spec import SwarmSpecError, service_name, service_spec

LABELS = {
    "berth.managed": "true",
    "com.docker.compose.project": "shop",
    "com.docker.compose.service": "api",
    "berth.revision": "abcdef12",
    "berth.tag": "1.0.0",
}


def _spec(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return service_spec(
        name="shop-api-abcdef12-1",
        image="reg:5000/api:1.0.0@sha256:" + "a" * 64,
        body=body,
        labels=LABELS,
        networks=[NetworkAttachment(network="shop_backend", aliases=("api",))],
        replicas=kw.pop("replicas", 0),
        **kw,
    )


def test_the_demo_api_body_translates_field_by_field() -> None:
    body = {
        "Env": ["A=1"],
        "Cmd": ["serve"],
        "Entrypoint": ["/bin/app"],
        "ExposedPorts": {"8000/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10**9, "Retries": 3},
        "StopTimeout": 30,
        "User": "app",
        "WorkingDir": "/srv",
        "StopSignal": "SIGINT",
        "HostConfig": {
            "ReadonlyRootfs": True,
            "Init": True,
            "Tmpfs": {"/tmp": "size=64m,mode=1777"},
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}},
            "NanoCpus": 10**9,
            "Memory": 512 * 2**20,
            "PidsLimit": 256,
            "MemoryReservation": 256 * 2**20,
            "NetworkMode": "shop_backend",
            "Binds": ["/srv/data:/data:ro", "cache:/cache"],
            "CapDrop": ["ALL"],
            "ExtraHosts": ["db:10.0.0.5"],
            "Dns": ["10.0.0.2"],
        },
    }
    spec = _spec(body, constraints=["node.role==manager"], platform="linux/amd64")
    task = spec["TaskTemplate"]
    c = task["ContainerSpec"]
    assert spec["Name"] == "shop-api-abcdef12-1"
    assert spec["Labels"] == LABELS and c["Labels"] == LABELS
    assert spec["Mode"] == {"Replicated": {"Replicas": 0}}
    assert spec["EndpointSpec"] == {"Mode": "dnsrr"}
    assert c["Image"].endswith("@sha256:" + "a" * 64)
    assert (c["Env"], c["Args"], c["Command"]) == (["A=1"], ["serve"], ["/bin/app"])
    assert c["StopGracePeriod"] == 30 * 10**9 and c["StopSignal"] == "SIGINT"
    assert (c["User"], c["Dir"], c["ReadOnly"], c["Init"]) == ("app", "/srv", True, True)
    assert c["Healthcheck"]["Test"] == ["CMD", "true"]
    assert {
        "Type": "tmpfs",
        "Target": "/tmp",
        "TmpfsOptions": {"SizeBytes": 64 * 2**20, "Mode": 0o1777},
    } in c["Mounts"]
    assert {"Type": "bind", "Source": "/srv/data", "Target": "/data", "ReadOnly": True} in c[
        "Mounts"
    ]
    assert {"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": False} in c[
        "Mounts"
    ]
    assert c["CapabilityDrop"] == ["ALL"] and c["Hosts"] == ["10.0.0.5 db"]
    assert c["DNSConfig"] == {"Nameservers": ["10.0.0.2"]}
    assert task["Resources"] == {
        "Limits": {"NanoCPUs": 10**9, "MemoryBytes": 512 * 2**20, "Pids": 256},
        "Reservations": {"MemoryBytes": 256 * 2**20},
    }
    assert task["RestartPolicy"] == {"Condition": "any"}
    assert task["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "10m"}}
    assert task["Networks"] == [{"Target": "shop_backend", "Aliases": ["api"]}]
    assert task["Placement"] == {
        "Constraints": ["node.role==manager"],
        "Platforms": [{"OS": "linux", "Architecture": "amd64"}],
    }
    assert not any(k.startswith("_") for k in c)


def test_published_ports_become_host_mode_ports() -> None:
    body = {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "", "HostPort": "80"}]}}}
    assert _spec(body)["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host", "PublishedPort": 80}
        ],
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"HostConfig": {"Privileged": True}}, "HostConfig.Privileged"),
        ({"HostConfig": {"SecurityOpt": ["no-new-privileges:true"]}}, "HostConfig.SecurityOpt"),
        ({"HostConfig": {"Devices": [{"PathOnHost": "/dev/x"}]}}, "HostConfig.Devices"),
        ({"HostConfig": {"CpuShares": 512}}, "HostConfig.CpuShares"),
        ({"MacAddress": "02:42:ac:11:00:02"}, "MacAddress"),
        ({"Domainname": "example.org"}, "Domainname"),
    ],
)
def test_a_field_swarm_cannot_carry_is_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(SwarmSpecError, match=field.replace(".", r"\.")):
        _spec(body)


def test_a_chosen_host_address_cannot_be_published_by_swarm() -> None:
    body = {"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "80"}]}}}
    with pytest.raises(SwarmSpecError, match=r"127\.0\.0\.1"):
        _spec(body)


def test_service_names_are_what_swarm_accepts() -> None:
    assert service_name("my_proj-web.v2-abc-1") == "my-proj-web-v2-abc-1"
    long = service_name("p" * 80 + "-x-1")
    assert len(long) == 63 and long[-9] == "-"
    assert service_name("p" * 80 + "-x-1") != service_name("p" * 80 + "-x-2")


def _service(replicas: int = 1, check: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {"Image": "reg/api:1@sha256:" + "b" * 64}
    if check:
        container["Healthcheck"] = {"Test": ["CMD", "true"]}
    return {
        "ID": "svc1234567890abcdef",
        "CreatedAt": "2026-12-03T10:00:00.5Z",
        "Spec": {
            "Name": "shop-api-abcdef12-1",
            "Labels": {**LABELS, "com.docker.compose.container-number": "2"},
            "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"ContainerSpec": container},
        },
    }


def _task(state: str, desired: str = "running", index: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "ID": f"task{index}",
        "Version": {"Index": index},
        "DesiredState": desired,
        "NodeID": "node1",
        "Status": {"State": state, "Timestamp": "2026-12-03T10:00:01Z", **extra},
        "NetworksAttachments": [
            {"Network": {"Spec": {"Name": "shop_backend"}}, "Addresses": ["10.0.1.7/24"]}
        ],
    }


@pytest.mark.parametrize(
    ("state", "check", "expect", "health"),
    [
        ("preparing", True, ContainerState.CREATED, None),
        ("starting", True, ContainerState.RUNNING, "starting"),
        ("running", True, ContainerState.RUNNING, "healthy"),
        ("running", False, ContainerState.RUNNING, None),
        ("failed", True, ContainerState.EXITED, None),
    ],
)
def test_task_states_read_as_container_states(
    state: str, check: bool, expect: ContainerState, health: str | None
) -> None:
    row = observed_from_service(_service(check=check), [_task(state)])
    assert (row.state, row.health) == (expect, health)
    assert row.number == 2 and row.project == "shop" and row.tag == "1.0.0"
    assert row.ips == ({"shop_backend": "10.0.1.7"} if expect is ContainerState.RUNNING else {})


def test_tasks_swarm_replaced_count_as_restarts() -> None:
    tasks = [
        _task("failed", "shutdown", 3, ContainerStatus={"ExitCode": 1}),
        _task("rejected", "shutdown", 5),
        _task("running", "running", 9),
    ]
    st = status_from_service(_service(), tasks)
    assert st.state is ContainerState.RUNNING and st.restart_count == 2


def test_a_service_scaled_to_zero_reads_as_exited() -> None:
    tasks = [_task("shutdown", "shutdown", 4, ContainerStatus={"ExitCode": 0})]
    st = status_from_service(_service(replicas=0), tasks)
    assert st.state is ContainerState.EXITED and st.exit_code == 0 and st.ips == {}


def test_a_created_service_has_no_task_yet() -> None:
    row = observed_from_service(_service(replicas=0), [])
    assert row.state is ContainerState.CREATED and not row.ready


def test_a_replica_swarm_reschedules_reads_as_starting_not_as_drift() -> None:
    """Its node was lost: the old task is meant to shut down, a new one is on its way."""
    tasks = [_task("running", "shutdown", 4), _task("preparing", "running", 8)]
    row = observed_from_service(_service(), tasks)
    assert (row.state, row.health, row.ready) == (ContainerState.RUNNING, "starting", False)
    assert row.running, "the planner leaves it to Swarm"
    assert status_from_service(_service(), tasks).restart_count == 0


def test_a_task_moved_off_a_lost_node_is_no_restart_once_the_node_is_back() -> None:
    """The node thawed: Swarm had rescheduled its task and now reports it shut down. The
    revision did nothing wrong, so no gate may fail on it (seen in CI: a frozen worker)."""
    tasks = [_task("shutdown", "shutdown", 4), _task("running", "running", 8)]
    st = status_from_service(_service(), tasks)
    assert st.restart_count == 0 and st.state is ContainerState.RUNNING


def test_a_task_swarm_replaced_for_an_unhealthy_check_counts_as_a_restart() -> None:
    """Swarm stops it with SIGTERM, it exits 0: `complete`, no error; the next waits."""
    tasks = [
        _task("complete", "shutdown", 4, ContainerStatus={"ExitCode": 0}),
        _task("ready", "running", 8),
    ]
    st = status_from_service(_service(), tasks)
    assert st.restart_count == 1 and st.state is ContainerState.RUNNING


def test_a_manager_without_a_leader_is_busy_not_refusing() -> None:
    from controller.adapters.swarm_runtime import _manager_busy
    from controller.errors import ContainerRuntimeError, TemporaryError

    busy = "inspect service x: rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    assert _manager_busy(ContainerRuntimeError(busy))
    assert _manager_busy(ContainerRuntimeError("The swarm does not have a leader."))
    assert _manager_busy(TemporaryError("list services: Docker engine unreachable"))
    assert not _manager_busy(ContainerRuntimeError("This node is not a swarm manager."))
    assert not _manager_busy(ContainerRuntimeError("update out of sequence"))
