"""compose-spec's merge directives `!reset` and `!override`, as compose-go applies them."""

from __future__ import annotations

from tests.unit.test_compose_translate import create, host, load

BASE = """\
services:
  s:
    image: busybox
    command: ["sleep", "1"]
    environment: {A: "1", B: "2"}
    ports: ["8080:80", "8443:443"]
"""
OVER = "/srv/stack/compose/over.yml"


def test_reset_in_an_override_removes_the_value() -> None:
    over = "services:\n  s:\n    ports: !reset []\n    command: !reset null\n"
    body = create(BASE, more=[(OVER, over)])
    assert "PortBindings" not in host(BASE, more=[(OVER, over)])
    assert "Cmd" not in body
    assert sorted(body["Env"]) == ["A=1", "B=2"]


def test_override_replaces_instead_of_merging() -> None:
    over = (
        'services:\n  s:\n    environment: !override {C: "3"}\n    ports: !override ["9090:90"]\n'
    )
    body = create(BASE, more=[(OVER, over)])
    assert body["Env"] == ["C=3"]
    assert list(body["HostConfig"]["PortBindings"]) == ["90/tcp"]


def test_without_directives_the_same_keys_merge() -> None:
    over = 'services:\n  s:\n    environment: {C: "3"}\n    ports: ["9090:90"]\n'
    body = create(BASE, more=[(OVER, over)])
    assert sorted(body["Env"]) == ["A=1", "B=2", "C=3"]
    assert len(body["HostConfig"]["PortBindings"]) == 3


def test_reset_in_a_single_file_drops_the_key() -> None:
    text = BASE.replace('    command: ["sleep", "1"]\n', "    command: !reset [sleep]\n")
    assert "Cmd" not in create(text)


def test_reset_of_a_whole_service_in_an_override() -> None:
    base = BASE + "  t:\n    image: busybox\n"
    stack = load(base, more=[(OVER, "services:\n  t: !reset {}\n")])
    assert set(stack.services) == {"s"}
