"""Compose files that other compose files bring in (`include`, `extends.file`), read through
the ConfigFiles port within fixed bounds.

Each such path is checked against the desired/ boundary (`confine`: after symlinks are
resolved, inside the compose root and outside desired/) before it is opened, so a hostile
`file: ../../etc/passwd` or a symlink out is refused with a located error and never read.
The number of files one stack may bring in and the depth of nesting are bounded, so a
fan-out of thousands of includes or a long chain is an error instead of a slow load.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from controller.core.boundary import ConfigFiles, confine, shown
from controller.core.compose.interpolate import (
    DotenvError,
    Substituted,
    interpolate_node,
    parse_dotenv,
)
from controller.core.yamlsrc import COMPOSE_TAGS, Node, load_node
from controller.errors import ConfigError, Problem

MAX_FILES = 128  # compose files one stack may bring in through include and extends
MAX_DEPTH = 16  # nested includes; also the length of an `extends` chain across files
# values that `extends` may create in all: each service that extends copies its base, so a
# chain or a fan-in of small services would otherwise grow quadratically (an alias bomb)
MAX_EXTENDED = 50_000

Report = Callable[[str], None]  # records a problem at the field that named the file


@dataclass
class Loader:
    """Reads brought-in compose files once each (per environment) and collects problems."""

    sources: ConfigFiles
    problems: list[Problem] = field(default_factory=list)
    read: list[str] = field(default_factory=list)  # every file read, for the watcher
    _cache: dict[tuple[str, int], Node | None] = field(default_factory=dict)
    _parsed: dict[str, Node | None] = field(default_factory=dict)  # by path: parsed once
    _alive: list[Substituted] = field(default_factory=list)
    _over: bool = False
    extended: int = 0  # values created by `extends` so far (MAX_EXTENDED)

    def absolute(self, path: str, workdir: str) -> str:
        return posixpath.normpath(posixpath.join(workdir, path))

    def real(self, path: str, report: Report) -> str | None:
        """The resolved path when the boundary allows it, else None (reported)."""
        if (problem := confine(self.sources, path)) is not None:
            report(f"{shown(path)} refused: {problem} (security boundary)")
            return None
        return self.sources.resolve(path)

    def compose(self, path: str, lookup: Substituted, report: Report) -> tuple[str, Node] | None:
        """Parse and interpolate the compose file at `path` (absolute), or None (reported)."""
        real = self.real(path, report)
        if real is None:
            return None
        key = (real, id(lookup))
        if key not in self._cache:
            self._alive.append(lookup)  # its id stays unique while the cache holds it
            self._cache[key] = self._load(real, lookup, report)
        node = self._cache[key]
        return None if node is None else (real, node)

    def _load(self, real: str, lookup: Substituted, report: Report) -> Node | None:
        if len(self._cache) >= MAX_FILES:
            if not self._over:  # once: the load fails anyway, one message says why
                self._over = True
                report(f"is one too many: a stack brings in at most {MAX_FILES} compose files")
            return None
        if real not in self._parsed:  # a file included twice is parsed once, not twice
            self._parsed[real] = self._parse(real, report)
        node = self._parsed[real]
        if node is None:
            return None
        node, found = interpolate_node(node, lookup)
        self.problems += found
        return None if found else node

    def _parse(self, real: str, report: Report) -> Node | None:
        text = self.text(real, report)
        if text is None:
            return None
        try:
            node = load_node(text, real, tags=COMPOSE_TAGS)
        except ConfigError as exc:
            self.problems += exc.problems
            return None
        if not isinstance(node.value, dict):
            self.problems.append(Problem(real, 1, "", "a compose file must be a mapping"))
            return None
        return node

    def text(self, real: str, report: Report, *, required: bool = True) -> str | None:
        self.read.append(real)
        try:
            return self.sources.read_text(real)
        except FileNotFoundError:
            if required:
                report(f"{shown(real)} does not exist")
        except ConfigError as exc:
            report(f"cannot read {shown(real)}: " + "; ".join(p.message for p in exc.problems))
        return None

    def dotenv(
        self, path: str, environ: Mapping[str, str], report: Report, *, required: bool = True
    ) -> dict[str, str]:
        """Variables of an env file for an included project; {} when refused or invalid."""
        real = self.real(path, report)
        text = None if real is None else self.text(real, report, required=required)
        if real is None or text is None:
            return {}
        try:
            return parse_dotenv(text, environ=environ)
        except DotenvError as exc:
            self.problems.append(Problem(real, exc.line, "", str(exc)))
            return {}
