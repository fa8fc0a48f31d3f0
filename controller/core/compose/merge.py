"""Merging several compose files (`-f a.yml -f b.yml`) the way Docker Compose does.

Kept deliberately to compose's documented rules that operators rely on:

- mappings merge key by key, recursively; a scalar or a list in a later file replaces the
  earlier one (so `command`, `entrypoint`, `healthcheck.test` are replaced whole);
- `environment`, `labels`, `sysctls` merge by variable/label name (list and map forms mix);
- `ports`, `expose`, `dns`, `dns_search`, `dns_opt`, `tmpfs`, `cap_add`, `cap_drop`,
  `security_opt`, `extra_hosts`, `env_file`, `group_add`, `devices`, `profiles` are
  concatenated with duplicates dropped;
- `volumes` merge by container path (a later file's mount for `/data` replaces the earlier);
- `networks` and `depends_on` merge by name (list and map forms mix);
- compose-spec's merge directives: a value tagged `!reset` removes the key (the earlier
  files' value and its own), `!override` replaces the earlier value whole instead of
  merging it. Any other YAML tag is refused when the file is loaded.

Every value keeps the file and line it came from, so errors after merging still point into
the file that wrote the offending value.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from controller.core.yamlsrc import Node

_UNION = frozenset(
    {
        "ports",
        "expose",
        "dns",
        "dns_search",
        "dns_opt",
        "tmpfs",
        "cap_add",
        "cap_drop",
        "security_opt",
        "extra_hosts",
        "env_file",
        "group_add",
        "devices",
        "profiles",
    }
)
_KEYED = frozenset({"environment", "labels", "sysctls"})
_NAMED = frozenset({"networks", "depends_on"})


def merge_files(nodes: list[Node]) -> Node:
    result = nodes[0]
    for node in nodes[1:]:
        result = _merge(result, node, ())
    return _settle(result)


def merge_service(base: Node, over: Node, name: str) -> Node:
    """`over` extending `base` (compose's `extends`): the same rules as merging files. The
    result is located where `over` is (the service that extends)."""
    merged = _merge(base, over, ("services", name))
    return Node(merged.value, over.file, over.line)


def merge_resource(kind: str, name: str, base: Node, over: Node) -> Node:
    """An included resource redefined by the including file (or an earlier include):
    `over` merged over `base` with the rules above, as compose-go's include does since
    v2.10; located where `over` is."""
    merged = _settle(_merge(base, over, (kind, name)))
    return Node(merged.value, over.file, over.line)


def plain(node: Node) -> Any:
    """The plain value of a node tree (no origins, no tags)."""
    return _plain(node)


def _settle(node: Node) -> Node:
    """Apply what directives are left: `!reset` values go, tags are dropped."""
    if isinstance(node.value, dict):
        kids = {k: _settle(v) for k, v in node.value.items() if v.tag != "!reset"}
        return Node(kids, node.file, node.line)
    if isinstance(node.value, list):
        items = [_settle(v) for v in node.value if v.tag != "!reset"]
        return Node(items, node.file, node.line)
    return Node(node.value, node.file, node.line) if node.tag else node


def _merge(base: Node, over: Node, path: tuple[str, ...]) -> Node:
    if over.tag is not None:  # !override replaces whole; !reset is removed by the caller
        return over
    if len(path) == 3 and path[0] == "services":
        key = path[2]
        if key in _UNION and isinstance(base.value, list) and isinstance(over.value, list):
            return _union(base, over)
        if key in _KEYED:
            base, over = _as_map(base, "="), _as_map(over, "=")
        elif key in _NAMED:
            base, over = _as_map(base, None), _as_map(over, None)
        elif key == "volumes" and isinstance(base.value, list) and isinstance(over.value, list):
            return _volumes(base, over)
    if isinstance(base.value, dict) and isinstance(over.value, dict):
        merged = dict(base.value)
        for key, child in over.value.items():
            if child.tag == "!reset":
                merged.pop(key, None)
            else:
                merged[key] = _merge(merged[key], child, (*path, key)) if key in merged else child
        return Node(merged, over.file, base.line, base.tag)
    return over


def _plain(node: Node) -> Any:
    if isinstance(node.value, dict):
        return {k: _plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(v) for v in node.value]
    return node.value


def _union(base: Node, over: Node) -> Node:
    """Items of `over` not already in `base`, appended; linear (a set of hashable keys)."""
    items = list(base.value)
    seen = {_key(_plain(n)) for n in items}
    for item in over.value:
        k = _key(_plain(item))
        if k not in seen:
            items.append(item)
            seen.add(k)
    return Node(items, over.file, base.line)


def _key(value: Any) -> Hashable:
    """A hashable stand-in for a plain YAML value (mappings and sequences included)."""
    if isinstance(value, dict):
        return ("map", tuple(sorted((str(k), _key(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("seq", tuple(_key(v) for v in value))
    return (type(value).__name__, value)


def _as_map(node: Node, sep: str | None) -> Node:
    """List form -> map form; items that are not plain strings are left for validation."""
    if not isinstance(node.value, list):
        return node
    out: dict[str, Node] = {}
    for item in node.value:
        if not isinstance(item.value, str):
            return node
        if sep is None:
            out[item.value] = Node(None, item.file, item.line)
        else:
            key, found, val = item.value.partition(sep)
            out[key] = Node(val if found else None, item.file, item.line)
    return Node(out, node.file, node.line)


def _target(item: Node) -> Any:
    if isinstance(item.value, dict):
        target = item.value.get("target")
        return target.value if target is not None else _plain(item)
    if isinstance(item.value, str):
        parts = item.value.split(":")
        return parts[1] if len(parts) >= 2 else parts[0]
    return _plain(item)


def _volumes(base: Node, over: Node) -> Node:
    by_target: dict[Any, Node] = {}
    for item in [*base.value, *over.value]:
        target = _target(item)
        key = target if isinstance(target, str) else repr(target)
        by_target.pop(key, None)
        by_target[key] = item
    return Node(list(by_target.values()), over.file, base.line)
