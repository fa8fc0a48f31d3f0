"""The only module that reads configuration from disk.

desired/ is writable by more people than the compose files, so reading is defensive:
- a desired file that is a symlink may not lead out of desired/ (it could pull in a file
  nobody reviewed there);
- every other configuration file (compose files, `.env`, `env_file`) must resolve, symlinks
  followed, inside the compose root and outside desired/ (`controller.core.boundary`);
- only regular files are read: FIFOs, devices and sockets are refused after a `stat`,
  without being opened (a FIFO would block the reader forever), pseudo file systems
  (/proc, /sys, /dev) are refused by path, and the file is opened non-blocking without
  following a last-moment symlink, then checked again on the open descriptor;
- sizes are capped and text must be UTF-8.
Refusals never quote the refused file's content. Everything else is the pure core's job.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from controller.core.boundary import Boundary, boundary_problem, check_roots, inside
from controller.core.config import Config, PartialConfig, build_config, build_config_partial
from controller.errors import ConfigError, Problem

MAX_BYTES = 256 * 1024  # a compose file, `.env` or env_file; real ones are a few KiB
MAX_DESIRED_BYTES = 64 * 1024  # a desired file holds tags and replica counts only
MAX_DESIRED_FILES = 128  # one file per stack; past this, loading time would be unbounded
_PSEUDO = ("/proc", "/sys", "/dev")


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"refused: {kind}, not a regular file"


def read_regular(path: str, limit: int = MAX_BYTES) -> str:
    """Read a regular file of at most `limit` bytes as UTF-8. A missing file raises
    FileNotFoundError (callers decide whether it is optional, like `.env`); anything else
    wrong raises ConfigError naming the file and never quoting it."""
    real = os.path.realpath(path)
    if any(inside(real, p) for p in _PSEUDO):
        raise ConfigError.one(path, None, "", f"refused: {real} is in a pseudo file system")
    try:
        why = _not_regular(os.stat(real).st_mode)
        if why:
            raise ConfigError.one(path, None, "", why)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError.one(path, None, "", f"cannot read: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        why = _not_regular(os.fstat(fd).st_mode)  # swapped between stat and open
        if why:
            raise ConfigError.one(path, None, "", why)
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ConfigError.one(path, None, "", f"file is larger than {limit} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError.one(path, line, "", "not valid UTF-8") from exc


class ConfigTree:
    """`ConfigFiles` over the real file system: the operator's tree minus desired/."""

    def __init__(self, *, root: str, desired: str) -> None:
        self._boundary = Boundary(root=os.path.realpath(root), desired=os.path.realpath(desired))
        problem = check_roots(self._boundary)
        if problem is None and self._boundary.root == "/":
            problem = "the compose root may not be / (name the directory the operator owns)"
        if problem is not None:
            raise ConfigError.one(root, None, "compose root", problem)

    @property
    def boundary(self) -> Boundary:
        return self._boundary

    def resolve(self, path: str) -> str:
        return os.path.realpath(path)

    def read_text(self, path: str) -> str:
        """Refuses (without opening) anything outside the boundary, whatever the caller
        checked before: the core reports the refusal with its line; this is the backstop."""
        problem = boundary_problem(self.resolve(path), self._boundary)
        if problem is not None:
            raise ConfigError.one(path, None, "", f"refused: {problem}")
        return read_regular(path)


def default_root(desired_dir: str) -> str:
    """Without --compose-root: the directory that holds desired/ (the repository)."""
    return os.path.dirname(os.path.realpath(desired_dir))


def read_desired_dir_partial(path: str) -> tuple[list[tuple[str, str]], dict[str, list[Problem]]]:
    """Readable files and, per unreadable file, why; one bad file does not hide the others."""
    root = os.path.realpath(path)
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
    except OSError as exc:
        raise ConfigError.one(path, None, "", f"cannot list desired directory: {exc}") from exc
    good: list[tuple[str, str]] = []
    bad: dict[str, list[Problem]] = {}
    for i, name in enumerate(names):
        full = os.path.abspath(os.path.join(path, name))
        if i >= MAX_DESIRED_FILES:
            why = f"desired/ holds more than {MAX_DESIRED_FILES} desired files; not read"
            bad[full] = [Problem(full, None, "", why)]
            continue
        target = os.path.realpath(full)
        if os.path.islink(full) and not inside(target, root):
            bad[full] = [Problem(full, None, "", f"symlink leads out of desired/ (to {target})")]
            continue
        try:
            if stat.S_ISDIR(os.stat(full).st_mode):
                continue  # a directory named like a file: not a desired file
            good.append((full, read_regular(full, MAX_DESIRED_BYTES)))
        except FileNotFoundError:
            continue  # removed while listing, or a dangling symlink: not a desired file now
        except ConfigError as exc:
            bad[full] = list(exc.problems)
        except OSError as exc:
            bad[full] = [Problem(full, None, "", f"cannot read: {exc.strerror or exc}")]
    return good, bad


def read_desired_dir(path: str) -> list[tuple[str, str]]:
    """All `*.yaml`/`*.yml` in desired/, sorted; ConfigError lists every unreadable file."""
    good, bad = read_desired_dir_partial(path)
    if bad:
        raise ConfigError([p for probs in bad.values() for p in probs])
    return good


def load_config(desired_dir: str, environ: Mapping[str, str], *, root: str | None) -> Config:
    tree = ConfigTree(root=root or default_root(desired_dir), desired=desired_dir)
    return build_config(read_desired_dir(desired_dir), environ=environ, files=tree)


def load_config_partial(
    desired_dir: str, environ: Mapping[str, str], *, root: str | None
) -> PartialConfig:
    """Per-file validity for the daemon (`berth_desired_valid{file}`)."""
    tree = ConfigTree(root=root or default_root(desired_dir), desired=desired_dir)
    good, bad = read_desired_dir_partial(desired_dir)
    partial = build_config_partial(good, environ=environ, files=tree)
    if not bad:
        return partial
    problems = {**partial.problems, **{f: tuple(p) for f, p in bad.items()}}
    return PartialConfig(partial.config, dict(sorted(problems.items())))
