"""`x-berth.backend: swarm`: chosen by the compose file only, and what a Swarm service
cannot carry refused at load time with file, line and field (compose/swarm_keys.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.core.compose import load_stack
from controller.core.compose.keys import SERVICE_KEYS
from controller.core.compose.swarm_keys import (
    SWARM_ATTACHMENT_REFUSED,
    SWARM_REFUSED_KEYS,
    SWARM_SERVICE_KEYS,
)
from controller.core.config import build_config
from controller.core.desired import parse_desired
from controller.core.model import StackSpec
from controller.errors import ConfigError, Problem
from tests.fakes_files import MemoryTree
from tests.unit.compose_schema_samples import SAMPLES

FILE = "/srv/stack/compose/c.yml"
ON_SWARM = "x-berth.backend: swarm"

GOOD = """\
name: app
x-berth:
  backend: swarm
  proxy:
    service: web
    upstreams_file: ../nginx/up.conf
networks:
  front: {}
  back:
    driver: overlay
    ipam: {config: [{subnet: 10.9.0.0/24}]}
volumes:
  data: {}
services:
  api:
    image: reg/api
    expose: ["8000"]
    networks:
      back: {aliases: [api-internal]}
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
      placement: {constraints: ["node.role==worker", "node.labels.zone != b"]}
      resources:
        limits: {cpus: "0.5", memory: 256m, pids: 100}
        reservations: {cpus: "0.1", memory: 64m}
      restart_policy: {condition: on-failure}
    volumes: ["data:/data", "/srv/app:/app:ro", {type: tmpfs, target: /tmp}]
    healthcheck: {test: ["CMD", "true"], interval: 10s}
    init: true
    read_only: true
    cap_drop: [ALL]
    ulimits: {nofile: 1024}
    extra_hosts: ["db.local:10.0.0.5"]
    stop_grace_period: 20s
    x-berth: {upstream: {name: api_up, port: 8000}, strategy: stop-first}
  web:
    image: nginx
    ports: ["80:80", {target: 443, published: 443, mode: host}]
    volumes: ["../nginx:/etc/nginx/berth"]
    networks: [front, back]
    depends_on: [api]
