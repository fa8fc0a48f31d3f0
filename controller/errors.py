"""Berth's own exceptions; adapters translate foreign ones (docker, sqlite...) into these."""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """Control characters escaped (`\\x1b`): a file name or value in a message must not
    drive the operator's terminal or split a log line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text).replace("\n", "\\n")


class BerthError(Exception):
    """Base of every error Berth raises on purpose."""


_BRIEF = reprlib.Repr()
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 60, 60, 40
_BRIEF.maxlist = _BRIEF.maxdict = _BRIEF.maxtuple = _BRIEF.maxset = 4
_BRIEF.maxlevel = 3
MAX_MESSAGE = 1000  # characters; a message quotes values, never whole documents


def brief(value: Any) -> str:
    """repr() cut to a few dozen characters without building the whole text first (a
    value may be a list of a million aliased strings)."""
    return _BRIEF.repr(value)


@dataclass(frozen=True)
class Problem:
    """One finding about a configuration file: where, which field, what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __post_init__(self) -> None:
        for name, limit in (("message", MAX_MESSAGE), ("field", 300), ("file", 4200)):
            text = getattr(self, name)
            if len(text) > limit:
                object.__setattr__(self, name, text[: limit - 3] + "...")

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return printable(f"{where}:{field} {self.message}")


class ConfigError(BerthError):
    """Desired state or compose files are invalid. Terminal: waits for a change of the files."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, file: str, line: int | None, field: str, message: str) -> ConfigError:
        return cls([Problem(file, line, field, message)])


class TemporaryError(BerthError):
    """Something that may work later (Docker unreachable, pull timeout). Retried with backoff."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(BerthError):
    """Something that will not fix itself without a change (quarantined revision...)."""


class ContainerRuntimeError(BerthError):
    """The container runtime refused an operation (translated from docker.errors)."""


class ImagePullError(ContainerRuntimeError):
    """The image could not be pulled: the rollout fails before anything is touched."""


class NotFound(ContainerRuntimeError):
    """A container, network or image that was expected is gone."""


class ProxyError(BerthError):
    """nginx could not be configured or reloaded; the old upstream stays in force."""
