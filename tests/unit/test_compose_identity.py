"""scale, container_name, network_mode and volumes_from: translation, refusals (file, line,
field), the rollout strategy they force, and the revisions they tie together."""

from __future__ import annotations

import pytest

from controller.core.config import build_config
from controller.core.model import DependsOn, StackSpec
from controller.core.plan import ActionKind, ServiceAction
from controller.core.rollout_config import config_for
from controller.errors import ConfigError
from tests.fakes_files import MemoryTree

FILE = "/r/compose/c.yml"
DESIRED = "/r/desired/app.yaml"


def load(text: str) -> StackSpec:
    from controller.core.compose import load_stack

    tree = MemoryTree({}, root="/r", desired="/r/desired")
    return load_stack(project="p", files=[(FILE, text)], environ={}, sources=tree)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(text)
    return str(exc.value)


def host(text: str, service: str = "s") -> dict[str, object]:
    return dict(load(text).services[service].create.get("HostConfig", {}))


def test_scale_is_replicas_and_must_agree_with_deploy() -> None:
    assert load("services:\n  s: {image: x, scale: 3}\n").services["s"].replicas == 3
    msg = error("services:\n  s:\n    image: x\n    scale: 3\n    deploy: {replicas: 2}\n")
    assert "c.yml:4: services.s.scale" in msg and "disagree" in msg
    assert "services.s.scale" in error("services:\n  s: {image: x, scale: 100000}\n")


def test_container_name_is_kept_and_needs_one_replica() -> None:
    s = load("services:\n  s: {image: x, container_name: legacy-db}\n").services["s"]
    assert s.container_name == "legacy-db" and s.replicas == 1
    assert "held by one container" in error(
        "services:\n  s: {image: x, container_name: a, deploy: {replicas: 2}}\n"
    )
    assert "not a container name" in error("services:\n  s: {image: x, container_name: -bad}\n")


def test_global_mode_is_one_container_on_this_host() -> None:
    """compose runs a `deploy.mode: global` service once on one engine (node-exporter,
    cAdvisor, log shippers): one per host is one here."""
    s = load("services:\n  s: {image: x, deploy: {mode: global}}\n").services["s"]
    assert s.replicas == 1 and s.one_per_host
    assert (
        load("services:\n  s: {image: x, deploy: {mode: global, replicas: 1}}\n")
        .services["s"]
        .one_per_host
    )
    msg = error("services:\n  s:\n    image: x\n    deploy: {mode: global, replicas: 3}\n")
    assert "c.yml:4: services.s.deploy.replicas" in msg and "one container per host" in msg
    assert "must be replicated or global" in error(
        "services:\n  s: {image: x, deploy: {mode: global-job}}\n"
    )
    assert not load("services:\n  s: {image: x}\n").services["s"].one_per_host


@pytest.mark.parametrize(
    ("service", "why"),
    [
        ("{image: x, container_name: one}", "container_name"),
        ("{image: x, deploy: {mode: global}}", "one container per host"),
    ],
)
def test_one_container_services_refuse_replicas_in_desired_at_that_line(
    service: str, why: str
) -> None:
    compose = f"services:\n  s: {service}\n"
    desired = (
        "project: compose\ncompose: ../compose/c.yml\nservices:\n  s: {tag: '1', replicas: 2}\n"
    )
    tree = MemoryTree({FILE: compose, DESIRED: desired}, root="/r", desired="/r/desired")
    with pytest.raises(ConfigError) as exc:
        build_config([(DESIRED, desired)], environ={}, files=tree)
    assert "app.yaml:4: services.s.replicas" in str(exc.value)
    assert why in str(exc.value)
    ok = desired.replace("replicas: 2", "replicas: 1")
    tree = MemoryTree({FILE: compose, DESIRED: ok}, root="/r", desired="/r/desired")
    (target,) = build_config([(DESIRED, ok)], environ={}, files=tree).targets
    assert target.replicas == 1


@pytest.mark.parametrize("mode", ["host", "none", "bridge", "container:legacy"])
def test_network_mode_values_go_to_the_body_without_networks(mode: str) -> None:
    stack = load(f"services:\n  s: {{image: x, network_mode: '{mode}'}}\n")
    assert stack.services["s"].networks == ()
    assert stack.services["s"].create["HostConfig"]["NetworkMode"] == mode


