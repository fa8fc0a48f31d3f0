"""An in-memory `ConfigFiles` for pure tests of the configuration core.

Pinned to the real adapter by tests/unit/test_boundary.py, which runs the same path cases
against `MemoryTree` and `ConfigTree` over real files and symlinks.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from controller.core.boundary import Boundary, boundary_problem
from controller.errors import ConfigError


class MemoryTree:
    """Files by absolute path; `links` maps a symlink's path to its target (absolute)."""

    def __init__(
        self,
        files: Mapping[str, str],
        *,
        root: str = "/r",
        desired: str = "/r/desired",
        links: Mapping[str, str] | None = None,
    ) -> None:
        self.files = dict(files)
        self.links = dict(links or {})
        self._boundary = Boundary(root=root, desired=desired)

    @property
    def boundary(self) -> Boundary:
        return self._boundary

    def resolve(self, path: str) -> str:
        """Follow links component by component, as realpath does (bounded: no loops)."""
        parts = posixpath.normpath(path).strip("/").split("/")
        current = "/"
        for _ in range(64):
            if not parts:
                return current
            current = posixpath.join(current, parts.pop(0))
            if current in self.links:
                base = posixpath.dirname(current)
                target = posixpath.normpath(posixpath.join(base, self.links[current]))
                parts = [p for p in target.strip("/").split("/") if p] + parts
                current = "/"
        return current

    def read_text(self, path: str) -> str:
        real = self.resolve(path)
        problem = boundary_problem(real, self._boundary)
        if problem is not None:
            raise ConfigError.one(path, None, "", f"refused: {problem}")
        if real not in self.files:
            raise FileNotFoundError(path)
        return self.files[real]
