"""The only module that reads configuration from disk.

desired/ is writable by more people than the compose files, so reading it is defensive:
a symlink may not lead out of desired/ (it could pull in a file nobody reviewed there),
files are size-capped, and text must be UTF-8. Everything else is the pure core's job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from controller.core.config import Config, PartialConfig, build_config, build_config_partial
from controller.errors import ConfigError, Problem

MAX_BYTES = 1024 * 1024


def read_text(path: str) -> str:
    """Read a config file. A missing file raises FileNotFoundError (callers decide whether
    it is optional, like `.env`); anything else wrong raises ConfigError naming the file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError.one(path, None, "", f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise ConfigError.one(path, None, "", f"file is larger than {MAX_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError.one(path, line, "", "not valid UTF-8") from exc


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def read_desired_dir_partial(path: str) -> tuple[list[tuple[str, str]], dict[str, list[Problem]]]:
    """Readable files and, per unreadable file, why; one bad file does not hide the others."""
    root = os.path.realpath(path)
    try:
        names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
    except OSError as exc:
        raise ConfigError.one(path, None, "", f"cannot list desired directory: {exc}") from exc
    good: list[tuple[str, str]] = []
    bad: dict[str, list[Problem]] = {}
    for name in names:
        full = os.path.abspath(os.path.join(path, name))
        if os.path.islink(full) and not _inside(os.path.realpath(full), root):
            target = os.path.realpath(full)
            bad[full] = [Problem(full, None, "", f"symlink leads out of desired/ (to {target})")]
            continue
        if not os.path.isfile(full):
            continue
        try:
            good.append((full, read_text(full)))
        except FileNotFoundError:
            bad[full] = [Problem(full, None, "", "disappeared while reading")]
        except ConfigError as exc:
            bad[full] = list(exc.problems)
    return good, bad


def read_desired_dir(path: str) -> list[tuple[str, str]]:
    """All `*.yaml`/`*.yml` in desired/, sorted; ConfigError lists every unreadable file."""
    good, bad = read_desired_dir_partial(path)
    if bad:
        raise ConfigError([p for probs in bad.values() for p in probs])
    return good


def load_config(desired_dir: str, environ: Mapping[str, str]) -> Config:
    return build_config(read_desired_dir(desired_dir), environ=environ, read_text=read_text)


def load_config_partial(desired_dir: str, environ: Mapping[str, str]) -> PartialConfig:
    """Per-file validity for the daemon (`berth_desired_valid{file}`)."""
    good, bad = read_desired_dir_partial(desired_dir)
    partial = build_config_partial(good, environ=environ, read_text=read_text)
    if not bad:
        return partial
    problems = {**partial.problems, **{f: tuple(p) for f, p in bad.items()}}
    return PartialConfig(partial.config, dict(sorted(problems.items())))