def test_network_mode_service_is_a_peer_and_a_dependency() -> None:
    stack = load(
        "services:\n  vpn: {image: v}\n  app:\n    image: a\n    network_mode: service:vpn\n"
    )
    app = stack.services["app"]
    assert app.create["HostConfig"]["NetworkMode"] == "service:vpn"
    assert app.peers == ("vpn",) and DependsOn("vpn") in app.depends_on


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("  s: {image: x, network_mode: host, networks: [default]}\n", "cannot both be set"),
        ("  s: {image: x, network_mode: 'service:s'}\n", "its own network namespace"),
        ("  s: {image: x, network_mode: 'service:'}\n", "names no service"),
        ("  s: {image: x, network_mode: 'service:ghost'}\n", "is not a service"),
        (
            "  s:\n    image: x\n    network_mode: host\n"
            "    x-berth: {health: {path: /h, port: 80}}\n",
            "services.s.x-berth.health",
        ),
        ("  s: {image: x, volumes_from: ['a:rx']}\n", "optionally with :ro or :rw"),
        ("  s: {image: x, volumes_from: [s]}\n", "its own volumes"),
    ],
)
def test_namespace_refusals(text: str, needle: str) -> None:
    assert needle in error("services:\n" + text)


def test_volumes_from_services_and_containers() -> None:
    stack = load(
        "services:\n  db: {image: d}\n  app:\n    image: a\n"
        "    volumes_from: [db, 'db:ro', 'service:db:rw', 'container:legacy:rw']\n"
    )
    app = stack.services["app"]
    assert app.create["HostConfig"]["VolumesFrom"] == [
        "service:db",
        "service:db:ro",
        "service:db:rw",
        "legacy:rw",
    ]
    assert app.peers == ("db",) and [d.service for d in app.depends_on] == ["db"]


def _action(stack: StackSpec, service: str) -> ServiceAction:
    from tests.unit.builders import target

    t = target(service)
    spec = stack.services[service]
    import dataclasses

    return ServiceAction(
        project="p",
        service=service,
        kind=ActionKind.REPLACE,
        target=dataclasses.replace(t, spec=spec),
        reason="test",
    )


@pytest.mark.parametrize(
    ("extra", "strategy"),
    [
        ("network_mode: host", "stop-first"),
        ("network_mode: 'container:x'", "stop-first"),
        ("container_name: fixed", "stop-first"),
        ("network_mode: none", "start-first"),
        ("expose: ['80']", "start-first"),
    ],
)
def test_strategy_forced_by_shared_ports_or_names(extra: str, strategy: str) -> None:
    stack = load(f"services:\n  s:\n    image: x\n    {extra}\n")
    assert config_for(_action(stack, "s"), None).strategy == strategy


def test_a_peer_revision_moves_the_dependent() -> None:
    compose = (
        "services:\n  vpn: {image: v}\n  app: {image: a, network_mode: 'service:vpn'}\n"
        "  other: {image: o}\n"
    )

    def revisions(vpn_tag: str) -> dict[str, str]:
        desired = (
            "project: compose\ncompose: ../compose/c.yml\nservices:\n"
            f"  vpn: {{tag: '{vpn_tag}'}}\n  app: {{tag: '1'}}\n  other: {{tag: '1'}}\n"
        )
        tree = MemoryTree({FILE: compose, DESIRED: desired}, root="/r", desired="/r/desired")
        cfg = build_config([(DESIRED, desired)], environ={}, files=tree)
        return {t.service: t.revision for t in cfg.targets}

    one, two = revisions("1"), revisions("2")
    assert one["vpn"] != two["vpn"] and one["app"] != two["app"]
    assert one["other"] == two["other"]


def test_a_desired_file_naming_a_profile_disabled_service_says_why() -> None:
    compose = "services:\n  web: {image: w}\n  setup: {image: s, profiles: [setup]}\n"
    desired = "project: compose\ncompose: ../compose/c.yml\nservices:\n  setup: {tag: '1'}\n"
    tree = MemoryTree({FILE: compose, DESIRED: desired}, root="/r", desired="/r/desired")
    with pytest.raises(ConfigError) as exc:
        build_config([(DESIRED, desired)], environ={}, files=tree)
    msg = str(exc.value)
    assert "app.yaml:4: services.setup" in msg and "disabled" in msg and "setup" in msg
    assert "COMPOSE_PROFILES is not set" in msg and "cannot enable" in msg
    ok = build_config([(DESIRED, desired)], environ={"COMPOSE_PROFILES": "setup"}, files=tree)
    assert {t.service for t in ok.targets} == {"web", "setup"}
