"""Ports of a rollout's own work (issue 15): smoke checks' HTTP, hooks, and the record of
release tasks that makes each run once per revision. Kept apart from controller/ports.py
(re-exported there); adapters implement them, the executor's unit tests fake them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from controller.core.task_options import HookSpec

ReleaseState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes  # at most the `limit` asked for (the rest is not read)


class HttpClient(Protocol):
    def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
        limit: int = 1 << 20,
    ) -> HttpAnswer:
        """One request on a fresh connection. Raises ProbeError on a connection failure,
        a timeout (the whole exchange is bounded by `timeout`) or a malformed answer;
        never anything else."""
        ...


@dataclass(frozen=True)
class HookResult:
    ok: bool
    detail: str  # "exit 0", "exit 3: <last output line>", "timed out after 30s", "HTTP 500"
    seconds: float


class HookRunner(Protocol):
    def run(self, hook: HookSpec, payload: Mapping[str, str], *, cwd: str) -> HookResult:
        """Run one hook, bounded by `hook.timeout` (a command's whole process group is
        killed then). Never raises."""
        ...


@dataclass(frozen=True)
class ReleaseRecord:
    project: str
    service: str
    revision: str
    name: str
    tag: str
    state: ReleaseState
    container: str | None  # its one-off container, once created
    started_at: float
    finished_at: float | None
    exit_code: int | None
    reason: str
    log_tail: str


class ReleaseLog(Protocol):
    """Where a release task is recorded before it starts and after it ends, so that a
    controller killed in between finds it (and waits for it) instead of running it again."""

    def release_task(
        self, project: str, service: str, revision: str, name: str
    ) -> ReleaseRecord | None: ...

    def release_begin(
        self, project: str, service: str, revision: str, name: str, *, tag: str, at: float
    ) -> None:
        """Record an attempt as running (replacing a failed earlier attempt)."""
        ...

    def release_container(
        self, project: str, service: str, revision: str, name: str, container: str
    ) -> None: ...

    def release_end(
        self,
        project: str,
        service: str,
        revision: str,
        name: str,
        *,
        state: ReleaseState,
        exit_code: int | None,
        reason: str,
        log_tail: str,
        at: float,
    ) -> None: ...

    def release_tasks(self, project: str | None = None, limit: int = 50) -> list[ReleaseRecord]:
        """The most recent records first."""
        ...
