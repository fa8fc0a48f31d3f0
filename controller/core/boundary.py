"""The desired/ security boundary: which files configuration may come from (DESIGN §2).

A commit to desired/ may change tags and replica counts and nothing else. That holds only
if desired/ cannot choose what the compose files say, so every compose file and everything
it brings in (`.env`, `env_file`, relative bind sources, `upstreams_file`) must lie, after
symlinks are resolved, inside the operator's tree (the compose root) and outside desired/.

The rule is pure and works on already-resolved paths; resolving symlinks and refusing
non-regular files is the file adapter's job (`controller.adapters.files`), behind the
narrow `ConfigFiles` protocol so the core can be tested over an in-memory tree.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Boundary:
    """Resolved, absolute directories: the operator's tree and desired/ inside or beside it."""

    root: str
    desired: str


class ConfigFiles(Protocol):
    """How the core reaches configuration files.

    `resolve` returns the absolute path with every symlink resolved (a missing tail is kept
    as written). `read_text` raises FileNotFoundError for a missing file and ConfigError for
    anything else (not a regular file, too large, not UTF-8): never with the file's content.
    """

    @property
    def boundary(self) -> Boundary: ...

    def resolve(self, path: str) -> str: ...

    def read_text(self, path: str) -> str: ...


def inside(path: str, directory: str) -> bool:
    """`path` is `directory` or below it (both normalised absolute paths)."""
    directory = directory.rstrip("/") or "/"
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def boundary_problem(resolved: str, boundary: Boundary) -> str | None:
    """Why a resolved path may not be used as configuration; None when it may."""
    resolved = posixpath.normpath(resolved)
    if inside(resolved, boundary.desired):
        return f"resolves to {shown(resolved)}, inside desired/ ({boundary.desired})"
    if not inside(resolved, boundary.root):
        return f"resolves to {shown(resolved)}, outside the compose root {boundary.root}"
    return None


def exposure_problem(files: ConfigFiles, path: str) -> str | None:
    """Why an absolute host path may not be shown to a container (bind source, device, a
    local volume's paths): as written or with symlinks resolved, it lies inside desired/
    or holds desired/ below it; either way desired/'s writers would choose what the
    container sees there (a symlink committed into desired/ chooses its target). None
    when it may."""
    if (bad := path_problem(path)) is not None:
        return bad
    desired = files.boundary.desired
    written = posixpath.normpath(path)
    for p, how in ((written, "is"), (posixpath.normpath(files.resolve(written)), "resolves to")):
        if inside(p, desired):
            return f"{how} {shown(p)}, inside desired/ ({desired})"
        if inside(desired, p):
            return f"{how} {shown(p)}, which contains desired/ ({desired})"
    return None


MAX_PATH = 4096  # PATH_MAX on Linux


def shown(path: str) -> str:
    """A path as messages quote it: cut in the middle past 200 characters."""
    return path if len(path) <= 200 else f"{path[:120]}...{path[-60:]}"


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file at all (the OS would refuse it with an exception)."""
    if "\x00" in path:
        return "contains a NUL byte"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no file can have this name
        return "is not valid Unicode text"
    if len(path) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    return None


def confine(files: ConfigFiles, path: str) -> str | None:
    """Resolve `path` and check it against the boundary: a message, or None when allowed."""
    return path_problem(path) or boundary_problem(files.resolve(path), files.boundary)


def check_roots(boundary: Boundary) -> str | None:
    """The compose root must not lie inside desired/ (then desired/ could write it all)."""
    if inside(boundary.root, boundary.desired):
        return (
            f"the compose root {boundary.root} is inside desired/ ({boundary.desired}); "
            "it must be a tree that desired/'s writers cannot write"
        )
    return None
