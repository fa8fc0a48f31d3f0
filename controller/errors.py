"""Berth's own exceptions; adapters translate foreign ones (docker, sqlite...) into these.

Every error carries its retry class apart from its origin: a ContainerRuntimeError from a
500 of the engine is transient, one from a 400 is not, so the work queue schedules by
`exc.retry` (and `exc.delay`), never by the exception's type.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# C0/C1 controls, lone surrogates, and the Unicode characters that move or hide text on a
# terminal or in a log viewer: line/paragraph separators, bidi embeddings, overrides and
# isolates (a right-to-left override reorders what follows), zero-width characters, BOM.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]"
)


def printable(text: str) -> str:
    """Control characters escaped (`\\x1b`): a file name or value in a message must not
    drive the operator's terminal or split a log line."""
    return _CONTROL.sub(_escape, text).replace("\n", "\\n")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Retry(StrEnum):
    TRANSIENT = "transient"  # may work later: retried with backoff (at least `delay`)
    TERMINAL = "terminal"  # will not fix itself: waits for a change of desired/ or Docker


class BerthError(Exception):
    """Base of every error Berth raises on purpose; subclasses set the default retry class,
    an instance may override it (the edge knows, e.g. from an HTTP status)."""

    retry: Retry = Retry.TRANSIENT
    delay: float = 1.0

    def __init__(self, *args: object, retry: Retry | None = None, delay: float | None = None):
        super().__init__(*args)
        if retry is not None:
            self.retry = retry
        if delay is not None:
            self.delay = delay


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

    retry = Retry.TERMINAL

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, file: str, line: int | None, field: str, message: str) -> ConfigError:
        return cls([Problem(file, line, field, message)])


class TemporaryError(BerthError):
    """Something that may work later (Docker unreachable, pull timeout). Retried with backoff."""

    retry = Retry.TRANSIENT


class PermanentError(BerthError):
    """Something that will not fix itself without a change (a corrupt state database...)."""

    retry = Retry.TERMINAL


class ContainerRuntimeError(BerthError):
    """The container runtime refused an operation (translated from docker.errors)."""


class ImagePullError(ContainerRuntimeError):
    """The image could not be pulled: the rollout fails before anything is touched."""


class ImageBuildError(ContainerRuntimeError):
    """The image could not be built; the message ends with the build log's tail."""


class NotFound(ContainerRuntimeError):
    """A container, network or image that was expected is gone (the next pass re-observes,
    so it is transient)."""


class ProxyError(BerthError):
    """nginx could not be configured or reloaded; the old upstream stays in force."""


class ProbeError(BerthError):
    """An HTTP exchange with a container failed (refused, timed out, malformed answer)."""
