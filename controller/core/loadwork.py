"""One load of desired/ (`LoadWork`), and the compose files a desired file may name.

Scratch state of one `build_config_partial` call, with the caches that keep a load bounded
(each desired file parsed once for its lines, each list of compose files loaded once), and
the boundary checks made before a compose file is opened (DESIGN §2).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.core.boundary import ConfigFiles, confine, inside, shown
from controller.core.compose import load_stack
from controller.core.model import DesiredStack, StackSpec
from controller.core.yamlsrc import Path, Where, load_node, unwrap
from controller.errors import ConfigError, Problem


@dataclass
class LoadWork:
    """Mutable scratch state of one build; never leaves this module."""

    environ: Mapping[str, str]
    files_port: ConfigFiles
    problems: dict[str, list[Problem]] = field(default_factory=dict)
    parsed: dict[str, DesiredStack] = field(default_factory=dict)
    stacks: dict[str, StackSpec] = field(default_factory=dict)  # desired file -> its stack
    files: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    # Each desired file is parsed for its line table once, and each distinct list of
    # compose files is loaded once, however many desired files name it (hostile input:
    # hundreds of one-line desired files must not mean hundreds of compose loads).
    tables: dict[str, tuple[Any, dict[Path, Where]]] = field(default_factory=dict)
    loaded: dict[tuple[tuple[str, str], ...], StackSpec | ConfigError] = field(default_factory=dict)

    def lines(self, file: str, text: str) -> tuple[Any, dict[Path, Where]]:
        """Where each node of an (already validated) desired file is."""
        if file not in self.tables:
            self.tables[file] = unwrap(load_node(text, file))
        return self.tables[file]

    def stack(self, files: list[tuple[str, str]]) -> StackSpec:
        key = tuple(files)
        if key not in self.loaded:
            try:
                self.loaded[key] = load_stack(
                    project=None, files=files, environ=self.environ, sources=self.files_port
                )
            except ConfigError as exc:
                self.loaded[key] = exc
        found = self.loaded[key]
        if isinstance(found, ConfigError):
            raise found
        return found

    def add(self, file: str, problems: Sequence[Problem]) -> None:
        self.problems.setdefault(file, []).extend(problems)


def compose_lines(work: LoadWork, file: str, text: str) -> dict[str, int | None]:
    """Line of each `compose` entry of a desired file, for "missing compose file" errors."""
    data, table = work.lines(file, text)
    out: dict[str, int | None] = {"compose": table[("compose",)].line}
    if isinstance(data.get("compose"), list):
        for i in range(len(data["compose"])):
            out[f"compose[{i}]"] = table[("compose", i)].line
    return out


def compose_problem(work: LoadWork, path: str, first: str | None) -> str | None:
    """Why desired/ may not name `path` as a compose file (`first`: the resolved first file
    of the list, or None for the first itself); None when it may."""
    problem = confine(work.files_port, path)
    if problem is not None:
        return problem
    if not path.endswith((".yml", ".yaml")):
        return "is not a .yml or .yaml file (desired/ may name compose files only)"
    real = work.files_port.resolve(path)
    if first is None:  # the project's .env and base directory: chosen by the first file
        dotenv = posixpath.join(posixpath.dirname(real), ".env")
        if (why := confine(work.files_port, dotenv)) is not None:
            return f".env beside it ({dotenv}) {why}"
        return None
    base = posixpath.dirname(first)
    if not inside(real, base):
        return (
            f"resolves to {shown(real)}, outside the directory of the first compose file "
            f"({base}), whose .env and relative paths every file of the list shares"
        )
    return None


def read_compose(
    work: LoadWork, file: str, desired: DesiredStack, text: str
) -> list[tuple[str, str]] | None:
    """The compose files a desired file names, each checked against the boundary before it
    is opened; a refusal names the desired file's line and never the refused content.

    Each file is then used under its resolved path (symlinks followed), so the project
    directory and every path relative to it are the ones that were checked, not a route
    through a symlink that a later commit to desired/ could point elsewhere."""
    lines = compose_lines(work, file, text)
    out: list[tuple[str, str]] = []
    wanted = list(desired.compose_files)
    first: str | None = None
    for i, path in enumerate(wanted):
        where = f"compose[{i}]" if f"compose[{i}]" in lines else "compose"
        work.files.append(path)
        problem = compose_problem(work, path, first)
        real = work.files_port.resolve(path) if problem is None else path
        if problem is None and real in (p for p, _ in out):
            problem = f"resolves to {shown(real)}, which the list already names"
        if problem is not None:
            msg = f"compose file {shown(path)} {problem} (security boundary: see --compose-root)"
            work.add(file, [Problem(file, lines[where], where, msg)])
            continue
        first = first or real
        work.files.append(real)
        try:
            if real not in work.texts:
                work.texts[real] = work.files_port.read_text(real)
            out.append((real, work.texts[real]))
        except FileNotFoundError:
            msg = f"compose file {shown(path)} does not exist"
            work.add(file, [Problem(file, lines[where], where, msg)])
        except ConfigError as exc:
            why = "; ".join(p.message for p in exc.problems)
            msg = f"cannot read {shown(path)}: {why}"
            work.add(file, [Problem(file, lines[where], where, msg)])
    return out if len(out) == len(wanted) else None
