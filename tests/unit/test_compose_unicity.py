"""A list element redefined in one service: the later one is kept at the earlier one's
place, as compose-go's EnforceUnicity does, and a dropped element that differed is a
warning naming both lines (sonarqube's two mounts on /opt/sonarqube/logs)."""

from __future__ import annotations

import pytest

from controller.errors import ConfigError
from tests.unit.test_compose_translate import FILE, load

TOP = "volumes:\n  logs: {}\n  search: {}\n  data: {}\n"


def test_a_redefined_mount_point_keeps_the_later_mount_and_says_so() -> None:
    stack = load(
        "services:\n  s:\n    image: x\n    volumes:\n"
        "      - data:/opt/sq/data\n"
        "      - logs:/opt/sq/logs\n"
        "      - /tmp\n"
        "      - search:/opt/sq/logs\n" + TOP
    )
    mounts = stack.services["s"].create["HostConfig"]["Mounts"]
    assert [(m["Target"], m.get("Source")) for m in mounts] == [
        ("/opt/sq/data", "p_data"),
        ("/opt/sq/logs", "p_search"),  # the later one, in the earlier one's place
        ("/tmp", None),
    ]
    [w] = stack.warnings
    assert (w.file, w.line, w.field) == (FILE, 8, "services.s.volumes[3]")
    assert "redefines '/opt/sq/logs' of line 6: the later one is used, as compose does" in w.message


@pytest.mark.parametrize(
    ("key", "items", "after"),
    [
        ("ports", "['8080:80', '8080:80']", ["8080"]),
        ("devices", "['/dev/null:/dev/x', '/dev/zero:/dev/x']", ["/dev/zero"]),
        ("cap_add", "[NET_ADMIN, NET_ADMIN]", ["NET_ADMIN"]),
        ("dns", "[1.1.1.1, 1.1.1.1]", ["1.1.1.1"]),
    ],
)
def test_other_lists_are_settled_by_compose_keys(key: str, items: str, after: list[str]) -> None:
    stack = load(f"services:\n  s:\n    image: x\n    {key}: {items}\n")
    hc = stack.services["s"].create["HostConfig"]
    got = {
        "ports": lambda: [b["HostPort"] for b in hc["PortBindings"]["80/tcp"]],
        "devices": lambda: [d["PathOnHost"] for d in hc["Devices"]],
        "cap_add": lambda: hc["CapAdd"],
        "dns": lambda: hc["Dns"],
    }[key]()
    assert got == after
    identical = key in ("ports", "cap_add", "dns")  # an identical repeat changes nothing
    assert len(stack.warnings) == (0 if identical else 1)


def test_the_errors_after_settling_still_point_at_their_own_lines() -> None:
    with pytest.raises(ConfigError) as info:
        load(
            "services:\n  s:\n    image: x\n    volumes:\n"
            "      - logs:/l\n      - search:/l\n      - nowhere:/n\n" + TOP
        )
    [p] = info.value.problems
    assert (p.line, p.field) == (7, "services.s.volumes[1]")  # its own line; its place after
    assert "'nowhere' is not declared" in p.message
