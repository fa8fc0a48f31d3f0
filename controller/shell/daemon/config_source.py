"""desired/ as the daemon loads it: per-file validity, and never an exception.

A configuration that cannot be built at all (desired/ unreadable, a --compose-root that
cannot hold the boundary, or a bug meeting an input nobody foresaw) becomes every desired
file marked invalid with the reason, so the last good state stays in force and the watcher
thread that asked lives on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from controller.adapters.files import load_config_partial
from controller.core.config import Config, PartialConfig
from controller.errors import ConfigError, Problem

log = logging.getLogger("berth.daemon")


def load_or_invalid(
    desired: str, compose_root: str | None, *, known: Iterable[str]
) -> PartialConfig:
    """The per-file config; `known`: desired files seen before (to mark them invalid too)."""
    try:
        return load_config_partial(desired, dict(os.environ), root=compose_root)
    except ConfigError as exc:
        problems: tuple[Problem, ...] = tuple(exc.problems)
    except Exception as exc:
        log.error(
            "configuration could not be loaded: %s: %s (this is a bug)",
            type(exc).__name__,
            str(exc)[:300],
        )
        problems = (Problem(desired, None, "", f"cannot be loaded: {exc!r}"[:300]),)
    files = set(known) | {os.path.join(desired, n) for n in _yaml_names(desired)}
    empty = Config(stacks={}, desired={}, targets=(), files=())
    return PartialConfig(empty, {f: problems for f in sorted(files) or [desired]})


def _yaml_names(directory: str) -> list[str]:
    try:
        return [n for n in os.listdir(directory) if n.endswith((".yaml", ".yml"))]
    except OSError:
        return []
