"""The evidence a failed rollout leaves for its notification: the last log lines of the new
container that failed, read before the abort removes it (core/notify.py bounds them).

Reading evidence must never stand in the way of a rollback: any error here is logged and
the rollback goes on without the lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.core.notify import LOG_LINES, bound_lines, failed_container
from controller.errors import BerthError
from controller.ports import ContainerRuntime
from controller.shell.rollout.results import Event

log = logging.getLogger("berth.rollout")


@dataclass
class Evidence:
    """Filled in during one rollout (one per `Executor.execute` call, never shared)."""

    container: str | None = None  # the failed container's name
    log_tail: tuple[str, ...] = ()
    quarantined: bool = False
    notes: list[str] = field(default_factory=list)  # the rollout's own work, for history

    def tee(self, emit: Callable[[Event], None]) -> Callable[[Event], None]:
        """`emit`, and a note of every release task, smoke-check run and hook that ended."""

        def both(e: Event) -> None:
            if e.task is not None and e.task_seconds is not None:
                what = e.phase.split("-", 1)[0]  # release | smoke | hook
                said = e.message.removeprefix(f"{e.task}: ")  # a task's name is said once
                self.notes.append(f"{what} {e.task}: {said} ({e.task_seconds:.1f}s)")
            emit(e)

        return both


def capture(
    rt: ContainerRuntime,
    project: str,
    ids: Sequence[str],
    keep: str | None,
    reason: str,
    into: Evidence,
) -> None:
    """The last LOG_LINES lines of whichever of `ids` failed (core/notify.failed_container)."""
    if not ids:
        return
    try:
        rows = {c.id: c for c in rt.list_containers(project=project)}
        candidates = [
            (cid, rows[cid].name, rows[cid].running) if cid in rows else (cid, "", False)
            for cid in ids
        ]
        cid = failed_container(candidates, reason, keep)
        if cid is None:
            return
        into.log_tail = bound_lines(rt.logs(cid, tail=LOG_LINES))
        into.container = rows[cid].name if cid in rows else cid[:12]
    except BerthError as exc:
        log.warning("could not read the failed container's logs: %s", exc)
