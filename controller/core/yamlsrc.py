"""YAML loading that remembers where every value came from.

Every configuration error has to name a file, a line and a field, and multiple compose files
are merged before they are translated; so values are wrapped in `Node`s that carry their own
file and line through interpolation and merging, and are unwrapped into plain Python values
plus a path -> location table only at the end (`unwrap`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from controller.errors import ConfigError, Problem

Path = tuple[str | int, ...]


def load_yaml(text: str, file: str) -> Any:
    """Round-trip load, so mappings keep `.lc` line data; syntax errors become ConfigError."""
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark is not None:
            what += f" ({exc.context} started on line {exc.context_mark.line + 1})"
            if "end of stream" in what:  # the end of the file is no help; the start is
                mark = exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError.one(file, line, "", f"YAML syntax error: {what}") from exc
    except YAMLError as exc:
        raise ConfigError.one(file, None, "", f"YAML syntax error: {exc}") from exc


def key_line(mapping: Any, key: Any) -> int | None:
    """1-based line of `key` in a round-trip mapping; None for keys pulled in by `<<:`."""
    if isinstance(mapping, CommentedMap):
        pos = mapping.lc.data.get(key)
        if pos is not None:
            return int(pos[0]) + 1
    return None


def item_line(seq: Any, index: int) -> int | None:
    """1-based line of the `index`th item of a round-trip sequence."""
    if isinstance(seq, CommentedSeq):
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


def plain_scalar(value: Any) -> Any:
    """Drop ruamel's scalar subclasses (ScalarFloat, HexInt) so values compare plainly."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return str(value)


def to_node(value: Any, file: str, line: int | None = 1) -> Node:
    """Wrap a loaded document; keys keep their own line, merged `<<:` keys the mapping's line."""
    if isinstance(value, Mapping):
        own = node_line(value) or line
        out: dict[str, Node] = {}
        for key, child in value.items():
            out[str(key)] = to_node(child, file, key_line(value, key) or own)
        return Node(out, file, line)
    if isinstance(value, list):
        own = node_line(value) or line
        items = [to_node(child, file, item_line(value, i) or own) for i, child in enumerate(value)]
        return Node(items, file, line)
    return Node(plain_scalar(value), file, line)


def load_node(text: str, file: str) -> Node:
    """Parse text into a Node tree; an empty document is an empty mapping."""
    data = load_yaml(text, file)
    if data is None:
        return Node({}, file, 1)
    return to_node(data, file, 1)


def map_nodes(node: Node, fn: Callable[[Node, Path], Node], path: Path = ()) -> Node:
    """Rebuild a tree bottom-up through `fn` (used for interpolation of every scalar)."""
    if isinstance(node.value, dict):
        kids = {k: map_nodes(v, fn, (*path, k)) for k, v in node.value.items()}
        return fn(Node(kids, node.file, node.line), path)
    if isinstance(node.value, list):
        items = [map_nodes(v, fn, (*path, i)) for i, v in enumerate(node.value)]
        return fn(Node(items, node.file, node.line), path)
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
