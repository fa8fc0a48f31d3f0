"""Compose -> Engine API translation: the create body must be what Docker expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.adapters.files import ConfigTree
from controller.core.compose import load_stack, normalize_project
from controller.core.model import StackSpec
from controller.errors import ConfigError
from tests.fakes_files import MemoryTree

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"
FILE = "/srv/stack/compose/c.yml"


def load(
    text: str,
    *,
    extra: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    project: str | None = "p",
    more: list[tuple[str, str]] | None = None,
) -> StackSpec:
    tree = MemoryTree({**(extra or {})}, root="/srv/stack", desired="/srv/stack/desired")
    return load_stack(
        project=project, files=[(FILE, text), *(more or [])], environ=env or {}, sources=tree
    )


def create(text: str, service: str = "s", **kw: Any) -> dict[str, Any]:
    return dict(load(text, **kw).services[service].create)


def host(text: str, service: str = "s", **kw: Any) -> dict[str, Any]:
    return dict(create(text, service, **kw).get("HostConfig", {}))


def test_fixture_stack_translates() -> None:
    root = FIXTURES / "good" / "compose"
    compose = root / "docker-compose.yml"

    stack = load_stack(
        project=None,
        files=[(str(compose), compose.read_text())],
        environ={"FROM_SHELL": "shell"},
        sources=ConfigTree(root=str(root.parent), desired=str(root.parent / "desired")),
    )
    assert stack.project == "shop-stack"  # `name: Shop-Stack`, normalised like compose
    api = stack.services["api"]
    assert api.replicas == 2
    assert api.has_healthcheck
    assert api.stop_grace_period == 30.0
    env = api.create["Env"]
    assert "LOG_LEVEL=debug" in env  # .env next to the compose file
    assert "DB_URL=postgres://db:5432/shop" in env
    assert "FROM_SHELL=shell" in env  # bare key comes from the environment
    assert "GREETING=hello shop" in env  # env_file interpolation
    assert "LITERAL=${NOT_EXPANDED}" in env
    assert api.create["HostConfig"]["RestartPolicy"] == {
        "Name": "unless-stopped",
        "MaximumRetryCount": 0,
    }
    assert api.create["HostConfig"]["LogConfig"]["Config"] == {"max-size": "10m", "max-file": "3"}
    assert api.networks[0].network == "shop-stack_backend"
    assert api.networks[0].aliases == ("api", "shop-api")
    assert api.berth.upstream is not None and api.berth.upstream.port == 8000
    assert api.berth.health is not None and api.berth.health.port == 8000  # from upstream
    assert stack.proxy is not None
    assert stack.proxy.upstreams_file == str(root.parent / "nginx" / "upstreams.conf")
    assert str(root / ".env") in stack.env_files and str(root / "api.env") in stack.env_files
    assert stack.volumes["dbdata"].name == "shared-pgdata"
    assert stack.services["db"].create["HostConfig"]["Mounts"][0]["Source"] == "shared-pgdata"
    assert [d.service for d in api.depends_on] == ["db"]
    assert api.depends_on[0].condition == "service_healthy"


def test_minimal_service_gets_default_network() -> None:
    stack = load("services:\n  s:\n    image: busybox\n")
    spec = stack.services["s"]
    assert spec.image == "busybox" and spec.replicas == 1
    assert spec.create == {"HostConfig": {"NetworkMode": "p_default"}}
    assert [n.name for n in stack.networks.values()] == ["p_default"]
    assert spec.networks[0].aliases == ("s",)
    assert not spec.has_healthcheck and spec.stop_grace_period == 10.0


def test_unused_default_network_is_not_created() -> None:
    stack = load(
        "services:\n  s:\n    image: busybox\n    networks: [n]\n"
        "networks:\n  n:\n    internal: true\n"
    )
    assert set(stack.networks) == {"n"}
    assert stack.networks["n"].internal


@pytest.mark.parametrize(
    ("spec", "exposed", "bindings"),
    [
        ('"3000"', ["3000/tcp"], {"3000/tcp": [{"HostIp": "", "HostPort": ""}]}),
        ("8000:80", ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": "8000"}]}),
        (
            '"127.0.0.1:8001:8001"',
            ["8001/tcp"],
            {"8001/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8001"}]},
        ),
        ('"6060:6060/udp"', ["6060/udp"], {"6060/udp": [{"HostIp": "", "HostPort": "6060"}]}),
        ('"[::1]:6001:6001"', ["6001/tcp"], {"6001/tcp": [{"HostIp": "::1", "HostPort": "6001"}]}),
        (
            '"9090-9091:8080-8081"',
            ["8080/tcp", "8081/tcp"],
            {
                "8080/tcp": [{"HostIp": "", "HostPort": "9090"}],
                "8081/tcp": [{"HostIp": "", "HostPort": "9091"}],
            },
        ),
        (
            "{target: 80, published: 8080, protocol: tcp, mode: host}",
            ["80/tcp"],
            {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        ),
        (80, ["80/tcp"], {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ],
)
def test_ports(spec: str, exposed: list[str], bindings: dict[str, Any]) -> None:
    body = create(f"services:\n  s:\n    image: x\n    ports:\n      - {spec}\n")
    assert sorted(body["ExposedPorts"]) == exposed
    assert body["HostConfig"]["PortBindings"] == bindings


def test_expose() -> None:
    body = create('services:\n  s:\n    image: x\n    expose: ["3000", "4000-4001/udp", 5000]\n')
    assert body["ExposedPorts"] == {"3000/tcp": {}, "4000/udp": {}, "4001/udp": {}, "5000/tcp": {}}
    assert "PortBindings" not in body.get("HostConfig", {})


@pytest.mark.parametrize(
    ("mem", "expected"),
    [
        ("512m", 512 * 1024**2),
        ("1g", 1024**3),
        ("1.5gb", int(1.5 * 1024**3)),
        ("100", 100),
        (2048, 2048),
        ("1GiB", 1024**3),
        ("64k", 65536),
    ],
)
def test_memory_sizes(mem: object, expected: int) -> None:
    """Size parsing (shm_size has no minimum; a memory limit must be 6MB at least)."""
    assert host(f"services:\n  s:\n    image: x\n    shm_size: {mem}\n")["ShmSize"] == expected


def test_command_entrypoint_shell_split() -> None:
    body = create(
        "services:\n  s:\n    image: x\n"
        "    command: sh -c 'echo \"hi there\" && sleep 1'\n"
        "    entrypoint: /bin/tini --\n"
    )
    assert body["Cmd"] == ["sh", "-c", 'echo "hi there" && sleep 1']
    assert body["Entrypoint"] == ["/bin/tini", "--"]
    assert create("services:\n  s:\n    image: x\n    entrypoint: []\n")["Entrypoint"] == [""]


def test_environment_forms_and_env_file_precedence() -> None:
    extra = {"/srv/stack/compose/e.env": "A=from-file\nB=file\n"}
    body = create(
        "services:\n  s:\n    image: x\n    env_file: [e.env]\n"
        "    environment: [A=inline, C, D, E=1=2]\n",
        extra=extra,
        env={"C": "shell"},
    )
    assert body["Env"] == ["A=inline", "B=file", "C=shell", "D", "E=1=2"]  # D unset: bare
    body = create("services:\n  s:\n    image: x\n    environment: {N: 1, T: true, Z: null}\n")
    assert body["Env"] == ["N=1", "T=true", "Z"]


def test_optional_env_file_may_be_missing() -> None:
    body = create(
        "services:\n  s:\n    image: x\n    env_file: [{path: gone.env, required: false}]\n"
    )
    assert "Env" not in body


def test_volumes() -> None:
    h = host(
        "services:\n  s:\n    image: x\n    volumes:\n"
        "      - data:/d:ro,nocopy\n"
        "      - ./conf:/etc/c\n"
        "      - ~/keys:/keys:ro\n"
        "      - /cache\n"
        "      - {type: bind, source: ../shared, target: /sh, read_only: true,"
        " bind: {propagation: rslave}}\n"
        "      - {type: volume, source: data, target: /d2, volume: {nocopy: true}}\n"
        "volumes:\n  data: {driver: local, driver_opts: {type: none}}\n",
        env={"HOME": "/home/op"},
    )
    # compose's toBindString: short-syntax binds, and long-syntax ones (compose-go defaults
    # create_host_path to true), go to Binds; the engine creates a missing source
    assert h["Binds"] == [
        "/srv/stack/compose/conf:/etc/c:rw",
        "/home/op/keys:/keys:ro",
        "/srv/stack/shared:/sh:ro,rslave",
    ]
    assert h["Mounts"] == [
        {
            "Type": "volume",
            "Target": "/d",
            "ReadOnly": True,
            "Source": "p_data",
            "VolumeOptions": {"NoCopy": True},
        },
        {"Type": "volume", "Target": "/cache", "ReadOnly": False},
        {
            "Type": "volume",
            "Target": "/d2",
            "ReadOnly": False,
            "Source": "p_data",
            "VolumeOptions": {"NoCopy": True},
        },
    ]


@pytest.mark.parametrize(
    ("hc", "expected", "has"),
    [
        (
            '{test: ["CMD", "true"], interval: 1m, timeout: 3s, retries: 5, start_period: 250ms}',
            {
                "Test": ["CMD", "true"],
                "Interval": 60_000_000_000,
                "Timeout": 3_000_000_000,
                "Retries": 5,
                "StartPeriod": 250_000_000,
            },
            True,
        ),
        (
            '{test: ["CMD-SHELL", "curl -f localhost"]}',
            {"Test": ["CMD-SHELL", "curl -f localhost"]},
            True,
        ),
        ("{test: curl -f localhost}", {"Test": ["CMD-SHELL", "curl -f localhost"]}, True),
        ("{disable: true}", {"Test": ["NONE"]}, False),
        ('{test: ["NONE"]}', {"Test": ["NONE"]}, False),
    ],
)
def test_healthcheck(hc: str, expected: dict[str, Any], has: bool) -> None:
    spec = load(f"services:\n  s:\n    image: x\n    healthcheck: {hc}\n").services["s"]
    assert spec.create["Healthcheck"] == expected
    assert spec.has_healthcheck is has


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        ('"no"', {"Name": "no", "MaximumRetryCount": 0}),
        ("always", {"Name": "always", "MaximumRetryCount": 0}),
        ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
        ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ],
)
def test_restart(value: str, policy: dict[str, Any]) -> None:
    assert host(f"services:\n  s:\n    image: x\n    restart: {value}\n")["RestartPolicy"] == policy


def test_host_config_scalars() -> None:
    spec = load(
        "services:\n  s:\n    image: x\n    privileged: true\n    cap_add: [NET_ADMIN]\n"
        "    shm_size: 64m\n    dns: 1.1.1.1\n    sysctls: [net.ipv4.ip_forward=1]\n"
        "    extra_hosts: {db: 10.0.0.2}\n    cpus: 0.5\n    stop_grace_period: 1m30s\n"
        "    hostname: h\n    working_dir: /app\n    user: nobody\n    stop_signal: SIGINT\n"
        "    labels: [a=b, c]\n    ulimits: {nofile: 100}\n    init: true\n"
    ).services["s"]
    body, h = spec.create, spec.create["HostConfig"]
    assert h["Privileged"] is True and h["CapAdd"] == ["NET_ADMIN"]
    assert h["ShmSize"] == 64 * 1024**2 and h["Dns"] == ["1.1.1.1"]
    assert h["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert h["ExtraHosts"] == ["db:10.0.0.2"]
    assert h["NanoCpus"] == 500_000_000
    assert h["Ulimits"] == [{"Name": "nofile", "Soft": 100, "Hard": 100}]
    assert h["Init"] is True
    assert body["StopTimeout"] == 90 and spec.stop_grace_period == 90.0
    assert (body["Hostname"], body["WorkingDir"], body["User"], body["StopSignal"]) == (
        "h",
        "/app",
        "nobody",
        "SIGINT",
    )
    assert body["Labels"] == {"a": "b", "c": ""}


def test_gpu_reservation_defaults_to_all_devices() -> None:
    h = host(
        "services:\n  s:\n    image: x\n    deploy:\n      resources:\n        reservations:\n"
        "          devices: [{capabilities: [gpu]}]\n"
    )
    assert h["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]


def test_networks_map_with_alias_and_ip() -> None:
    spec = load(
        "services:\n  s:\n    image: x\n    networks:\n      front:\n        aliases: [web]\n"
        "        ipv4_address: 172.20.0.5\n      back:\nnetworks:\n  front: {}\n"
        "  back: {external: true}\n"
    ).services["s"]
    assert [(n.network, n.aliases, n.ipv4_address) for n in spec.networks] == [
        ("back", ("s",), None),  # compose's order: priority (all 0), then key name
        ("p_front", ("s", "web"), "172.20.0.5"),
    ]
    assert spec.create["HostConfig"]["NetworkMode"] == "back"


def test_merge_of_two_files() -> None:
    override = (
        "/srv/stack/compose/override.yml",
        "services:\n  s:\n    environment: [B=2, A=override]\n    ports: ['81:81']\n"
        "    command: [new]\n    volumes: ['./other:/data']\n    deploy: {replicas: 4}\n",
    )
    spec = load(
        "services:\n  s:\n    image: x\n    environment: {A: 1}\n    ports: ['80:80']\n"
        "    command: [old, args]\n    volumes: ['./d:/data', './l:/logs']\n",
        more=[override],
    ).services["s"]
    assert spec.create["Env"] == ["A=override", "B=2"]
    assert sorted(spec.create["ExposedPorts"]) == ["80/tcp", "81/tcp"]
    assert spec.create["Cmd"] == ["new"]
    assert sorted(spec.create["HostConfig"]["Binds"]) == [
        "/srv/stack/compose/l:/logs:rw",
        "/srv/stack/compose/other:/data:rw",
    ]
    assert spec.replicas == 4


def test_error_in_second_file_points_into_it() -> None:
    override = ("/srv/stack/compose/override.yml", "services:\n  s:\n    cpu_count: 2\n")
    with pytest.raises(ConfigError) as info:
        load("services:\n  s:\n    image: x\n", more=[override])
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.field) == (override[0], 3, "services.s.cpu_count")


def test_project_name_fallbacks() -> None:
    assert load("services: {s: {image: x}}\n", project=None).project == "compose"  # directory
    assert load("name: My_App!\nservices: {s: {image: x}}\n", project=None).project == "my_app"
    assert load("name: other\nservices: {s: {image: x}}\n", project="given").project == "given"
    assert normalize_project("-_Web.App 2") == "webapp2"


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load(
            "services:\n  a:\n    image: x\n    container_name: a\n    scale: 3\n"
            "  b:\n    image: y\n    stop_grace_period: soon\n    secrets: [s]\n"
        )
    fields = sorted(p.field for p in info.value.problems)
    assert fields == [
        "services.a.container_name",
        "services.b.secrets[0]",  # not declared under top-level secrets
        "services.b.stop_grace_period",
    ]


def test_build_without_image_builds_project_service_and_with_image_pulls_first() -> None:
    with_image = load("services:\n  s:\n    image: x\n    build: .\n").services["s"]
    assert with_image.image == "x" and with_image.build and with_image.build.pull_first
    with pytest.raises(ConfigError, match="no Dockerfile"):  # it would have to build
        load("services:\n  s:\n    build: .\n")


def test_depends_on_cycle_and_unknown_service() -> None:
    with pytest.raises(ConfigError, match="dependency cycle: a -> b -> a"):
        load("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n")
    with pytest.raises(ConfigError, match="not another service"):
        load("services:\n  a: {image: x, depends_on: [ghost]}\n")


def test_x_extensions_are_ignored_but_x_berth_is_checked() -> None:
    stack = load("x-anything: {whatever: 1}\nservices:\n  s: {image: x, x-note: hi}\n")
    assert "s" in stack.services
    with pytest.raises(ConfigError, match="unknown key"):
        load("services:\n  s: {image: x, x-berth: {stratgy: stop-first}}\n")


def test_conflicting_limits_are_reported() -> None:
    with pytest.raises(ConfigError, match="conflicts"):
        load(
            "services:\n  s:\n    image: x\n    mem_limit: 1g\n"
            "    deploy: {resources: {limits: {memory: 2g}}}\n"
        )
