"""controller.core.edit: only the `tag:` scalar changes, every other byte stays."""

from __future__ import annotations

import pytest

from controller.core.edit import EditError, set_tags
from controller.core.yamlsrc import load_node, unwrap
from controller.errors import ConfigError

FILE = "/repo/desired/app.yaml"

DOC = """\
# desired/app.yaml — one stack
# (two comment lines above everything)

project: app          # compose project name
compose: ../compose/docker-compose.prod.yml

services:
  # the public API; held back until the migration lands
  api:
    tag: "1.4.2"      # pinned by ops
    replicas: 2

  synth-worker:
    replicas: 1
    tag: 1.4.2
  web: {tag: "1.0.0", replicas: 1}   # flow style
  batch:
    tag: '7.1.0'
# trailing comment

"""


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(a) == len(b), "the edit must never add or remove lines"
    return [(x, y) for x, y in zip(a, b, strict=True) if x != y]


def data(text: str) -> object:
    return unwrap(load_node(text, FILE))[0]


def test_double_quoted_keeps_quotes_and_inline_comment() -> None:
    out = set_tags(DOC, FILE, {"api": "1.5.0"})
    assert changed_lines(DOC, out) == [
        ('    tag: "1.4.2"      # pinned by ops\n', '    tag: "1.5.0"      # pinned by ops\n')
    ]


def test_plain_stays_plain() -> None:
    out = set_tags(DOC, FILE, {"synth-worker": "1.5.0"})
    assert changed_lines(DOC, out) == [("    tag: 1.4.2\n", "    tag: 1.5.0\n")]


def test_single_quoted_stays_single_quoted() -> None:
    out = set_tags(DOC, FILE, {"batch": "7.2.0"})
    assert changed_lines(DOC, out) == [("    tag: '7.1.0'\n", "    tag: '7.2.0'\n")]


def test_flow_mapping() -> None:
    out = set_tags(DOC, FILE, {"web": "2.0.0"})
    assert changed_lines(DOC, out) == [
        (
            '  web: {tag: "1.0.0", replicas: 1}   # flow style\n',
            '  web: {tag: "2.0.0", replicas: 1}   # flow style\n',
        )
    ]


@pytest.mark.parametrize("tag", ["1.5", "2", "1e3", "true", "yes", "null", "0x1F"])
def test_plain_tag_that_needs_quotes_gets_double_quotes(tag: str) -> None:
    out = set_tags(DOC, FILE, {"synth-worker": tag})
    assert changed_lines(DOC, out) == [("    tag: 1.4.2\n", f'    tag: "{tag}"\n')]
    loaded = data(out)
    assert isinstance(loaded, dict)
    assert loaded["services"]["synth-worker"]["tag"] == tag


def test_digest_and_tag_at_digest_stay_plain() -> None:
    digest = "sha256:" + "a" * 64
    out = set_tags(DOC, FILE, {"synth-worker": digest, "batch": f"7.2.0@{digest}"})
    assert changed_lines(DOC, out) == [
        ("    tag: 1.4.2\n", f"    tag: {digest}\n"),
        ("    tag: '7.1.0'\n", f"    tag: '7.2.0@{digest}'\n"),
    ]


def test_multiple_services_everything_else_byte_for_byte() -> None:
    tags = {"api": "2.0.0", "synth-worker": "2.0.0", "web": "2.0.0", "batch": "2.0.0"}
    out = set_tags(DOC, FILE, tags)
    assert len(changed_lines(DOC, out)) == 4
    # Undo the four tag edits textually: what remains is the original, byte for byte.
    undone = (
        out.replace('"2.0.0"      # pinned', '"1.4.2"      # pinned')
        .replace("tag: 2.0.0\n", "tag: 1.4.2\n")
        .replace('{tag: "2.0.0"', '{tag: "1.0.0"')
        .replace("'2.0.0'", "'7.1.0'")
    )
    assert undone == DOC
    expected = data(DOC)
    assert isinstance(expected, dict)
    for name in tags:
        expected["services"][name]["tag"] = "2.0.0"
    assert data(out) == expected


def test_same_tag_is_a_no_op() -> None:
    assert set_tags(DOC, FILE, {"api": "1.4.2"}) == DOC
    assert set_tags(DOC, FILE, {}) == DOC


def test_crlf_line_endings_and_value_on_next_line_survive() -> None:
    text = "compose: c.yml\r\nservices:\r\n  api:\r\n    tag:\r\n      1.0.0  # x\r\n"
    out = set_tags(text, FILE, {"api": "1.1.0"})
    assert out == text.replace("1.0.0", "1.1.0")


def test_anchor_and_explicit_tag_are_kept() -> None:
    text = "compose: c.yml\nservices:\n  api:\n    tag: &v !!str 1.0.0 # x\n"
    assert set_tags(text, FILE, {"api": "1.1.0"}) == text.replace("1.0.0", "1.1.0")


def test_shared_anchor_edits_once_when_every_user_gets_the_same_tag() -> None:
    text = "compose: c.yml\nservices:\n  a:\n    tag: &v 1.0.0\n  b:\n    tag: *v\n"
    assert set_tags(text, FILE, {"a": "2.0.0", "b": "2.0.0"}) == text.replace("1.0.0", "2.0.0")
    with pytest.raises(EditError, match="anchor"):
        set_tags(text, FILE, {"a": "2.0.0"})
    with pytest.raises(EditError, match="anchor"):
        set_tags(text, FILE, {"a": "2.0.0", "b": "3.0.0"})


@pytest.mark.parametrize(
    ("text", "tags", "fragment"),
    [
        (DOC, {"nope": "1.0.0"}, "'nope' is not named in this file"),
        ("compose: c.yml\nservices:\n  api:\n    replicas: 2\n", {"api": "1.0"}, "no 'tag:'"),
        ("compose: c.yml\nservices:\n  api: null\n", {"api": "1.0"}, "not a mapping"),
        ("compose: c.yml\n", {"api": "1.0"}, "no 'services:'"),
        (DOC, {"api": "bad tag"}, "invalid tag"),
        (DOC, {"api": "-x"}, "invalid tag"),
        (DOC, {"api": ""}, "non-empty"),
        ("compose: c.yml\nservices:\n  api:\n    tag: >-\n      1.0\n", {"api": "2.0"}, "block"),
        ("compose: c.yml\nservices:\n  api:\n    tag: [1]\n", {"api": "2.0"}, "not a scalar"),
    ],
)
def test_errors(text: str, tags: dict[str, str], fragment: str) -> None:
    with pytest.raises(EditError, match=None) as info:
        set_tags(text, FILE, tags)
    assert fragment in str(info.value)


def test_a_file_that_does_not_parse_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        set_tags("services: [\n", FILE, {"api": "1.0"})


def test_errors_name_the_file_and_line() -> None:
    with pytest.raises(EditError) as info:
        set_tags("compose: c.yml\nservices:\n  api:\n    replicas: 2\n", FILE, {"api": "1.0"})
    assert str(info.value).startswith(f"{FILE}:3:")
