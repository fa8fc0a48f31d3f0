"""Targeted edits of `desired/*.yaml`: change the `tag:` scalars and not one other byte.

desired/ files are reviewed in pull requests and carry comments that explain pins ("held at
1.4.1 until the migration lands"). A load-and-dump round trip reflows quoting, spacing and
comments in ways nobody asked for and makes a one-line deploy look like a rewrite, so the
edit replaces the exact character span ruamel reports for each tag scalar and leaves the
rest of the text alone. The result is re-parsed and compared with the expected document, so
a bug here fails loudly instead of committing a surprise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controller.core.reference import tag_problem
from controller.core.yamlsrc import load_node, unwrap
from controller.errors import BerthError, brief

# Words YAML 1.1 readers (PyYAML, older tools) turn into booleans or null: quoted for them.
_YAML11_WORDS = frozenset(
    {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "nan", "inf"}
)
_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)*")  # anchors / explicit tags before the scalar


class EditError(BerthError):
    """The edit cannot be made safely; the text is left as it was."""


@dataclass(frozen=True)
class _Span:
    start: int  # character offsets of the scalar itself (after any anchor / !!tag)
    end: int
    style: str | None  # None plain, '"' or "'"
    line: int  # 1-based


def set_tags(text: str, file: str, tags: Mapping[str, str]) -> str:
    """`text` with `services.<name>.tag` set to `tags[name]` for each name, nothing else."""
    before = unwrap(load_node(text, file))[0]  # ConfigError when the file does not parse
    for name, tag in tags.items():
        if problem := tag_problem(tag):
            raise EditError(f"{file}: services.{name}.tag: {problem}")
    spans = _tag_spans(text, file, tags)
    out = text
    for span, tag in sorted(spans, key=lambda s: s[0].start, reverse=True):
        out = out[: span.start] + _render(tag, span.style) + out[span.end :]
    _check(before, out, file, tags)
    return out


def _compose(text: str, file: str) -> Node:
    try:
        root = YAML(typ="rt").compose(text)
    except YAMLError as exc:  # load_node accepted it, so this is unexpected
        raise EditError(f"{file}: cannot parse: {exc}") from exc
    if not isinstance(root, MappingNode):
        raise EditError(f"{file}: a desired file must be a mapping")
    return root


def _get(node: MappingNode, key: str) -> tuple[ScalarNode, Node] | None:
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _walk(node: Node, seen: set[int]) -> Iterator[Node]:
    """Every reference to every node (an alias yields its target once more); a collection
    is entered once, so a recursive alias cannot loop."""
    yield node
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        for k, v in node.value:
            yield from _walk(k, seen)
            yield from _walk(v, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _walk(item, seen)


def _tag_node(services: MappingNode, file: str, name: str) -> Node:
    svc = _get(services, name)
    if svc is None:
        raise EditError(f"{file}: service {brief(name)} is not named in this file")
    key, body = svc
    line = key.start_mark.line + 1
    if not isinstance(body, MappingNode):
        raise EditError(f"{file}:{line}: services.{name} is not a mapping with a tag")
    hit = _get(body, "tag")
    if hit is None:
        raise EditError(f"{file}:{line}: services.{name} has no 'tag:' of its own to change")
    return hit[1]


def _span(text: str, file: str, name: str, node: Node) -> _Span:
    line = node.start_mark.line + 1
    where = f"{file}:{line}: services.{name}.tag"
    if not isinstance(node, ScalarNode):
        raise EditError(f"{where}: not a scalar")
    if node.style not in (None, '"', "'"):
        raise EditError(f"{where}: block scalar; write the tag on one line to let berth edit it")
    raw = text[node.start_mark.index : node.end_mark.index]
    skip = _PROPERTIES.match(raw)
    start = node.start_mark.index + (skip.end() if skip else 0)
    if "\n" in text[start : node.end_mark.index]:
        raise EditError(f"{where}: spans several lines; write it on one line")
    return _Span(start, node.end_mark.index, node.style, line)


def _tag_spans(text: str, file: str, tags: Mapping[str, str]) -> list[tuple[_Span, str]]:
    root = _compose(text, file)
    found = _get(root, "services") if isinstance(root, MappingNode) else None
    if found is None or not isinstance(found[1], MappingNode):
        raise EditError(f"{file}: no 'services:' mapping")
    nodes = {name: _tag_node(found[1], file, name) for name in tags}
    refs: dict[int, int] = {}
    for n in _walk(root, set()):
        refs[id(n)] = refs.get(id(n), 0) + 1
    out: dict[int, tuple[_Span, str]] = {}
    for name, node in nodes.items():
        sharing = [s for s, other in nodes.items() if other is node]
        if refs[id(node)] != len(sharing) or len({tags[s] for s in sharing}) != 1:
            raise EditError(
                f"{file}:{node.start_mark.line + 1}: services.{name}.tag is a YAML anchor/alias "
                "shared with other values; edit it by hand"
            )
        out[id(node)] = (_span(text, file, name, node), tags[name])
    return list(out.values())


def _plain_ok(tag: str) -> bool:
    """Whether `tag` written without quotes reads back as the same string."""
    if tag.lower() in _YAML11_WORDS:
        return False
    try:
        data = YAML(typ="safe", pure=True).load(f"k: {tag}\n")
    except YAMLError:
        return False
    return isinstance(data, dict) and data.get("k") == tag and isinstance(data["k"], str)


def _render(tag: str, style: str | None) -> str:
    if style == "'":
        return "'" + tag.replace("'", "''") + "'"
    if style is None and _plain_ok(tag):
        return tag
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(before: Any, after_text: str, file: str, tags: Mapping[str, str]) -> None:
    """Defensive: the edited text must load to the old document with only the tags changed."""
    expected = before
    for name, tag in tags.items():
        expected = {
            **expected,
            "services": {
                **expected["services"],
                name: {**expected["services"][name], "tag": tag},
            },
        }
    try:
        after = unwrap(load_node(after_text, file))[0]
    except BerthError as exc:
        raise EditError(f"{file}: the edit would not parse ({exc}); nothing written") from exc
    if after != expected:
        raise EditError(f"{file}: the edit would change more than the tags; nothing written")
