"""YAML loading that remembers where every value came from, within fixed bounds.

Every configuration error has to name a file, a line and a field, and multiple compose files
are merged before they are translated; so values are wrapped in `Node`s that carry their own
file and line through interpolation and merging, and are unwrapped into plain Python values
plus a path -> location table only at the end (`unwrap`).

Input is hostile (desired/ has many writers): before a document is built, its event stream
is checked against fixed limits and a closed set of tags (`yamlshape`), so an alias bomb, a
deep nest or an unknown tag is a located error instead of gigabytes, a RecursionError or a
crash.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarint import ScalarInt

from controller.core.yamlshape import checking
from controller.errors import ConfigError, Problem, brief

Path = tuple[str | int, ...]

COMPOSE_TAGS = frozenset({"!reset", "!override"})  # compose-spec merge directives
# YAML allows redefining an anchor (the later one wins, here as in the shape check); ruamel
# would print a warning to stderr for it, outside the structured log.
warnings.filterwarnings("ignore", category=ReusedAnchorWarning)


class _Constructor(RoundTripConstructor):
    """Timestamps stay text, as compose reads them (go-yaml keeps a timestamp-looking value
    a string when the target is untyped); ruamel would build a datetime, and raise on one
    that does not exist (2001-13-45) with no line to point at."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)


