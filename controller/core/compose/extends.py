"""Service `extends` as Docker Compose applies it (compose-go `loader/extends.go`).

`extends: base` or `extends: {service: base}` takes `base` of the same file;
`extends: {file: other.yml, service: base}` takes it from another file, whose path is
relative to the extending file's working directory and must pass the desired/ boundary
(`Loader`). The base is resolved first (recursively, across files), its relative paths are
rewritten for the extending file, and the extending service is merged over it with the same
rules as `-f` files (`merge.merge_service`: mappings merged, `ports`, `dns`... appended
without duplicates, `depends_on` and `networks` by name, `volumes` by target, `!reset` and
`!override` honoured). As in current compose, `depends_on` is inherited too.

Resolution is iterative (a chain of thousands of services must not exhaust Python's
recursion limit) and a cycle is an error naming every link.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from controller.core.compose.interpolate import Substituted
from controller.core.compose.loading import MAX_EXTENDED, Loader
from controller.core.compose.merge import merge_service
from controller.core.compose.rebase import rebase_service
from controller.core.yamlsrc import Node, Path, dotted
from controller.errors import Problem, brief

Ref = tuple[str, str]  # (file key, service name)


@dataclass
class _File:
    workdir: str
    services: dict[str, Node]


@dataclass
class _Extender:
    loader: Loader
    lookup: Substituted
    files: dict[str, _File] = field(default_factory=dict)
    done: dict[Ref, Node] = field(default_factory=dict)

    def report(self, ref: Ref, at: Node, sub: Path, message: str) -> None:
        where = dotted(("services", ref[1], "extends", *sub))
        self.loader.problems.append(Problem(at.file, at.line, where, message))

    def resolve(self, ref: Ref) -> None:
        stack: list[Ref] = [ref]
        while stack:
            cur = stack[-1]
            if cur in self.done:
                stack.pop()
                continue
            svc = self.files[cur[0]].services[cur[1]]
            target = self.target(cur, svc)
            if target is not None and target in stack:
                chain = [*stack[stack.index(target) :], target]
                shown = _chain(chain)
                self.report(cur, svc.value["extends"], (), f"extends cycle: {shown}")
                target = None
            if target is None:
                self.done[cur] = _without_extends(svc)
                stack.pop()
            elif target in self.done:
                self.done[cur] = self.merged(cur, target, svc)
                stack.pop()
            else:
                stack.append(target)

    def merged(self, cur: Ref, target: Ref, svc: Node) -> Node:
        if self.loader.extended > MAX_EXTENDED:  # reported once, when it was passed
            return _without_extends(svc)
        base = self.done[target]
        base = rebase_service(base, self.files[target[0]].workdir, self.files[cur[0]].workdir)
        if not isinstance(base.value, dict):  # `base:` with no body: nothing to inherit
            if base.value is not None:
                why = f"service {brief(target[1])} of {target[0]} is not a mapping"
                self.report(cur, svc.value["extends"], (), f"cannot extend: {why}")
            return _without_extends(svc)
        out = merge_service(base, _without_extends(svc), cur[1])
        self.loader.extended += _size(out, MAX_EXTENDED + 1 - self.loader.extended)
        if self.loader.extended > MAX_EXTENDED:
            why = f"services that extend others copy more than {MAX_EXTENDED} values in all"
            self.report(cur, svc.value["extends"], (), f"{why} (an extends bomb?)")
            return _without_extends(svc)
        return out

    def target(self, cur: Ref, svc: Node) -> Ref | None:
        """What `cur` extends, or None (no `extends`, or a problem that was reported)."""
        ext = svc.value.get("extends") if isinstance(svc.value, dict) else None
        if ext is None:
            return None
        if isinstance(ext.value, str):
            return self.same_file(cur, ext, ext.value, ())
        if not isinstance(ext.value, dict):
            self.report(cur, ext, (), "must be a service name or a mapping {service, file}")
            return None
        for key, child in ext.value.items():
            if key not in ("service", "file"):
                self.report(cur, child, (key,), "unknown key; allowed: file, service")
                return None
        name, file = ext.value.get("service"), ext.value.get("file")
        if name is None or not isinstance(name.value, str) or not name.value:
            self.report(cur, name or ext, ("service",), "must name the service to extend")
            return None
        if file is None:
            return self.same_file(cur, name, name.value, ("service",))
        if not isinstance(file.value, str) or not file.value:
            self.report(cur, file, ("file",), "must be the path of a compose file")
            return None
        return self.other_file(cur, file, file.value, name)

    def same_file(self, cur: Ref, at: Node, name: str, sub: Path) -> Ref | None:
        if name not in self.files[cur[0]].services:
            self.report(cur, at, sub, f"service {brief(name)} is not defined in this file")
            return None
        return (cur[0], name)

    def other_file(self, cur: Ref, at: Node, path: str, name: Node) -> Ref | None:
        def problem(message: str) -> None:
            self.report(cur, at, ("file",), f"extends file {message}")

        full = self.loader.absolute(path, self.files[cur[0]].workdir)
        found = self.loader.compose(full, self.lookup, problem)
        if found is None:
            return None
        real, node = found
        if real not in self.files:
            services = node.value.get("services")
            if services is None or not isinstance(services.value, dict):
                problem(f"{real} has no services mapping")
                return None
            self.files[real] = _File(posixpath.dirname(real), dict(services.value))
        if name.value not in self.files[real].services:
            where = ("service",)
            self.report(cur, name, where, f"service {brief(name.value)} is not defined in {real}")
            return None
        return (real, name.value)


def _size(node: Node, limit: int) -> int:
    """Values in a node tree, counted up to `limit` (iterative: a deep tree is fine)."""
    count, stack = 0, [node]
    while stack and count < limit:
        n = stack.pop()
        count += 1
        if isinstance(n.value, dict):
            stack.extend(n.value.values())
        elif isinstance(n.value, list):
            stack.extend(n.value)
    return count


def _chain(chain: list[Ref]) -> str:
    if len({file for file, _ in chain}) == 1:
        return " -> ".join(name for _, name in chain)
    return " -> ".join(f"{name} ({file})" for file, name in chain)


def _without_extends(svc: Node) -> Node:
    if isinstance(svc.value, dict) and "extends" in svc.value:
        kids = {k: v for k, v in svc.value.items() if k != "extends"}
        return Node(kids, svc.file, svc.line, svc.tag)
    return svc


def apply_extends(node: Node, key: str, workdir: str, loader: Loader, lookup: Substituted) -> Node:
    """A parsed, interpolated compose file with every service's `extends` applied.

    `key` names the file among brought-in ones (its resolved path); `workdir` is the
    directory its relative paths are written against."""
    services = node.value.get("services") if isinstance(node.value, dict) else None
    if services is None or not isinstance(services.value, dict):
        return node
    ext = _Extender(loader, lookup)
    ext.files[key] = _File(workdir, dict(services.value))
    for name in services.value:
        ext.resolve((key, name))
    out = {name: ext.done[(key, name)] for name in services.value}
    kids = {**node.value, "services": Node(out, services.file, services.line, services.tag)}
    return Node(kids, node.file, node.line, node.tag)
