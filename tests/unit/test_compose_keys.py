"""Issue 12: compose keys honoured as compose (without swarm) honours them, each asserted on
the exact Engine API body (or ServiceSpec field) Berth sends."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core.compose.api_versions import endpoint_for_engine, for_engine
from controller.core.compose.context import StackCtx
from controller.core.compose.image_opts import pull_interval
from controller.core.compose.secrets import check_definitions
from controller.core.compose.service import translate_service
from controller.core.model import InjectedFile, NetworkDef, ServiceSpec
from controller.core.yamlsrc import COMPOSE_TAGS, Located, load_node, unwrap
from controller.errors import ConfigError, Problem
from tests.fakes_files import MemoryTree
from tests.unit.test_compose_translate import FILE, create, host, load

ROOT = "/srv/stack"
NETS = {
    "default": NetworkDef(name="p_default", key="default"),
    "front": NetworkDef(name="p_front", key="front"),
    "back": NetworkDef(name="p_back", key="back"),
}


def translate(
    text: str, *, env: dict[str, str] | None = None, extra: dict[str, str] | None = None
) -> tuple[ServiceSpec | None, list[Problem]]:
    """Service `s` translated on its own, the top-level secrets/configs checked once (as
    the stack loader is to call check_definitions)."""
    data, table = unwrap(load_node(text, FILE, tags=COMPOSE_TAGS))
    loc = Located(data, table, FILE)
    tree = MemoryTree(extra or {}, root=ROOT, desired=f"{ROOT}/desired")
    ctx = StackCtx(
        loc=loc,
        project="p",
        project_dir=f"{ROOT}/compose",
        env=env or {},
        files=tree,
        networks=NETS,
        volumes={},
    )
    check_definitions(ctx)
    spec, _ = translate_service(ctx, "s", data["services"]["s"])
    return spec, loc.problems


def ok(text: str, **kw: Any) -> ServiceSpec:
    spec, problems = translate(text, **kw)
    assert problems == [] and spec is not None
    return spec


def refused(text: str, **kw: Any) -> dict[str, str]:
    """field -> message of every problem."""
    _, problems = translate(text, **kw)
    assert problems
    return {p.field: p.message for p in problems}


SVC = "services:\n  s:\n    image: x\n"
SECRET_FILES = {f"{ROOT}/compose/db.txt": "pw", f"{ROOT}/compose/app.conf": "a=1"}


# --- secrets and configs ------------------------------------------------------------------


def test_file_secrets_and_configs_are_read_only_binds() -> None:
    spec = ok(
        SVC + "    secrets: [db, {source: db, target: other}, {source: db, target: /etc/pw}]\n"
        "    configs: [app, {source: app, target: etc/app.conf}]\n"
        "secrets:\n  db: {file: ./db.txt, name: ignored-without-swarm, labels: [a=b]}\n"
        "configs:\n  app: {file: app.conf}\n",
        extra=SECRET_FILES,
    )
    src_db, src_app = f"{ROOT}/compose/db.txt", f"{ROOT}/compose/app.conf"
    assert spec.create["HostConfig"]["Mounts"] == [
        {"Type": "bind", "Target": "/run/secrets/db", "ReadOnly": True, "Source": src_db},
        {"Type": "bind", "Target": "/run/secrets/other", "ReadOnly": True, "Source": src_db},
        {"Type": "bind", "Target": "/etc/pw", "ReadOnly": True, "Source": src_db},
        {"Type": "bind", "Target": "/app", "ReadOnly": True, "Source": src_app},
        {"Type": "bind", "Target": "/etc/app.conf", "ReadOnly": True, "Source": src_app},
    ]
    assert spec.files == ()


def test_secret_mounts_follow_the_volumes() -> None:
    spec = ok(
        SVC + "    volumes: ['./d:/d']\n    secrets: [db]\nsecrets:\n  db: {file: db.txt}\n",
        extra=SECRET_FILES,
    )
    assert spec.create["HostConfig"]["Binds"] == [f"{ROOT}/compose/d:/d:rw"]  # compose's way
    assert [m["Target"] for m in spec.create["HostConfig"]["Mounts"]] == ["/run/secrets/db"]


def test_environment_and_content_sources_are_files_for_the_shell() -> None:
    spec = ok(
        SVC + "    secrets: [{source: token, uid: '1000', gid: '1001', mode: 0400}]\n"
        "    configs: [inline, {source: fromenv, target: /etc/e.conf, mode: '0640'}]\n"
        "secrets:\n  token: {environment: TOKEN}\n"
        "configs:\n  inline: {content: 'hello'}\n  fromenv: {environment: CONF}\n",
        env={"TOKEN": "s3cr3t-value", "CONF": "k=v"},
    )
    assert spec.files == (
        InjectedFile("/run/secrets/token", "s3cr3t-value", uid=1000, gid=1001, mode=0o400),
        InjectedFile("/inline", "hello", mode=0o444),
        InjectedFile("/etc/e.conf", "k=v", mode=0o640),
    )
    assert "Mounts" not in spec.create.get("HostConfig", {})
    assert "s3cr3t" not in repr(spec.files)  # the value is never shown


def test_secret_content_changes_the_revision() -> None:
    from controller.core.model import revision_of

    text = SVC + "    secrets: [t]\nsecrets:\n  t: {environment: T}\n"
    one, two = ok(text, env={"T": "a"}), ok(text, env={"T": "b"})
    assert revision_of("x:1", one) != revision_of("x:1", two)


@pytest.mark.parametrize(
    ("top", "ref", "field", "why"),
    [
        ("{external: true}", "[s1]", "secrets.s1.external", "swarm"),
        ("{external: {name: n}}", "[s1]", "secrets.s1.external", "swarm"),
        ("{file: db.txt, driver: vault}", "[s1]", "secrets.s1.driver", "swarm"),
        ("{file: db.txt, template_driver: golang}", "[s1]", "secrets.s1.template_driver", "swarm"),
        ("{content: inline}", "[s1]", "secrets.s1.content", "unknown key"),
        ("{}", "[s1]", "secrets.s1", "exactly one of file, environment"),
        ("{file: db.txt, environment: X}", "[s1]", "secrets.s1", "exactly one"),
        ("{environment: UNSET}", "[s1]", "secrets.s1.environment", "is not set"),
        ("{file: ../../etc/shadow}", "[s1]", "secrets.s1.file", "outside the compose root"),
        ("{file: ../desired/x}", "[s1]", "secrets.s1.file", "inside desired/"),
        ("{file: db.txt}", "[ghost]", "services.s.secrets[0]", "not declared"),
        ("{file: db.txt}", "[{source: s1, uid: '0'}]", "services.s.secrets[0].uid", "host"),
        ("{file: db.txt}", "[{source: s1, mode: 0400}]", "services.s.secrets[0].mode", "host"),
        ("{file: db.txt}", "[{source: s1, target: /}]", "services.s.secrets[0]", "file path"),
        ("{file: db.txt}", "[{source: s1, extra: 1}]", "services.s.secrets[0].extra", "unknown"),
        ("{file: db.txt}", "[{target: /x}]", "services.s.secrets[0].source", "string"),
        ("{file: db.txt}", "s1", "services.s.secrets", "must be a list"),
        ("{file: db.txt}", "[s1, s1]", "services.s.secrets[1]", "duplicate mount point"),
        ("{environment: T}", "[{source: s1, uid: root}]", "services.s.secrets[0].uid", "numeric"),
        ("{environment: T}", "[{source: s1, mode: 99999}]", "services.s.secrets[0].mode", "<="),
        ("{environment: T}", "[{source: s1, uid: 99999999999}]", "services.s.secrets[0].uid", ""),
        ("[not, a, map]", "[s1]", "secrets.s1", "mapping"),
    ],
)
def test_secret_refusals(top: str, ref: str, field: str, why: str) -> None:
    problems = refused(
        SVC + f"    secrets: {ref}\nsecrets:\n  s1: {top}\n", extra=SECRET_FILES, env={"T": "v"}
    )
    assert field in problems, problems
    assert why in problems[field]


def test_injected_file_in_read_only_container_is_refused() -> None:
    problems = refused(SVC + "    read_only: true\n    configs: [c]\nconfigs:\n  c: {content: x}\n")
    assert "read_only" in problems["services.s.configs[0]"]


def test_huge_environment_source_is_refused() -> None:
    big = "x" * (1024 * 1024 + 1)
    problems = refused(
        SVC + "    configs: [c]\nconfigs:\n  c: {environment: BIG}\n", env={"BIG": big}
    )
    assert "1 MiB" in problems["configs.c.environment"]


def test_unused_bad_definition_is_reported_once() -> None:
    _, problems = translate(
        SVC + "    secrets: [a]\n  t:\n    image: x\n    secrets: [a]\n"
        "secrets:\n  a: {external: true}\n  unused: {driver: x, file: db.txt}\n",
        extra=SECRET_FILES,
    )
    fields = [p.field for p in problems]
    assert fields.count("secrets.a.external") == 1
    assert "secrets.unused.driver" in fields


# --- image, runtime, gpus, pull policy ---------------------------------------------------


def test_runtime_platform_pull_policy() -> None:
    spec = ok(SVC + "    runtime: nvidia\n    platform: linux/ARM64/v8\n    pull_policy: daily\n")
    assert spec.create["HostConfig"]["Runtime"] == "nvidia"
    assert (spec.platform, spec.pull_policy) == ("linux/arm64/v8", "daily")


@pytest.mark.parametrize(
    ("policy", "seconds"),
    [
        ("always", None),
        ("never", None),
        ("missing", None),
        ("if_not_present", None),
        ("build", None),
        ("daily", 86400.0),
        ("weekly", 604800.0),
        ("every_12h", 43200.0),
        ("every_1w2d3h4m5s", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5.0),
    ],
)
def test_pull_policies(policy: str, seconds: float | None) -> None:
    assert ok(SVC + f"    pull_policy: {policy}\n").pull_policy == policy
    assert pull_interval(policy) == seconds


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("pull_policy", "sometimes", "is not one of"),
        ("pull_policy", "refresh", "not supported"),
        ("pull_policy", "every_0s", "is not one of"),
        ("pull_policy", "every_5x", "is not one of"),
        ("pull_policy", "[always]", "must be a string"),
        ("platform", "linux amd64", "not a platform"),
        ("platform", "a/b/c/d", "not a platform"),
        ("runtime", "'run c'", "not a runtime"),
        ("runtime", "{a: 1}", "must be a string"),
        ("mac_address", "02:42:ac:11:00", "not a MAC address"),
    ],
)
def test_image_option_refusals(key: str, value: str, why: str) -> None:
    assert why in refused(SVC + f"    {key}: {value}\n")[f"services.s.{key}"]


def test_gpus_all_and_list() -> None:
    assert host("services:\n  s:\n    image: x\n    gpus: all\n")["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    h = host(
        "services:\n  s:\n    image: x\n    gpus:\n"
        "      - {driver: nvidia, count: 2, capabilities: [compute], options: {a: b}}\n"
        "      - {device_ids: ['0', '3']}\n"
        "    deploy: {resources: {reservations: {devices: [{capabilities: [tpu]}]}}}\n"
    )
    assert h["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["tpu"]], "Options": {}},
        {
            "Driver": "nvidia",
            "Count": 2,
            "DeviceIDs": [],
            "Capabilities": [["compute", "gpu"]],
            "Options": {"a": "b"},
        },
        {
            "Driver": "",
            "Count": 0,
            "DeviceIDs": ["0", "3"],
            "Capabilities": [["gpu"]],
            "Options": {},
        },
    ]


@pytest.mark.parametrize(
    ("value", "field", "why"),
    [
        ("some", "services.s.gpus", "'all' or a list"),
        ("[{count: 0}]", "services.s.gpus[0].count", ">= 1"),
        ("[{count: 99999999999999999999}]", "services.s.gpus[0].count", "<="),
        ("[{count: 1, device_ids: ['0']}]", "services.s.gpus[0]", "mutually exclusive"),
        ("[{colour: red}]", "services.s.gpus[0].colour", "unknown key"),
    ],
)
def test_gpus_refusals(value: str, field: str, why: str) -> None:
    assert why in refused(SVC + f"    gpus: {value}\n")[field]


# --- restart policies and dependencies ----------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("{condition: none}", {"Name": "no", "MaximumRetryCount": 0}),
        ("{condition: any}", {"Name": "always", "MaximumRetryCount": 0}),
        ("{}", {"Name": "", "MaximumRetryCount": 0}),  # compose: no condition, no restart
        (
            "{condition: on-failure, max_attempts: 3}",
            {"Name": "on-failure", "MaximumRetryCount": 3},
        ),
        ("{condition: on-failure}", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ],
)
def test_deploy_restart_policy(policy: str, expected: dict[str, Any]) -> None:
    h = host(f"services:\n  s:\n    image: x\n    deploy: {{restart_policy: {policy}}}\n")
    assert h["RestartPolicy"] == expected


@pytest.mark.parametrize(
    ("policy", "field", "why"),
    [
        ("{condition: sometimes}", "condition", "none, on-failure or any"),
        ("{condition: any, max_attempts: 3}", "max_attempts", "only applies to"),
        ("{condition: on-failure, max_attempts: -1}", "max_attempts", ">= 0"),
        ("{condition: on-failure, max_attempts: 1e99}", "max_attempts", "integer"),
        ("{delay: 5s}", "delay", "no delay"),
        ("{window: 1m}", "window", "no window"),
    ],
)
def test_deploy_restart_policy_refusals(policy: str, field: str, why: str) -> None:
    problems = refused(SVC + f"    deploy: {{restart_policy: {policy}}}\n")
    assert why in problems[f"services.s.deploy.restart_policy.{field}"]


def test_restart_and_deploy_restart_policy_must_agree() -> None:
    problems = refused(
        SVC + "    restart: always\n    deploy: {restart_policy: {condition: none}}\n"
    )
    assert "conflicts" in problems["services.s.deploy.restart_policy"]
    same = ok(SVC + "    restart: always\n    deploy: {restart_policy: {condition: any}}\n")
    assert same.create["HostConfig"]["RestartPolicy"]["Name"] == "always"


def test_depends_on_restart_is_carried() -> None:
    stack = load(
        "services:\n  s:\n    image: x\n    depends_on:\n"
        "      db: {condition: service_healthy, restart: true}\n"
        "      cache: {condition: service_started}\n"
        "  db: {image: x}\n  cache: {image: x}\n"
    )
    deps = {d.service: d.restart for d in stack.services["s"].depends_on}
    assert deps == {"db": True, "cache": False}
    assert (
        "true or false"
        in refused(
            SVC
            + "    depends_on: {t: {condition: service_started, restart: maybe}}\n  t: {image: x}\n"
        )["services.s.depends_on.t.restart"]
    )


# --- healthcheck, stop, logging, resources ------------------------------------------------


def test_start_interval_is_sent_and_marked_for_old_engines() -> None:
    body = create(
        "services:\n  s:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n"
        "      start_period: 30s\n      start_interval: 500ms\n"
    )
    assert body["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "StartPeriod": 30_000_000_000,
        "StartInterval": 500_000_000,
    }
    old, dropped = for_engine(body, "1.41")
    assert old["Healthcheck"] == {"Test": ["CMD", "true"], "StartPeriod": 30_000_000_000}
    assert dropped == ["Healthcheck.StartInterval"]
    assert body["Healthcheck"]["StartInterval"] == 500_000_000  # the spec is untouched
    assert for_engine(body, "1.44") == (body, [])
    assert for_engine({"Env": []}, "1.41") == ({"Env": []}, [])


def test_start_interval_needs_start_period() -> None:
    problems = refused(SVC + "    healthcheck: {test: [CMD, 'true'], start_interval: 1s}\n")
    assert "start_period" in problems["services.s.healthcheck.start_interval"]


@pytest.mark.parametrize(("grace", "seconds"), [("1.9s", 1), ("500ms", 0), ("1m30s", 90)])
def test_stop_timeout_is_truncated_as_compose_does(grace: str, seconds: int) -> None:
    spec = ok(SVC + f"    stop_grace_period: {grace}\n")
    assert spec.create["StopTimeout"] == seconds


def test_logging_without_driver_uses_the_daemon_default() -> None:
    h = host("services:\n  s:\n    image: x\n    logging: {options: {max-size: 10m}}\n")
    assert h["LogConfig"] == {"Type": "", "Config": {"max-size": "10m"}}


def test_cpu_reservation_has_no_effect_without_swarm() -> None:
    spec = ok(SVC + "    deploy: {resources: {reservations: {cpus: '0.5', memory: 64m}}}\n")
    assert spec.create["HostConfig"] == {
        "NetworkMode": "p_default",
        "MemoryReservation": 64 * 1024**2,
    }
    assert (
        ">= 0"
        in refused(SVC + "    deploy: {resources: {reservations: {cpus: -1}}}\n")[
            "services.s.deploy.resources.reservations.cpus"
        ]
    )


def test_long_syntax_devices() -> None:
    h = host(
        "services:\n  s:\n    image: x\n    devices:\n      - /dev/fuse\n"
        "      - {source: /dev/sda, target: /dev/xvda, permissions: r}\n"
        "      - {source: /dev/kvm}\n"
    )
    assert h["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
        {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm", "CgroupPermissions": "rwm"},
    ]


@pytest.mark.parametrize(
    ("item", "field", "why"),
    [
        ("{target: /dev/x}", "services.s.devices[0].source", "string"),
        ("{source: /dev/x, permissions: rwx}", "services.s.devices[0]", "some of r, w, m"),
        ("{source: /dev/x, target: dev}", "services.s.devices[0]", "absolute"),
        ("{source: nvidia.com/gpu=all}", "services.s.devices[0]", "CDI"),
        ("{source: /dev/x, mode: 1}", "services.s.devices[0].mode", "unknown key"),
        ("{source: /srv/stack/desired}", "services.s.devices[0]", "desired/"),
    ],
)
def test_long_syntax_device_refusals(item: str, field: str, why: str) -> None:
    assert why in refused(SVC + f"    devices: [{item}]\n")[field]


# --- environment ----------------------------------------------------------------------------


def test_bare_key_unset_everywhere_is_sent_bare() -> None:
    body = create(
        "services:\n  s:\n    image: x\n    environment: [SET, UNSET]\n", env={"SET": "1"}
    )
    assert body["Env"] == ["SET=1", "UNSET"]


def test_bare_key_overrides_the_env_file_as_in_compose() -> None:
    body = create(
        "services:\n  s:\n    image: x\n    env_file: e.env\n    environment: [A]\n",
        extra={"/srv/stack/compose/e.env": "A=file\n"},
    )
    assert body["Env"] == ["A"]


def test_env_file_raw_format_is_taken_literally() -> None:
    raw = "  A='quoted' \nB=$X ${Y}\n# comment\nC=a # not a comment\nBARE\nMISSING\n"
    body = create(
        "services:\n  s:\n    image: x\n    env_file: [{path: e.env, format: raw}]\n",
        extra={"/srv/stack/compose/e.env": raw},
        env={"X": "x", "BARE": "from-env"},
    )
    assert body["Env"] == ["A='quoted' ", "B=$X ${Y}", "C=a # not a comment", "BARE=from-env"]


def test_env_file_raw_refuses_a_key_with_blanks() -> None:
    with pytest.raises(ConfigError) as info:
        create(
            "services:\n  s:\n    image: x\n    env_file: [{path: e.env, format: raw}]\n",
            extra={"/srv/stack/compose/e.env": "A B=1\n"},
        )
    [problem] = info.value.problems
    assert (problem.file, problem.line) == ("/srv/stack/compose/e.env", 1)


def test_env_file_interpolation_looks_up_the_project_environment_first() -> None:
    env_file = "V=file\nW=${V}\nX=${S}\nY=${ONLY_FILE}\nONLY_FILE=late\nZ=${ONLY_FILE}\n"
    body = create(
        "services:\n  s:\n    image: x\n    env_file: e.env\n    environment: {S: from-svc}\n",
        extra={"/srv/stack/compose/e.env": env_file},
        env={"V": "project"},
    )
    # compose-go: project env, then the service's environment, then the file's own values
    assert body["Env"] == [
        "V=file",
        "W=project",
        "X=from-svc",
        "Y=",
        "ONLY_FILE=late",
        "Z=late",
        "S=from-svc",
    ]


# --- networks ----------------------------------------------------------------------------


def test_primary_network_by_priority_then_name() -> None:
    spec = ok(
        SVC + "    networks:\n      front: {priority: 10}\n      back: {priority: 100}\n"
        "      default:\n"
    )
    assert [n.network for n in spec.networks] == ["p_back", "p_front", "p_default"]
    assert spec.create["HostConfig"]["NetworkMode"] == "p_back"
    spec = ok(SVC + "    networks: [front, back]\n")
    assert spec.create["HostConfig"]["NetworkMode"] == "p_back"


def test_endpoint_options_become_endpoint_settings() -> None:
    spec = ok(
        SVC + "    networks:\n      front:\n        aliases: [web]\n"
        "        ipv4_address: 10.0.0.5\n        ipv6_address: 'fd00::5'\n"
        "        link_local_ips: [169.254.1.1, 'fe80::1']\n"
        "        driver_opts: {com.docker.network.endpoint.sysctls: 'x=1', n: 5}\n"
        "        gw_priority: 7\n"
    )
    [att] = spec.networks
    assert att.endpoint_settings(aliases=True) == {
        "Aliases": ["s", "web"],
        "IPAMConfig": {
            "IPv4Address": "10.0.0.5",
            "IPv6Address": "fd00::5",
            "LinkLocalIPs": ["169.254.1.1", "fe80::1"],
        },
        "DriverOpts": {"com.docker.network.endpoint.sysctls": "x=1", "n": "5"},
        "GwPriority": 7,
    }
    assert att.endpoint_settings(aliases=False) == {
        k: v for k, v in att.endpoint_settings(aliases=True).items() if k != "Aliases"
    }
    old, dropped = endpoint_for_engine(att.endpoint_settings(aliases=False), "1.41")
    assert "GwPriority" not in old and dropped == ["GwPriority"]
    assert spec.fixed_address


def test_mac_address_goes_to_the_container_config_on_api_1_41() -> None:
    spec = ok(SVC + "    mac_address: 02-42-AC-11-00-02\n")
    assert spec.create["MacAddress"] == "02:42:ac:11:00:02"
    assert spec.fixed_address
    spec = ok(
        SVC + "    networks:\n      front: {priority: 5, mac_address: '02:42:ac:11:00:03'}\n"
        "      back:\n"
    )
    assert spec.create["MacAddress"] == "02:42:ac:11:00:03"


@pytest.mark.parametrize(
    ("nets", "field", "why"),
    [
        ("{front: {priority: 99999999999}}", "services.s.networks.front.priority", "<="),
        ("{front: {priority: high}}", "services.s.networks.front.priority", "integer"),
        ("{front: {gw_priority: [1]}}", "services.s.networks.front.gw_priority", "integer"),
        ("{front: {ipv6_address: 10.0.0.1}}", "services.s.networks.front.ipv6_address", "IPv6"),
        ("{front: {ipv4_address: 'fd00::1'}}", "services.s.networks.front.ipv4_address", "IPv4"),
        ("{front: {link_local_ips: [nope]}}", "services.s.networks.front.link_local_ips[0]", "IP"),
        ("{front: {driver_opts: {a: [1]}}}", "services.s.networks.front.driver_opts.a", "string"),
        ("{front: {interface_name: eth1}}", "services.s.networks.front.interface_name", "1.49"),
        ("{front: {speed: 1}}", "services.s.networks.front.speed", "unknown key"),
        (
            "{front: {priority: 9}, back: {mac_address: '02:42:ac:11:00:02'}}",
            "services.s.networks.back.mac_address",
            "1.44",
        ),
    ],
)
def test_network_option_refusals(nets: str, field: str, why: str) -> None:
    assert why in refused(SVC + f"    networks: {nets}\n")[field]


def test_service_and_primary_mac_must_agree() -> None:
    problems = refused(
        SVC + "    mac_address: '02:42:ac:11:00:02'\n"
        "    networks: {front: {mac_address: '02:42:ac:11:00:03'}}\n"
    )
    assert "differs" in problems["services.s.networks.front.mac_address"]


def test_fixed_mac_with_replicas_is_refused() -> None:
    problems = refused(SVC + "    mac_address: '02:42:ac:11:00:02'\n    deploy: {replicas: 2}\n")
    assert "one replica" in problems["services.s.deploy"]


def test_revision_of_a_plain_network_is_unchanged() -> None:
    spec = ok(SVC + "    networks: {front: {aliases: [w], ipv4_address: 10.0.0.9}}\n")
    assert spec.networks[0].revision_key() == ["p_front", ["s", "w"], "10.0.0.9"]


# --- x-berth upstream port ----------------------------------------------------------------


def test_upstream_port_need_not_be_exposed() -> None:
    stack = load(
        "services:\n  api:\n    image: x\n    x-berth: {upstream: {name: api_up, port: 8000}}\n"
        "  web:\n    image: nginx\n"
        "x-berth:\n  proxy: {service: web, upstreams_file: ../nginx/up.conf}\n"
    )
    api = stack.services["api"]
    assert api.berth.upstream is not None and api.berth.upstream.port == 8000
    assert "ExposedPorts" not in api.create


def test_systempaths_unconfined_empties_the_masked_paths_as_compose_does() -> None:
    from tests.unit.test_compose_translate import host as host_of

    hc = host_of(
        "services:\n  s:\n    image: x\n"
        "    security_opt: [systempaths=unconfined, 'label=disable']\n"
    )
    assert hc["MaskedPaths"] == [] and hc["ReadonlyPaths"] == []
    assert hc["SecurityOpt"] == ["label=disable"]


def test_network_mode_disabled_disables_networking() -> None:
    from tests.unit.test_compose_translate import create as create_of

    body = create_of("services:\n  s: {image: x, network_mode: disabled}\n")
    assert body["NetworkDisabled"] is True and body["HostConfig"]["NetworkMode"] == "none"
