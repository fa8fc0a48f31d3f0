"""The options of a rollout's own work besides its containers (`x-berth.release`,
`x-berth.smoke`, `x-berth.hooks`, parsed by core/compose/tasks.py): plain frozen values."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal

SmokeWhen = Literal["before", "bake", "both"]
HookEvent = Literal["start", "success", "rollback"]
HOOK_EVENTS: tuple[HookEvent, ...] = ("start", "success", "rollback")


@dataclass(frozen=True)
class ReleaseTask:
    """A one-off command run with the new revision's image, env, networks and mounts, once
    per revision, before any of its containers starts (a database migration, say)."""

    name: str
    command: tuple[str, ...]
    timeout: float = 300.0


@dataclass(frozen=True)
class SmokeCheck:
    """An HTTP request sent to each new container directly, and what its answer must be."""

    name: str
    path: str
    port: int
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    status: tuple[int, ...] = (200,)
    body_matches: str | None = None  # an RE2 pattern searched in the body
    response_headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, RE2 pattern)
    timeout: float = 5.0
    when: SmokeWhen = "before"

    @property
    def before(self) -> bool:
        return self.when in ("before", "both")

    @property
    def bake(self) -> bool:
        return self.when in ("bake", "both")


@dataclass(frozen=True)
class HookSpec:
    """A command (run on Berth's host, in the compose project's directory) or a webhook
    (an HTTP POST of the rollout as JSON), bounded by `timeout`."""

    command: tuple[str, ...] | None = None
    url: str | None = None
    timeout: float = 30.0
    required: bool = False  # start hooks only: a failure fails the rollout before it starts

    @property
    def label(self) -> str:
        """How logs and events name the hook: a command's program, a URL's scheme and host
        (never its path or credentials: a Slack-style URL carries a token)."""
        if self.command:
            return self.command[0].rsplit("/", 1)[-1]
        parts = urllib.parse.urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname or '?'}" + (
            f":{parts.port}" if _port(parts) else ""
        )


@dataclass(frozen=True)
class HooksSpec:
    start: tuple[HookSpec, ...] = ()
    success: tuple[HookSpec, ...] = ()
    rollback: tuple[HookSpec, ...] = ()

    def of(self, event: HookEvent) -> tuple[HookSpec, ...]:
        return {"start": self.start, "success": self.success, "rollback": self.rollback}[event]


NO_HOOKS = HooksSpec()


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None
