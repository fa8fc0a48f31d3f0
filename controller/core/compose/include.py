"""Top-level `include` as Docker Compose applies it (compose-go `loader/include.go`).

`include: [a.yml, {path: [b.yml, b.override.yml], project_directory: ..., env_file: ...}]`
loads each listed compose application (paths relative to the including file's working
directory, each inside the desired/ boundary) and imports its services, networks and
volumes into the including file. The included application's project directory is that of
its first file unless `project_directory` says otherwise: its relative paths resolve there
and its nested includes are relative to it. Its variables come from the including
project's environment, then from `env_file` (default: a `.env` in its project directory,
when there is one); the including environment wins, as in compose.

A resource an included file defines that is already defined (by the including file or an
earlier include) is merged: the definition already there over the included one, with the
rules of merging compose files (compose-go's include does this since v2.10; before, it
refused every such conflict). wger's compose file sets `shm_size` and a log driver on the
`db` its included `services/postgres.yaml` defines this way.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, replace

from controller.core.compose.extends import apply_extends
from controller.core.compose.interpolate import Substituted
from controller.core.compose.loading import MAX_DEPTH, Loader, Report
from controller.core.compose.merge import merge_files, merge_resource
from controller.core.compose.rebase import rebase_file
from controller.core.yamlsrc import Node, Path, dotted
from controller.errors import Problem

_IMPORTED = ("services", "networks", "volumes", "secrets", "configs", "models")
_KNOWN_TOP = frozenset({*_IMPORTED, "name", "version", "include"})


@dataclass(frozen=True)
class Project:
    """The file being loaded: where its paths are relative to, its variables, its chain."""

    key: str  # resolved path of the file
    workdir: str
    env: Mapping[str, str]
    lookup: Substituted
    chain: tuple[str, ...]  # files that include this one, outermost first


@dataclass(frozen=True)
class _Entry:
    at: Node
    paths: list[Node]
    project_directory: Node | None
    env_files: list[Node] | None


def expand(node: Node, project: Project, loader: Loader) -> Node:
    """A parsed, interpolated compose file with its includes imported (recursively) and
    then its services' `extends` applied: compose's order, so a service may extend one
    that an include brought in."""
    node = _apply_include(node, project, loader)
    return apply_extends(node, project.key, project.workdir, loader, project.lookup)


def _problem(loader: Loader, at: Node, path: Path, message: str) -> None:
    loader.problems.append(Problem(at.file, at.line, dotted(path), message))


def _strings(loader: Loader, value: Node, path: Path) -> list[Node] | None:
    items = value.value if isinstance(value.value, list) else [value]
    if not items or any(not isinstance(i.value, str) or not i.value for i in items):
        _problem(loader, value, path, "must be a path or a list of paths")
        return None
    return list(items)


def _entries(loader: Loader, inc: Node) -> list[_Entry]:
    if not isinstance(inc.value, list):
        _problem(loader, inc, ("include",), "must be a list of paths or {path: ...} mappings")
        return []
    out: list[_Entry] = []
    for i, item in enumerate(inc.value):
        here: Path = ("include", i)
        if isinstance(item.value, str):
            out.append(_Entry(item, [item], None, None))
            continue
        if not isinstance(item.value, dict):
            _problem(loader, item, here, "must be a path or a mapping with 'path'")
            continue
        spec = item.value
        unknown = [k for k in spec if k not in ("path", "project_directory", "env_file")]
        for key in unknown:
            _problem(
                loader,
                spec[key],
                (*here, key),
                "unknown key; allowed: env_file, path, project_directory",
            )
        if "path" not in spec:
            _problem(loader, item, here, "needs 'path'")
            continue
        paths = _strings(loader, spec["path"], (*here, "path"))
        envs = _strings(loader, spec["env_file"], (*here, "env_file")) if "env_file" in spec else []
        directory = spec.get("project_directory")
        if directory is not None and (not isinstance(directory.value, str) or not directory.value):
            _problem(loader, directory, (*here, "project_directory"), "must be a path")
            continue
        if paths is None or envs is None or unknown:
            continue
        out.append(_Entry(item, paths, directory, envs if "env_file" in spec else None))
    return out


def _apply_include(node: Node, project: Project, loader: Loader) -> Node:
    inc = node.value.get("include")
    if inc is None:
        return node
    kids = {k: v for k, v in node.value.items() if k != "include"}
    for index, entry in enumerate(_entries(loader, inc)):
        imported = _load_entry(entry, index, project, loader)
        if imported is not None:
            kids = _import(loader, kids, imported)
    return Node(kids, node.file, node.line, node.tag)


def _load_entry(entry: _Entry, index: int, project: Project, loader: Loader) -> Node | None:
    """One include entry, loaded, expanded and rebased for the including file."""
    first = entry.paths[0]

    def report(message: str) -> None:
        _problem(loader, first, ("include", index), f"included file {message}")

    if len(project.chain) >= MAX_DEPTH:
        report(f"is nested more than {MAX_DEPTH} includes deep")
        return None
    full = loader.absolute(first.value, project.workdir)
    real = loader.real(full, report)
    if real is None:
        return None
    if real in (*project.chain, project.key):
        shown = " -> ".join((*project.chain, project.key, real))
        report(f"forms an include cycle: {shown}")
        return None
    workdir = posixpath.dirname(real)
    if entry.project_directory is not None:
        workdir = loader.absolute(entry.project_directory.value, project.workdir)
    env = _environment(entry, index, workdir, project, loader)
    lookup = Substituted(env)
    lookup.values = project.lookup.values  # one redaction set for the whole stack
    inner = Project(real, workdir, env, lookup, (*project.chain, project.key))
    nodes: list[Node] = []
    for path in entry.paths:
        found = loader.compose(loader.absolute(path.value, project.workdir), lookup, report)
        if found is not None:
            _check_top(loader, found[1])
            nodes.append(expand(found[1], replace(inner, key=found[0]), loader))
    if len(nodes) != len(entry.paths):
        return None
    return rebase_file(merge_files(nodes), workdir, project.workdir)


def _environment(
    entry: _Entry, index: int, workdir: str, project: Project, loader: Loader
) -> dict[str, str]:
    """Variables of an included application: the including project's environment wins
    over its env files (compose's `Mapping.Merge` keeps what is set)."""
    found: dict[str, str] = {}
    if entry.env_files is None:
        report = _reporter(loader, entry.at, ("include", index))
        dotenv = posixpath.join(workdir, ".env")
        found = loader.dotenv(dotenv, project.env, report, required=False)
    for i, item in enumerate(entry.env_files or []):
        if item.value == "/dev/null":
            continue
        path = loader.absolute(item.value, project.workdir)
        report = _reporter(loader, item, ("include", index, "env_file", i))
        found.update(loader.dotenv(path, {**found, **project.env}, report))
    return {**found, **project.env}


def _reporter(loader: Loader, at: Node, path: Path) -> Report:
    def report(message: str) -> None:
        _problem(loader, at, path, f"env file {message}")

    return report


def _check_top(loader: Loader, node: Node) -> None:
    for key, child in node.value.items():
        if key == "x-berth":
            _problem(
                loader,
                child,
                (key,),
                "is read only in the main compose files, not in an included one: move it there",
            )
        elif key not in _KNOWN_TOP and not key.startswith("x-"):
            _problem(loader, child, (key,), "unknown top-level key in an included file")


def _import(loader: Loader, kids: dict[str, Node], imported: Node) -> dict[str, Node]:
    """Resources of an included application added to the including file's."""
    for kind in _IMPORTED:
        source = imported.value.get(kind)
        if source is None or not isinstance(source.value, dict):
            continue
        target = kids.get(kind)
        have = dict(target.value) if target is not None and isinstance(target.value, dict) else {}
        for name, spec in source.value.items():
            old = have.get(name)
            have[name] = spec if old is None else merge_resource(kind, name, spec, old)
        at = target if target is not None else source
        kids[kind] = Node(have, at.file, at.line, at.tag)
    return kids