def _syntax_error(exc: MarkedYAMLError, file: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.context_mark is not None:
        what += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        if "end of stream" in what:  # the end of the file is no help; the start is
            mark = exc.context_mark
    line = mark.line + 1 if mark is not None else None
    if len(what) > 300:  # ruamel quotes values (a duplicate key's, whole): keep one line
        what = what[:297] + "..."
    return ConfigError.one(file, line, "", f"YAML syntax error: {what}")


def load_yaml(text: str, file: str, *, tags: frozenset[str] = frozenset()) -> Any:
    """Round-trip load (mappings keep `.lc` line data) of a document that passed
    the shape check (`yamlshape.checking`, event by event as it is parsed); syntax errors and
    limits become ConfigError with the line."""
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    try:
        parser = yaml.parser
        parser.get_event = checking(parser.get_event, file, tags)
        return yaml.load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from exc
    except ReaderError as exc:  # a character YAML does not allow (NUL, most controls)
        line = text[: exc.position].count("\n") + 1
        what = f"character {brief(exc.character)} is not allowed in YAML"
        raise ConfigError.one(file, line, "", f"YAML syntax error: {what}") from exc
    except YAMLError as exc:
        raise ConfigError.one(file, None, "", f"YAML syntax error: {str(exc)[:300]}") from exc
    except (ValueError, TypeError) as exc:  # backstop: ruamel building a value it parsed
        why = str(exc)[:200]
        raise ConfigError.one(file, None, "", f"YAML value cannot be read: {why}") from exc


def key_line(mapping: Any, key: Any) -> int | None:
    """1-based line of `key` in a round-trip mapping; None for keys pulled in by `<<:`."""
    if isinstance(mapping, CommentedMap) and mapping.lc.data is not None:
        pos = mapping.lc.data.get(key)
        if pos is not None:
            return int(pos[0]) + 1
    return None


def item_line(seq: Any, index: int) -> int | None:
    """1-based line of the `index`th item of a round-trip sequence."""
    if isinstance(seq, CommentedSeq) and seq.lc.data is not None:
        pos = seq.lc.data.get(index)
        if pos is not None:
            return int(pos[0]) + 1
    return None


def node_line(value: Any) -> int | None:
    """1-based line where a mapping or sequence starts."""
    if isinstance(value, CommentedMap | CommentedSeq) and value.lc.line is not None:
        return int(value.lc.line) + 1
    return None


@dataclass(frozen=True)
class Node:
    """A YAML value with its origin. `value` is a dict[str, Node], a list[Node] or a scalar."""

    value: Any
    file: str
    line: int | None
    tag: str | None = None  # a compose merge directive (`!reset`, `!override`), else None


def plain_scalar(value: Any) -> Any:
    """Drop ruamel's scalar subclasses (ScalarFloat, HexInt) so values compare plainly.

    An integer written with leading zeros (`0777`) is octal, as compose's YAML reader
    (go-yaml) reads it; ruamel's YAML 1.2 would read 777."""
    if value is None or isinstance(value, bool):
        return value
    if type(value) is ScalarInt and (width := getattr(value, "_width", None)):
        digits = str(abs(int(value))).zfill(width)
        if len(digits) > len(str(abs(int(value)))) and set(digits) <= set("01234567"):
            return int(digits, 8) * (-1 if value < 0 else 1)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return str(value)


def _tag(value: Any) -> str | None:
    tag = getattr(value, "tag", None)
    text = getattr(tag, "value", tag)
    return str(text) if isinstance(text, str) and text in COMPOSE_TAGS else None


def to_node(value: Any, file: str, line: int | None = 1) -> Node:
    """Wrap a loaded document; keys keep their own line, merged `<<:` keys the mapping's line."""
    tag = _tag(value)
    if isinstance(value, TaggedScalar):
        return Node(plain_scalar(value.value), file, line, tag)
    if isinstance(value, Mapping):
        own = node_line(value) or line
        out: dict[str, Node] = {}
        for key, child in value.items():
            at = key_line(value, key) or own
            name = str(key)
            if name in out:  # `1:` and `"1":` are one key once keys are strings
                raise ConfigError.one(file, at, "", f"duplicate key {brief(name[:60])}")
            out[name] = to_node(child, file, at)
        return Node(out, file, line, tag)
    if isinstance(value, list):
        own = node_line(value) or line
        items = [to_node(child, file, item_line(value, i) or own) for i, child in enumerate(value)]
        return Node(items, file, line, tag)
    return Node(plain_scalar(value), file, line)


def load_node(text: str, file: str, *, tags: frozenset[str] = frozenset()) -> Node:
    """Parse text into a Node tree; an empty document is an empty mapping. `tags` are the
    custom tags this kind of file may use (compose files: `!reset`, `!override`)."""
    data = load_yaml(text, file, tags=tags)
    if data is None:
        return Node({}, file, 1)
    return to_node(data, file, 1)


def map_nodes(node: Node, fn: Callable[[Node, Path], Node], path: Path = ()) -> Node:
    """Rebuild a tree bottom-up through `fn` (used for interpolation of every scalar)."""
    if isinstance(node.value, dict):
        kids = {k: map_nodes(v, fn, (*path, k)) for k, v in node.value.items()}
        return fn(Node(kids, node.file, node.line, node.tag), path)
    if isinstance(node.value, list):
        items = [map_nodes(v, fn, (*path, i)) for i, v in enumerate(node.value)]
        return fn(Node(items, node.file, node.line, node.tag), path)
    return fn(node, path)


@dataclass(frozen=True)
class Where:
    file: str
    line: int | None


def unwrap(node: Node) -> tuple[Any, dict[Path, Where]]:
    """Plain value plus a table of where each path came from."""
    table: dict[Path, Where] = {}

    def walk(n: Node, path: Path) -> Any:
        table[path] = Where(n.file, n.line)
        if isinstance(n.value, dict):
            return {k: walk(v, (*path, k)) for k, v in n.value.items()}
        if isinstance(n.value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(n.value)]
        return n.value

    return walk(node, ()), table


def dotted(path: Path) -> str:
    """`services.api.ports[0]`: the field path users see in messages."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class Located:
    """Plain data plus origins; collects Problems instead of raising at the first one."""

    def __init__(self, data: Any, table: Mapping[Path, Where], default_file: str) -> None:
        self.data = data
        self._table = table
        self._default = default_file
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # accepted as compose does, but worth saying

    def where(self, path: Path) -> Where:
        """Origin of `path`, or of its nearest ancestor that has one."""
        probe = path
        while True:
            hit = self._table.get(probe)
            if hit is not None:
                return hit
            if not probe:
                return Where(self._default, None)
            probe = probe[:-1]

    def problem(self, path: Path, message: str) -> Problem:
        at = self.where(path)
        return Problem(at.file, at.line, dotted(path), message)

    def error(self, path: Path, message: str) -> None:
        self.problems.append(self.problem(path, message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(self.problem(path, message))