"""
API_LINE = GOOD.splitlines().index("  api:") + 1  # a key inserted after it is on API_LINE + 1


def load(text: str) -> StackSpec:
    tree = MemoryTree({}, root="/srv/stack", desired="/srv/stack/desired")
    return load_stack(project=None, files=[(FILE, text)], environ={}, sources=tree)


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value.problems


def with_api_key(key: str, value: Any) -> str:
    """GOOD with `key: value` (JSON is YAML) as the first key of service api."""
    return GOOD.replace("  api:\n", f"  api:\n    {key}: {json.dumps(value)}\n", 1)


def swarm_problem(text: str, field: str) -> Problem:
    """The one problem at `field`, which must say it comes from the swarm backend."""
    found = [p for p in problems(text) if p.field == field]
    assert len(found) == 1, (field, problems(text))
    assert ON_SWARM in found[0].message and found[0].file == FILE, found[0]
    return found[0]


def test_a_good_swarm_stack_loads() -> None:
    stack = load(GOOD)
    assert stack.backend == "swarm"
    assert stack.backend_at is not None and (stack.backend_at.file, stack.backend_at.line) == (
        FILE,
        3,
    )
    assert stack.proxy is not None and stack.proxy.switch == "dynamic"  # auto = dynamic
    assert stack.services["api"].constraints == ("node.role==worker", "node.labels.zone != b")
    assert stack.services["api"].replicas == 2
    assert stack.services["api"].berth.strategy == "stop-first"
    for key in ("front", "back", "default"):
        if key in stack.networks:
            assert stack.networks[key].driver == "overlay" and stack.networks[key].attachable


def test_local_is_the_default_and_local_stacks_are_unchanged() -> None:
    text = GOOD.replace("  backend: swarm\n", "")
    text = text.replace(
        '      placement: {constraints: ["node.role==worker", "node.labels.zone != b"]}\n', ""
    )
    text = text.replace("      endpoint_mode: dnsrr\n", "").replace("    driver: overlay\n", "")
    stack = load(text)
    assert stack.backend == "local" and stack.backend_at is None
    assert stack.proxy is not None and stack.proxy.switch == "auto"
    assert stack.networks["front"].driver is None and not stack.networks["front"].attachable
    assert stack.services["api"].constraints == ()
    assert load(text.replace("x-berth:\n", "x-berth:\n  backend: local\n", 1)).backend == "local"


def test_placement_stays_refused_on_the_local_backend() -> None:
    local = GOOD.replace("  backend: swarm\n", "").replace("    driver: overlay\n", "")
    found = {p.field: p.message for p in problems(local)}
    assert set(found) == {"services.api.deploy.placement", "services.api.deploy.endpoint_mode"}
    assert "swarm feature" in found["services.api.deploy.placement"]


@pytest.mark.parametrize(
    "value",
    [["swarm"], {"kind": "swarm"}, "s" * 10_000, "Swarm", "SWARM", "kubernetes", "", 1, True],
)
def test_hostile_backend_values_are_clean_errors(value: Any) -> None:
    found = problems(GOOD.replace("backend: swarm", f"backend: {json.dumps(value)}"))
    [problem] = [p for p in found if p.field == "x-berth.backend"]  # read as local
    assert (problem.file, problem.line, problem.field) == (FILE, 3, "x-berth.backend")
    assert "local" in problem.message and "swarm" in problem.message
    assert len(problem.message) < 300
    if value == "Swarm":
        assert "lower case" in problem.message


def test_every_service_key_is_classified_for_swarm() -> None:
    assert not set(SWARM_SERVICE_KEYS) & set(SWARM_REFUSED_KEYS)
    assert set(SWARM_SERVICE_KEYS) | set(SWARM_REFUSED_KEYS) == SERVICE_KEYS


@pytest.mark.parametrize("key", sorted(SWARM_REFUSED_KEYS))
def test_every_refused_service_key(key: str) -> None:
    problem = swarm_problem(with_api_key(key, SAMPLES[f"services.*.{key}"]), f"services.api.{key}")
    assert problem.line == API_LINE + 1
    assert SWARM_REFUSED_KEYS[key] in problem.message


def test_build_names_the_registry() -> None:
    problem = swarm_problem(with_api_key("build", "."), "services.api.build")
    assert "registry every node pulls" in problem.message


@pytest.mark.parametrize("key", sorted(SWARM_REFUSED_KEYS.keys() & {"secrets", "configs"}))
def test_secrets_and_configs_are_not_yet(key: str) -> None:
    assert "not supported on the swarm backend yet" in SWARM_REFUSED_KEYS[key]


@pytest.mark.parametrize("key", sorted(SWARM_ATTACHMENT_REFUSED))
def test_every_refused_network_attachment_key(key: str) -> None:
    value = {
        "ipv4_address": "10.9.0.9",
        "ipv6_address": "fd00::9",
        "link_local_ips": ["169.254.1.1"],
        "mac_address": "02:42:ac:11:00:02",
        "priority": 10,
        "gw_priority": 10,
        "driver_opts": {"a": "b"},
    }[key]
    text = GOOD.replace(
        "      back: {aliases: [api-internal]}\n",
        f"      back: {{aliases: [api-internal], {key}: {json.dumps(value)}}}\n",
    )
    problem = swarm_problem(text, f"services.api.networks.back.{key}")
    assert problem.line == GOOD.splitlines().index("      back: {aliases: [api-internal]}") + 1


PROXY_END = "    upstreams_file: ../nginx/up.conf\n"


def _line(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        # deploy
        ("      replicas: 2\n", "      replicas: 2\n      mode: global\n", "deploy.mode"),
        ("endpoint_mode: dnsrr", "endpoint_mode: vip", "deploy.endpoint_mode"),
        (
            "      replicas: 2\n",
            "      replicas: 2\n      update_config: {parallelism: 1}\n",
            "deploy.update_config",
        ),
        (
            "      replicas: 2\n",
            "      replicas: 2\n      rollback_config: {parallelism: 1}\n",
            "deploy.rollback_config",
        ),
        ("      replicas: 2\n", "      replicas: 2\n      labels: {a: b}\n", "deploy.labels"),
        (
            'constraints: ["node.role==worker", "node.labels.zone != b"]}',
            'constraints: ["node.role==worker"], preferences: [{spread: node.labels.zone}]}',
            "deploy.placement.preferences",
        ),
        (
            'constraints: ["node.role==worker", "node.labels.zone != b"]}',
            'constraints: ["node.role==worker"], max_replicas_per_node: 1}',
            "deploy.placement.max_replicas_per_node",
        ),
        (
            'reservations: {cpus: "0.1", memory: 64m}',
            "reservations: {devices: [{capabilities: [gpu]}]}",
            "deploy.resources.reservations.devices",
        ),
        (
            'reservations: {cpus: "0.1", memory: 64m}',
            "reservations: {generic_resources: [{discrete_resource_spec: {kind: gpu, value: 1}}]}",
            "deploy.resources.reservations.generic_resources",
        ),
    ],
)
def test_refused_deploy_settings(old: str, new: str, field: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    problem = swarm_problem(text, f"services.api.{field}")
    assert problem.line == _line(text, field.split(".")[-1] + ":")


@pytest.mark.parametrize(
    ("ports", "field", "fragment"),
    [
        ('["127.0.0.1:80:80"]', "ports[0]", "no host IP"),
        ('["[::1]:80:80"]', "ports[0]", "no host IP"),
        ('["8000-8001:80-81"]', "ports[0]", "one port per mapping"),
        ('["80:80", "90-91"]', "ports[1]", "one port per mapping"),
        ("[{target: 80, published: 80, mode: ingress}]", "ports[0].mode", "IPVS"),
        ("[{target: 80, published: 80, host_ip: 127.0.0.1}]", "ports[0].host_ip", "no host IP"),
        ('[{target: 80, published: "8000-8001"}]', "ports[0].published", "one port per"),
    ],
)
def test_refused_ports(ports: str, field: str, fragment: str) -> None:
    text = GOOD.replace(
        'ports: ["80:80", {target: 443, published: 443, mode: host}]', f"ports: {ports}"
    )
    problem = swarm_problem(text, f"services.web.{field}")
    assert fragment in problem.message and problem.line == _line(text, "ports:")


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ('"/srv/app:/app:ro,Z"', "volumes[0]"),
        (
            "{type: bind, source: /srv/app, target: /app, bind: {selinux: z}}",
            "volumes[0].bind.selinux",
        ),
        (
            "{type: bind, source: /srv/app, target: /app, bind: {create_host_path: true}}",
            "volumes[0].bind.create_host_path",
        ),
    ],
)
def test_refused_volume_options(volume: str, field: str) -> None:
    old = '    volumes: ["data:/data", "/srv/app:/app:ro", {type: tmpfs, target: /tmp}]\n'
    text = GOOD.replace(old, f"    volumes: [{volume}]\n")
    swarm_problem(text, f"services.api.{field}")


def test_a_network_driver_other_than_overlay_is_refused() -> None:
    text = GOOD.replace("    driver: overlay\n", "    driver: bridge\n")
    problem = swarm_problem(text, "networks.back.driver")
    assert problem.line == _line(text, "driver: bridge") and "overlay" in problem.message


def test_enable_ipv6_is_refused_on_swarm() -> None:
    text = GOOD.replace("    driver: overlay\n", "    driver: overlay\n    enable_ipv6: true\n")
    problem = swarm_problem(text, "networks.back.enable_ipv6")
    assert problem.line == _line(text, "enable_ipv6: true") and "IPv4 only" in problem.message


@pytest.mark.parametrize(
    ("old", "new", "field", "fragment"),
    [
        (PROXY_END, PROXY_END + "    switch: reload\n", "x-berth.proxy.switch", "dynamic or auto"),
        (
            PROXY_END,
            PROXY_END + "    test_command: [nginx, -t]\n",
            "x-berth.proxy.test_command",
            "nginx on the host",
        ),
        (
            PROXY_END,
            PROXY_END + "    reload_command: [nginx, -s, reload]\n",
            "x-berth.proxy.reload_command",
            "nginx on the host",
        ),
        ("    service: web\n", "", "x-berth.proxy", "nginx service named"),
    ],
)
def test_refused_proxy_settings(old: str, new: str, field: str, fragment: str) -> None:
    problem = swarm_problem(GOOD.replace(old, new, 1), field)
    assert fragment in problem.message


@pytest.mark.parametrize("switch", ["dynamic", "auto"])
def test_the_switch_is_dynamic(switch: str) -> None:
    stack = load(GOOD.replace(PROXY_END, PROXY_END + f"    switch: {switch}\n"))
    assert stack.proxy is not None and stack.proxy.switch == "dynamic"


def test_the_proxy_is_required() -> None:
    text = GOOD.replace(
        "  proxy:\n    service: web\n    upstreams_file: ../nginx/up.conf\n", ""
    ).replace("    x-berth: {upstream: {name: api_up, port: 8000}, strategy: stop-first}\n", "")
    problem = swarm_problem(text, "x-berth")
    assert "needs x-berth.proxy" in problem.message and problem.line == 2


def test_a_bad_constraint_is_refused() -> None:
    text = GOOD.replace('"node.labels.zone != b"', '"node.labels.zone"')
    [problem] = problems(text)
    assert problem.field == "services.api.deploy.placement.constraints[1]"
    assert "KEY==VALUE" in problem.message


def test_a_disabled_service_is_not_checked() -> None:
    tool = "  tool:\n    image: reg/t\n    profiles: [dev]\n    build: .\n"
    text = with_api_key("build", ".").replace("services:\n", "services:\n" + tool, 1)
    assert [p.field for p in problems(text)] == ["services.api.build"]


# desired/ cannot choose the backend ------------------------------------------------------

DESIRED = "/r/desired/app.yaml"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("project: app\ncompose: c.yml\nbackend: swarm\n", "backend"),
        ("project: app\ncompose: c.yml\nx-berth: {backend: swarm}\n", "x-berth"),
        (
            "project: app\ncompose: c.yml\nservices:\n  api: {tag: '1', backend: swarm}\n",
            "services.api.backend",
        ),
        (
            "project: app\ncompose: c.yml\nservices:\n"
            "  api: {tag: '1', x-berth: {backend: swarm}}\n",
            "services.api.x-berth",
        ),
    ],
)
def test_desired_cannot_carry_the_backend(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_desired(DESIRED, text)
    [problem] = info.value.problems
    assert (problem.file, problem.field) == (DESIRED, field)
    assert problem.line == _line(text, field.split(".")[-1].split("-")[0])
    assert "unknown key" in problem.message or "security boundary" in problem.message


# one backend per process -----------------------------------------------------------------

LOCAL_COMPOSE = "services:\n  api:\n    image: reg/api\nname: one\n"


def test_stacks_on_two_backends_are_refused_each_naming_its_field() -> None:
    files = {
        "/r/desired/one.yaml": "project: one\ncompose: ../compose/one.yml\n",
        "/r/desired/two.yaml": "project: app\ncompose: ../compose/two.yml\n",
        "/r/compose/one.yml": LOCAL_COMPOSE,
        "/r/compose/two.yml": GOOD,
    }
    desired = [(f, t) for f, t in files.items() if "/desired/" in f]
    tree = MemoryTree(files, root="/r", desired="/r/desired")
    with pytest.raises(ConfigError) as info:
        build_config(desired, environ={}, files=tree)
    found = sorted((p.file, p.line, p.field) for p in info.value.problems)
    assert found == [
        ("/r/compose/one.yml", None, "x-berth.backend"),
        ("/r/compose/two.yml", 3, "x-berth.backend"),
    ]
    for problem in info.value.problems:
        assert "one Berth process drives one backend" in problem.message
        assert "--desired and --state-dir" in problem.message
    text = "\n".join(str(p) for p in info.value.problems)
    assert "'one' (local)" in text and "'app' (swarm)" in text


def test_stacks_on_one_backend_load_together() -> None:
    other = GOOD.replace("name: app", "name: two").replace("../nginx/up.conf", "../nginx/two.conf")
    files = {
        "/r/desired/one.yaml": "project: app\ncompose: ../compose/one.yml\n",
        "/r/desired/two.yaml": "project: two\ncompose: ../compose/two.yml\n",
        "/r/compose/one.yml": GOOD,
        "/r/compose/two.yml": other,
    }
    desired = [(f, t) for f, t in files.items() if "/desired/" in f]
    tree = MemoryTree(files, root="/r", desired="/r/desired")
    config = build_config(desired, environ={}, files=tree)
    assert {s.backend for s in config.stacks.values()} == {"swarm"}


@pytest.mark.parametrize(
    ("key", "value"),
    [("release", [{"command": ["migrate"]}]), ("smoke", [{"path": "/items"}])],
)
def test_release_tasks_and_smoke_checks_are_refused_on_swarm(key: str, value: Any) -> None:
    old = "x-berth: {upstream: {name: api_up, port: 8000}, strategy: stop-first}"
    new = f"x-berth: {{upstream: {{name: api_up, port: 8000}}, {key}: {json.dumps(value)}}}"
    problem = swarm_problem(GOOD.replace(old, new), f"services.api.x-berth.{key}")
    assert "not supported on the swarm backend yet" in problem.message


def test_hooks_are_carried_on_swarm() -> None:
    old = "strategy: stop-first}"
    new = "hooks: {success: [{url: 'http://127.0.0.1:9/ok'}]}}"
    stack = load(GOOD.replace(old, new))
    assert stack.services["api"].berth.hooks.success[0].url == "http://127.0.0.1:9/ok"


def test_an_apply_on_swarm_parses_the_files_once_and_a_reload_is_seen(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """The backend, the Swarm runtime's pins and the edge prober's sockets come from the
    configuration the process loaded last (no parse of their own); `config()` stays fresh."""
    from controller.shell import wiring

    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "c.yml").write_text(GOOD)
    (tmp_path / "desired").mkdir()
    (tmp_path / "desired" / "s.yaml").write_text(
        "compose: ../compose/c.yml\nservices:\n  api: {tag: '1'}\n  web: {tag: '1'}\n"
    )
    parses: list[str] = []
    real = wiring.load_config

    def counted(*a: Any, **k: Any) -> Any:
        parses.append("parse")
        return real(*a, **k)

    monkeypatch.setattr(wiring, "load_config", counted)
    ctx = wiring.Context(str(tmp_path / "desired"), str(tmp_path / "state"), "tcp://127.0.0.1:1")
    cfg = ctx.config()
    assert ctx.backend == "swarm"
    assert type(ctx.runtime).__name__ == "SwarmRuntime"
    assert type(ctx.prober).__name__ == "EdgeProber"
    assert len(parses) == 1
    (tmp_path / "desired" / "s.yaml").write_text(
        "compose: ../compose/c.yml\nservices:\n  api: {tag: '2'}\n  web: {tag: '1'}\n"
    )
    again = ctx.config()
    assert len(parses) == 2 and again.targets != cfg.targets
