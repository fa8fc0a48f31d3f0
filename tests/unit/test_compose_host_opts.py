"""Issue 12: bind mounts as compose sends them (HostConfig.Binds), long port syntax, and the
host-option keys (compose/host_opts.py), each asserted on the exact Engine API body."""

from __future__ import annotations

from typing import Any

import pytest

from controller.core.compose.context import StackCtx
from controller.core.compose.service import translate_service
from controller.core.model import DependsOn, VolumeDef
from controller.core.yamlsrc import COMPOSE_TAGS, Located, load_node, unwrap
from tests.fakes_files import MemoryTree
from tests.unit.test_compose_keys import FILE, NETS, ROOT, SVC, ok, refused, translate

SRC = f"{ROOT}/compose"
VOLS = "volumes:\n  data: {}\n"


def host(text: str, **kw: Any) -> dict[str, Any]:
    """HostConfig without the NetworkMode every service on the default network has."""
    hc: dict[str, Any] = ok(text, **kw).create.get("HostConfig", {})
    return {k: v for k, v in hc.items() if k != "NetworkMode"}


def with_volume(text: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Service `s` translated with the named volume `data` (p_data) declared."""
    data, table = unwrap(load_node(text, FILE, tags=COMPOSE_TAGS))
    loc = Located(data, table, FILE)
    tree = MemoryTree({}, root=ROOT, desired=f"{ROOT}/desired")
    volumes = {"data": VolumeDef(name="p_data", key="data")}
    ctx = StackCtx(loc, "p", SRC, {}, tree, NETS, volumes)
    spec, _ = translate_service(ctx, "s", data["services"]["s"])
    hc = None if spec is None else spec.create.get("HostConfig", {})
    return hc, {p.field: p.message for p in loc.problems}


def vol(*items: str) -> str:
    return SVC + "    volumes:\n" + "".join(f"      - {i}\n" for i in items)


# --- bind mounts: HostConfig.Binds as compose's toBindString writes them ---------------------


def test_short_syntax_binds_go_to_binds_with_compose_options() -> None:
    hc = host(
        vol(
            "./conf:/etc/c",
            "./ro:/ro:ro",
            "./shared:/s:z",
            "./private:/p:Z,ro",
            "./prop:/prop:ro,z,rshared",
            "/abs:/abs:rslave",
            "./mac:/mac:cached",
            '"~/keys:/keys:rw"',
        ),
        env={"HOME": "/home/op"},
    )
    assert hc["Binds"] == [
        f"{SRC}/conf:/etc/c:rw",
        f"{SRC}/ro:/ro:ro",
        f"{SRC}/shared:/s:rw,z",
        f"{SRC}/private:/p:ro,Z",
        f"{SRC}/prop:/prop:ro,z,rshared",
        "/abs:/abs:rw,rslave",
        f"{SRC}/mac:/mac:rw",  # Docker Desktop's consistency: no effect on Linux, as compose
        "/home/op/keys:/keys:rw",
    ]
    assert "Mounts" not in hc


def test_long_syntax_bind_follows_create_host_path() -> None:
    hc = host(
        vol(
            "{type: bind, source: ./a, target: /a}",  # compose-go: create_host_path true
            "{type: bind, source: ./b, target: /b, read_only: true, bind: {selinux: Z}}",
            "{type: bind, source: ./c, target: /c, bind: {create_host_path: true,"
            " propagation: shared}}",
            "{type: bind, source: ./d, target: /d, bind: {create_host_path: false}}",
            "{type: bind, source: ./e, target: /e, bind: {create_host_path: 'false',"
            " propagation: rslave}}",
            "{type: bind, source: ./f, target: /f, bind: {recursive: disabled}}",
            "{type: bind, source: ./g, target: /g, consistency: cached,"
            " bind: {create_host_path: false}}",
        )
    )
    assert hc["Binds"] == [f"{SRC}/a:/a:rw", f"{SRC}/b:/b:ro,Z", f"{SRC}/c:/c:rw,shared"]
    assert hc["Mounts"] == [
        {"Type": "bind", "Target": "/d", "ReadOnly": False, "Source": f"{SRC}/d"},
        {
            "Type": "bind",
            "Target": "/e",
            "ReadOnly": False,
            "Source": f"{SRC}/e",
            "BindOptions": {"Propagation": "rslave"},
        },
        {
            "Type": "bind",
            "Target": "/f",
            "ReadOnly": False,
            "Source": f"{SRC}/f",
            "BindOptions": {"NonRecursive": True},
        },
        {
            "Type": "bind",
            "Target": "/g",
            "ReadOnly": False,
            "Source": f"{SRC}/g",
            "Consistency": "cached",
        },
    ]


def test_named_volume_with_selinux_label_goes_to_binds_as_compose_sends_it() -> None:
    hc, problems = with_volume(vol("data:/d:z", "data:/n:Z,nocopy", "data:/plain:nocopy") + VOLS)
    assert problems == {} and hc is not None
    assert hc["Binds"] == ["p_data:/d:rw,z", "p_data:/n:rw,Z,nocopy"]
    assert hc["Mounts"] == [
        {
            "Type": "volume",
            "Target": "/plain",
            "ReadOnly": False,
            "Source": "p_data",
            "VolumeOptions": {"NoCopy": True},
        }
    ]


@pytest.mark.parametrize(
    ("item", "field", "fragment"),
    [
        ("../../etc:/e", "volumes[0]", "outside the compose root"),
        ("../desired:/d", "volumes[0]", "inside desired/"),
        ("/srv:/srv", "volumes[0]", "contains desired/"),
        ("'./x:/x:nocopy'", "volumes[0]", "for a bind (the engine refuses it)"),
        ("{type: bind, source: './a:b', target: /x}", "volumes[0]", "cannot hold ':'"),
        (
            "{type: bind, source: ./a, target: /x, bind: {create_host_path: false, selinux: z}}",
            "volumes[0].bind.selinux",
            "leave a missing host path uncreated",
        ),
        (
            "{type: bind, source: ./a, target: /x, bind: {recursive: disabled, selinux: z}}",
            "volumes[0].bind.selinux",
            "mount non-recursively",
        ),
        (
            "{type: bind, source: ./a, target: /x, bind: {recursive: readonly}}",
            "volumes[0].bind.recursive",
            "1.44",
        ),
        (
            "{type: bind, source: ./a, target: /x, bind: {selinux: q}}",
            "volumes[0].bind.selinux",
            "z, Z",
        ),
        (
            "{type: bind, source: ./a, target: /x, bind: {create_host_path: 7}}",
            "volumes[0].bind.create_host_path",
            "true or false",
        ),
        ("{type: bind, source: ./a, target: /x, bind: [z]}", "volumes[0].bind", "mapping"),
        (
            "{type: bind, source: ./a, target: /x, consistency: 9}",
            "volumes[0].consistency",
            "one of",
        ),
    ],
)
def test_bind_refusals_name_the_field(item: str, field: str, fragment: str) -> None:
    found = refused(vol(item) + VOLS)
    assert fragment in found[f"services.s.{field}"], found


def test_volume_options_compose_has_and_this_engine_lacks_are_refused() -> None:
    _, problems = with_volume(
        vol("{type: volume, source: data, target: /x, volume: {subpath: a, labels: [a=b]}}") + VOLS
    )
    assert "1.45" in problems["services.s.volumes[0].volume.subpath"]
    assert "top-level volume" in problems["services.s.volumes[0].volume.labels"]


def test_a_refusal_names_file_and_line() -> None:
    _, problems = translate(vol("./ok:/ok", "'./x:/x:nocopy'"))
    [problem] = problems
    assert (problem.file, problem.line, problem.field) == (FILE, 6, "services.s.volumes[1]")


def test_secret_over_a_bind_is_a_duplicate_mount_point() -> None:
    found = refused(
        vol("./d:/run/secrets/db") + "    secrets: [db]\nsecrets:\n  db: {file: db.txt}\n",
        extra={f"{SRC}/db.txt": "pw"},
    )
    assert "duplicate mount point '/run/secrets/db'" in found["services.s.volumes"], found


def test_duplicate_targets_across_binds_and_mounts() -> None:
    found = refused(
        vol("./a:/x", "{type: bind, source: ./b, target: /x/, bind: {create_host_path: false}}")
    )
    assert "duplicate mount point" in found["services.s.volumes[1]"]


# --- long port syntax -------------------------------------------------------------------------


def test_port_mode_host_and_ingress_both_publish_on_this_host() -> None:
    bodies = [
        ok(
            SVC + f"    ports: [{{target: 80, published: '8080', mode: {mode},"
            " name: web, app_protocol: http}]\n"
        ).create
        for mode in ("host", "ingress")
    ]
    assert bodies[0] == bodies[1]
    assert bodies[0]["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}]
    }
    assert bodies[0]["ExposedPorts"] == {"80/tcp": {}}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("{target: 80, mode: global}", "ports[0].mode"),
        ("{target: 80, mode: 5}", "ports[0].mode"),
        ("{target: 80, name: [a]}", "ports[0].name"),
        ("{target: 80, app_protocol: {a: 1}}", "ports[0].app_protocol"),
    ],
)
def test_port_long_syntax_refusals(spec: str, field: str) -> None:
    assert f"services.s.{field}" in refused(SVC + f"    ports: [{spec}]\n")


# --- host options -------------------------------------------------------------------------


def test_cpu_memory_and_cgroup_options_exact_body() -> None:
    hc = host(
        SVC + "    cpu_period: 100000\n    cpu_quota: '50000'\n    cpu_rt_period: 1000000\n"
        "    cpu_rt_runtime: 950000\n    cpuset: 0-2,4\n    mem_swappiness: 0\n"
        "    oom_kill_disable: true\n    cgroup: private\n    cgroup_parent: berth.slice\n"
        "    userns_mode: host\n    device_cgroup_rules: ['c 1:3 mr', 'b *:* rwm']\n"
        "    storage_opt: {size: 20G}\n"
    )
    assert hc == {
        "CpuPeriod": 100000,
        "CpuQuota": 50000,
        "CpuRealtimePeriod": 1000000,
        "CpuRealtimeRuntime": 950000,
        "CpusetCpus": "0-2,4",
        "MemorySwappiness": 0,
        "OomKillDisable": True,
        "CgroupnsMode": "private",
        "CgroupParent": "berth.slice",
        "UsernsMode": "host",
        "DeviceCgroupRules": ["c 1:3 mr", "b *:* rwm"],
        "StorageOpt": {"size": "20G"},
    }


def test_blkio_config_exact_body() -> None:
    hc = host(
        SVC + "    blkio_config:\n      weight: 300\n"
        "      weight_device: [{path: /dev/sda, weight: 400}]\n"
        "      device_read_bps: [{path: /dev/sda, rate: 12mb}]\n"
        "      device_write_bps: [{path: /dev/sdb, rate: '1024k'}]\n"
        "      device_read_iops: [{path: /dev/sda, rate: 120}]\n"
        "      device_write_iops: [{path: /dev/sdb, rate: '30'}]\n"
    )
    assert hc == {
        "BlkioWeight": 300,
        "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 400}],
        "BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 12 * 1024 * 1024}],
        "BlkioDeviceWriteBps": [{"Path": "/dev/sdb", "Rate": 1024 * 1024}],
        "BlkioDeviceReadIOps": [{"Path": "/dev/sda", "Rate": 120}],
        "BlkioDeviceWriteIOps": [{"Path": "/dev/sdb", "Rate": 30}],
    }


@pytest.mark.parametrize(
    ("keys", "want"),
    [
        ("pid: host", {"PidMode": "host"}),
        ("pid: container:other_1", {"PidMode": "container:other_1"}),
        ("pid: ''", {}),
        ("ipc: shareable", {"IpcMode": "shareable"}),
        ("ipc: private", {"IpcMode": "private"}),
        ("ipc: host", {"IpcMode": "host"}),
        ("ipc: container:db", {"IpcMode": "container:db"}),
        ("uts: host", {"UTSMode": "host"}),
        ("cgroup: host", {"CgroupnsMode": "host"}),
    ],
)
def test_namespace_modes(keys: str, want: dict[str, Any]) -> None:
    assert host(SVC + f"    {keys}\n") == want


@pytest.mark.parametrize(
    ("keys", "field", "fragment"),
    [
        ("pid: service:db", "pid", "network_mode and volumes_from"),
        ("ipc: service:db", "ipc", "network_mode and volumes_from"),
        ("pid: private", "pid", "must be host or container:NAME"),
        ("ipc: 'container:'", "ipc", "not a container name"),
        ("uts: container:x", "uts", "must be host"),
        ("userns_mode: private", "userns_mode", "must be host"),
        ("cgroup: shared", "cgroup", "host or private"),
        ("cgroup_parent: [a]", "cgroup_parent", "string"),
        ("cpu_period: 500", "cpu_period", "1000 to 1000000"),
        ("cpu_period: 2000000", "cpu_period", "<= 1000000"),
        ("cpu_period: [1]", "cpu_period", "integer"),
        ("cpu_quota: 10", "cpu_quota", "at least 1000"),
        ("cpu_quota: -5", "cpu_quota", ">= -1"),
        ("cpu_quota: true", "cpu_quota", "integer"),
        ("cpu_quota: 99999999999999999999999", "cpu_quota", "<= 9223372036854775807"),
        ("cpu_rt_period: 1.5", "cpu_rt_period", "integer"),
        ("cpu_rt_period: 1000\n    cpu_rt_runtime: 2000", "cpu_rt_runtime", "above cpu_rt_period"),
        ("cpus: 0.5\n    cpu_quota: 50000", "cpu_quota", "cannot be set with cpus"),
        (
            "deploy: {resources: {limits: {cpus: '1'}}}\n    cpu_period: 100000",
            "cpu_period",
            "cpus",
        ),
        ("cpuset: 3-1", "cpuset", "CPU list"),
        ("cpuset: all", "cpuset", "CPU list"),
        ("cpuset: {a: 1}", "cpuset", "string"),
        ("mem_swappiness: 101", "mem_swappiness", "<= 100"),
        ("mem_swappiness: -1", "mem_swappiness", ">= 0"),
        ("mem_swappiness: NaN", "mem_swappiness", "integer"),
        ("oom_kill_disable: maybe", "oom_kill_disable", "true or false"),
        ("device_cgroup_rules: ['x 1:3 r']", "device_cgroup_rules[0]", "device cgroup rule"),
        ("device_cgroup_rules: 'c 1:3 r'", "device_cgroup_rules", "list"),
        ("storage_opt: [size=1G]", "storage_opt", "mapping"),
        ("blkio_config: {weight: 5}", "blkio_config.weight", "10 to 1000"),
        ("blkio_config: {weight: 100000000000000000000000}", "blkio_config.weight", "<= 1000"),
        ("blkio_config: {weight: .nan}", "blkio_config.weight", "integer"),
        ("blkio_config: {speed: 1}", "blkio_config.speed", "unknown key"),
        (
            "blkio_config: {device_read_bps: {path: /dev/sda}}",
            "blkio_config.device_read_bps",
            "list",
        ),
        (
            "blkio_config: {device_read_bps: [{path: /dev/sda, rate: fast}]}",
            "blkio_config.device_read_bps[0].rate",
            "invalid size",
        ),
        (
            "blkio_config: {device_read_bps: [{path: /dev/sda, rate: 99999999999999999999999}]}",
            "blkio_config.device_read_bps[0].rate",
            "invalid size",
        ),
        (
            "blkio_config: {device_write_iops: [{path: sda, rate: 1}]}",
            "blkio_config.device_write_iops[0].path",
            "absolute",
        ),
        (
            "blkio_config: {weight_device: [{path: /dev/sda}]}",
            "blkio_config.weight_device[0]",
            "needs 'weight'",
        ),
        ("blkio_config: [1]", "blkio_config", "mapping"),
        ("hostname: h\n    uts: host", "uts", "drop hostname"),
    ],
)
def test_host_option_refusals(keys: str, field: str, fragment: str) -> None:
    found = refused(SVC + f"    {keys}\n")
    assert fragment in found.get(f"services.s.{field}", ""), found


# --- links ----------------------------------------------------------------------------------

DB = "  db:\n    image: postgres\n"


def test_links_to_a_service_name_are_dependencies_as_in_compose() -> None:
    spec = ok(SVC + "    links: [db, 'cache:cache']\n" + DB + "  cache:\n    image: redis\n")
    assert spec.depends_on == (
        DependsOn("db", "service_started", True),
        DependsOn("cache", "service_started", True),
    )
    assert "Links" not in spec.create.get("HostConfig", {})  # the service name resolves by DNS


def test_a_link_already_in_depends_on_keeps_its_condition() -> None:
    spec = ok(SVC + "    links: [db]\n    depends_on: {db: {condition: service_healthy}}\n" + DB)
    assert spec.depends_on == (DependsOn("db", "service_healthy"),)


@pytest.mark.parametrize(
    ("links", "extra", "fragment"),
    [
        ("['db:s']", DB, "is the name of another service"),
        ("[nope]", DB, "is not another service"),
        ("[s]", DB, "is not another service"),
        ("[db]", "  db:\n    image: p\n    networks: [back]\n", "shares none"),
        ("[db]", "  db:\n    image: p\n    network_mode: host\n", "shares none"),
        ("[1]", DB, "is not another service"),
        ("db", DB, "list"),
    ],
)
def test_link_refusals(links: str, extra: str, fragment: str) -> None:
    found = refused(SVC + f"    links: {links}\n" + extra + "networks:\n  back: {}\n")
    assert any(fragment in m for f, m in found.items() if f.startswith("services.s.links")), found


def test_external_links_on_the_default_bridge_are_host_config_links() -> None:
    hc = host(SVC + "    network_mode: bridge\n    external_links: [redis, 'legacy_db:db']\n")
    assert hc == {"Links": ["redis:redis", "legacy_db:db"]}  # NetworkMode: bridge


def test_external_links_on_user_networks_are_refused_with_the_reason() -> None:
    found = refused(SVC + "    external_links: [redis]\n")
    assert "default bridge only" in found["services.s.external_links"]
    bad = refused(SVC + "    network_mode: bridge\n    external_links: ['a b']\n")
    assert "CONTAINER:ALIAS" in bad["services.s.external_links[0]"]


# --- a volume mode compose does not know: dropped as compose does, and said ---------------


@pytest.mark.parametrize(
    ("mode", "bind", "fragment"),
    [
        # zabbix's `roz`: compose-go drops it, so the volume is read-write under compose too
        ("roz", "rw", "'roz' ignored, as compose does: mounted rw; did you mean 'ro,z'?"),
        ("rwZ", "rw", "did you mean 'rw,Z'? (modes are comma-separated)"),
        ("ro,delegatedd", "ro", "'delegatedd' ignored, as compose does: mounted ro"),
        ("rox", "rw", "'rox' ignored, as compose does: mounted rw"),
    ],
)
def test_an_unknown_volume_mode_is_ignored_as_compose_does_with_a_warning(
    mode: str, bind: str, fragment: str
) -> None:
    from tests.unit.test_compose_translate import load

    text = f"services:\n  s:\n    image: x\n    volumes:\n      - ./d:/d:{mode}\n"
    stack = load(text)
    assert stack.services["s"].create["HostConfig"]["Binds"] == [f"/srv/stack/compose/d:/d:{bind}"]
    [warning] = stack.warnings
    assert (warning.line, warning.field) == (5, "services.s.volumes[0]")
    assert fragment in warning.message
    assert load("services:\n  s:\n    image: x\n    volumes: ['./d:/d:ro,z']\n").warnings == ()


def test_an_aliased_link_is_a_network_alias_of_the_linked_service() -> None:
    """mautic's `links: [db:mysql]`: `mysql` resolves to db's current containers on the
    networks both join (every container there resolves it, not only the linking one), and
    the link is a dependency as compose-go adds it."""
    from tests.unit.test_compose_translate import load

    stack = load(
        "services:\n  web:\n    image: w\n    links: ['db:mysql', cache]\n"
        "    networks: [front, back]\n"
        "  db:\n    image: p\n    networks: {back: {aliases: [pg]}, other: {}}\n"
        "  cache:\n    image: r\n    networks: [back]\n"
        "networks:\n  front: {}\n  back: {}\n  other: {}\n"
    )
    db = {a.network: a.aliases for a in stack.services["db"].networks}
    assert "mysql" in db["p_back"] and "pg" in db["p_back"] and "db" in db["p_back"]
    assert "mysql" not in db["p_other"]  # web does not join it
    assert [d.service for d in stack.services["web"].depends_on] == ["db", "cache"]
    on_default = load("services:\n  web: {image: w, links: ['db:mysql']}\n  db: {image: p}\n")
    (att,) = on_default.services["db"].networks
    assert "mysql" in att.aliases
