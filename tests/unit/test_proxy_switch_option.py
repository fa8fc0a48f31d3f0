"""`x-berth.proxy.switch` is checked when the compose file is loaded, not at the first rollout."""

from __future__ import annotations

import pytest

from controller.core.compose import load_stack
from controller.core.model import StackSpec
from controller.errors import ConfigError, Problem
from tests.fakes_files import MemoryTree

FILE = "/srv/stack/compose/c.yml"
FIELD = "x-berth.proxy.switch"


def compose(
    switch: str | None = None,
    *,
    volume: str = "../nginx:/etc/nginx/berth",
    upstreams: str = "../nginx/up.conf",
) -> str:
    """nginx in a container, mounting the directory of the upstreams file; `switch` is on
    line SWITCH_LINE when given."""
    text = (
        "services:\n"
        "  api:\n"
        "    image: reg/api\n"
        "    expose: ['8000']\n"
        "    x-berth: {upstream: {name: api_up, port: 8000}}\n"
        "  web:\n"
        "    image: nginx\n"
        f"    volumes: ['{volume}']\n"
        "x-berth:\n"
        "  proxy:\n"
        "    service: web\n"
        f"    upstreams_file: {upstreams}\n"
    )
    if switch is not None:
        text += f"    switch: {switch}\n"
    return text


SWITCH_LINE = 13


def load(text: str) -> StackSpec:
    tree = MemoryTree({}, root="/srv/stack", desired="/srv/stack/desired")
    return load_stack(project="p", files=[(FILE, text)], environ={}, sources=tree)


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value.problems


@pytest.mark.parametrize("value", ["reload", "dynamic", "auto"])
def test_switch_values_are_accepted(value: str) -> None:
    stack = load(compose(value))
    assert stack.proxy is not None
    assert stack.proxy.switch == value
    assert stack.proxy.service == "web"
    assert stack.proxy.upstreams_file == "/srv/stack/nginx/up.conf"


def test_switch_defaults_to_auto() -> None:
    stack = load(compose())
    assert stack.proxy is not None and stack.proxy.switch == "auto"


@pytest.mark.parametrize("value", ["sometimes", "Dynamic", "'reload '", "[dynamic]", "{a: 1}"])
def test_unknown_switch_is_refused_at_its_field(value: str) -> None:
    [problem] = problems(compose(value))
    assert (problem.file, problem.line, problem.field) == (FILE, SWITCH_LINE, FIELD)
    with pytest.raises(ConfigError) as info:
        load(compose(value))
    assert f"{FILE}:{SWITCH_LINE}: {FIELD}:" in str(info.value)


def test_unknown_switch_message_lists_the_choices() -> None:
    [problem] = problems(compose("sometimes"))
    assert "'sometimes'" in problem.message
    for choice in ("auto", "dynamic", "reload"):
        assert choice in problem.message


def test_dynamic_switch_with_a_read_only_mount_is_refused() -> None:
    [problem] = problems(compose("dynamic", volume="../nginx:/etc/nginx/berth:ro"))
    assert (problem.file, problem.line, problem.field) == (FILE, SWITCH_LINE, FIELD)
    assert "read-only" in problem.message
    assert "'web'" in problem.message and "/srv/stack/nginx" in problem.message


@pytest.mark.parametrize("value", ["reload", "auto"])
def test_read_only_mount_is_fine_without_the_dynamic_switch(value: str) -> None:
    stack = load(compose(value, volume="../nginx:/etc/nginx/berth:ro"))
    assert stack.proxy is not None and stack.proxy.switch == value


@pytest.mark.parametrize("volume", ["../nginx:/etc/nginx/berth", "../nginx:/etc/nginx/berth:rw"])
def test_dynamic_switch_with_a_writable_mount_is_accepted(volume: str) -> None:
    stack = load(compose("dynamic", volume=volume))
    assert stack.proxy is not None and stack.proxy.switch == "dynamic"
    binds = stack.services["web"].create["HostConfig"]["Binds"]  # compose's short syntax
    assert binds == ["/srv/stack/nginx:/etc/nginx/berth:rw"]


def test_dynamic_switch_through_a_parent_mount_is_accepted() -> None:
    stack = load(compose("dynamic", volume="../nginx:/etc/nginx", upstreams="../nginx/b/up.conf"))
    assert stack.proxy is not None and stack.proxy.switch == "dynamic"
    assert stack.proxy.upstreams_file == "/srv/stack/nginx/b/up.conf"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (compose("dynamic", volume="../other:/etc/nginx/berth"), "does not mount /srv/stack/nginx"),
        (compose("dynamic", volume="cache:/var/cache/nginx"), "does not mount"),
        (
            compose("dynamic").replace(
                "    image: nginx\n", "    image: nginx\n    deploy: {replicas: 2}\n"
            ),
            "2 replicas",
        ),
        (compose("dynamic", volume="../nginx:/" + "d" * 120), "longer than"),
    ],
    ids=["other-dir", "named-volume", "replicas", "long-socket-path"],
)
def test_dynamic_switch_that_cannot_work_is_refused(text: str, fragment: str) -> None:
    found = [p for p in problems(text) if p.field == FIELD]
    assert found, problems(text)
    assert "the dynamic switch cannot work" in found[0].message
    assert fragment in found[0].message


def test_dynamic_switch_with_nginx_on_the_host() -> None:
    text = (
        "services:\n"
        "  api:\n"
        "    image: reg/api\n"
        "    expose: ['8000']\n"
        "    x-berth: {upstream: {name: api_up, port: 8000}}\n"
        "x-berth:\n"
        "  proxy:\n"
        "    upstreams_file: ../nginx/up.conf\n"
        "    test_command: [nginx, -t]\n"
        "    reload_command: [nginx, -s, reload]\n"
        "    switch: dynamic\n"
    )
    stack = load(text)
    assert stack.proxy is not None
    assert stack.proxy.service is None and stack.proxy.switch == "dynamic"
