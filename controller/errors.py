"""Berth's own exceptions; adapters translate foreign ones (docker, sqlite...) into these."""

from __future__ import annotations

from dataclasses import dataclass


class BerthError(Exception):
    """Base of every error Berth raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One finding about a configuration file: where, which field, what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


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
