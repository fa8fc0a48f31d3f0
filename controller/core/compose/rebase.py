"""Relative paths of a brought-in compose file, rewritten for the project directory.

Compose resolves the relative paths of an included file against the include's project
directory, and those of a service extended from another file against that file's
directory. Berth resolves every relative path against the project directory when it
translates, so paths are rewritten here, still relative (`../common/data`): a relative bind
source keeps its own check (it must stay inside the compose root) and `./x` stays a bind,
never turning into a named volume. Fields with paths: service `volumes` (bind sources,
short and long syntax), `env_file`, `build.context` (`.` when not given; a remote context
stays), a top-level volume's `driver_opts.device` and a secret's or config's `file`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from controller.core.yamlsrc import Node


def relocate(path: str, src: str, dst: str) -> str:
    """`path` written relative to directory `src`, made relative to `dst` (both absolute)."""
    if path.startswith(("/", "~")):
        return path
    moved = posixpath.relpath(posixpath.normpath(posixpath.join(src, path)), dst)
    return moved if moved.startswith(".") else "./" + moved


def _set(node: Node, key: str, fn: Callable[[Node], Node]) -> Node:
    if not isinstance(node.value, dict) or key not in node.value:
        return node
    return Node({**node.value, key: fn(node.value[key])}, node.file, node.line, node.tag)


def _each(node: Node, fn: Callable[[Node], Node]) -> Node:
    if isinstance(node.value, dict):
        kids = {k: fn(v) for k, v in node.value.items()}
        return Node(kids, node.file, node.line, node.tag)
    if isinstance(node.value, list):
        return Node([fn(v) for v in node.value], node.file, node.line, node.tag)
    return node


def _text(node: Node, fn: Callable[[str], str]) -> Node:
    if isinstance(node.value, str) and node.value:
        return Node(fn(node.value), node.file, node.line, node.tag)
    return node


def rebase_service(svc: Node, src: str, dst: str) -> Node:
    """One service's relative paths, from `src` to `dst`."""
    if src == dst:
        return svc

    def path(text: str) -> str:
        return relocate(text, src, dst)

    def short(text: str) -> str:
        source, colon, rest = text.partition(":")
        return path(source) + colon + rest if colon and source.startswith(".") else text

    def volume(item: Node) -> Node:
        if isinstance(item.value, str):
            return _text(item, short)
        kind = item.value.get("type") if isinstance(item.value, dict) else None
        if kind is not None and kind.value == "bind":
            return _set(item, "source", lambda n: _text(n, path))
        return item

    def env_file(item: Node) -> Node:
        if isinstance(item.value, dict):
            return _set(item, "path", lambda n: _text(n, path))
        return _text(item, path)

    def build(node: Node) -> Node:  # the context, `.` when not given (not a remote one)
        if isinstance(node.value, dict) and "context" not in node.value:
            dot = Node(".", node.file, node.line)
            node = Node({**node.value, "context": dot}, node.file, node.line, node.tag)
        if isinstance(node.value, str):
            return _text(node, local)
        return _set(node, "context", lambda n: _text(n, local))

    def local(text: str) -> str:
        return text if "://" in text or text.startswith(("git@", "github.com/")) else path(text)

    svc = _set(svc, "volumes", lambda n: _each(n, volume))
    svc = _set(svc, "build", build)
    if isinstance(svc.value, dict) and "env_file" in svc.value:
        entry = svc.value["env_file"]
        fixed = _each(entry, env_file) if isinstance(entry.value, list) else env_file(entry)
        svc = _set(svc, "env_file", lambda _: fixed)
    return svc


def rebase_file(node: Node, src: str, dst: str) -> Node:
    """A whole compose file's relative paths (services and top-level volumes)."""
    if src == dst:
        return node

    def device(text: str) -> str:
        return relocate(text, src, dst) if text.startswith(".") else text

    def volume(spec: Node) -> Node:
        return _set(spec, "driver_opts", lambda o: _set(o, "device", lambda d: _text(d, device)))

    def source(spec: Node) -> Node:  # top-level secrets and configs: `file:`
        return _set(spec, "file", lambda f: _text(f, lambda t: relocate(t, src, dst)))

    node = _set(node, "services", lambda s: _each(s, lambda v: rebase_service(v, src, dst)))
    for kind in ("secrets", "configs"):
        node = _set(node, kind, lambda v: _each(v, source))
    return _set(node, "volumes", lambda v: _each(v, volume))
