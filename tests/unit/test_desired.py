from __future__ import annotations

import pytest

from controller.core.desired import parse_desired
from controller.errors import ConfigError

FILE = "/repo/desired/app.yaml"


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_desired(FILE, text)
    return [(p.line, p.field, p.message) for p in info.value.problems]


def test_valid_file() -> None:
    stack = parse_desired(
        FILE,
        "project: app\ncompose: [../compose/a.yml, ../compose/b.yml]\nservices:\n"
        "  api:\n    tag: '1.4.2'\n    replicas: 0\n  web:\n    tag: latest\n",
    )
    assert stack.project == "app"
    assert stack.compose_files == ("/repo/compose/a.yml", "/repo/compose/b.yml")
    assert stack.services["api"].replicas == 0
    assert stack.services["web"].replicas is None
    assert stack.services["web"].where.line == 7


def test_project_is_optional_and_services_may_be_empty() -> None:
    stack = parse_desired(FILE, "compose: ../c.yml\n")
    assert stack.project == "" and stack.services == {} and stack.compose_files == ("/repo/c.yml",)


@pytest.mark.parametrize(
    ("body", "line", "field", "fragment"),
    [
        ("    tag: 1.5\n", 5, "services.api.tag", "quote it"),
        ("    tag: 'a b'\n", 5, "services.api.tag", "invalid tag"),
        ("    replicas: 2\n", 4, "services.api.tag", "required"),  # the service line
        ("    tag: x\n    replicas: -1\n", 6, "services.api.replicas", "0-256"),
        ("    tag: x\n    replicas: two\n", 6, "services.api.replicas", "whole number"),
        ("    tag: x\n    replicas: true\n", 6, "services.api.replicas", "whole number"),
        ("    tag: x\n    replicas: 1.0\n", 6, "services.api.replicas", "whole number"),
        ("    tag: x\n    image: evil/img\n", 6, "services.api.image", "security boundary"),
        ("    tag: x\n    privileged: true\n", 6, "services.api.privileged", "security boundary"),
        ("    tag: x\n    cap_add: [SYS_ADMIN]\n", 6, "services.api.cap_add", "security boundary"),
        ("    tag: x\n    x-berth: {}\n", 6, "services.api.x-berth", "security boundary"),
        ("    tag: x\n    tga: y\n", 6, "services.api.tga", "allowed: tag, replicas"),
    ],
)
def test_service_errors(body: str, line: int, field: str, fragment: str) -> None:
    text = "project: app\ncompose: c.yml\nservices:\n  api:\n" + body
    found = problems(text)
    assert any(ln == line and f == field and fragment in m for ln, f, m in found), found


def test_top_level_errors_are_all_reported() -> None:
    found = problems("project: Bad Name\nimage: x\nservices: [a]\n")
    assert (1, "project") in [(ln, f) for ln, f, _ in found]
    assert any(f == "image" and "security boundary" in m for _, f, m in found)
    assert any(f == "compose" and "required" in m for _, f, m in found)
    assert any(ln == 3 and f == "services" for ln, f, _ in found)


def test_yaml_syntax_error_has_line() -> None:
    found = problems("project: app\ncompose: c.yml\nservices:\n  api: {tag: [\n")
    assert found[0][0] is not None and found[0][0] >= 4
    assert "YAML syntax error" in found[0][2]


def test_duplicate_key_is_an_error() -> None:
    found = problems("project: app\ncompose: c.yml\nproject: other\n")
    assert found[0][0] == 3
