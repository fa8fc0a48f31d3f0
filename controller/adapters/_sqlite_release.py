"""The ReleaseLog half of the SQLite state store (adapters/sqlite_store.py): one row per
release task of a revision, written before the task starts and after it ends, so that a
controller killed in between finds it and does not run it a second time."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from controller.task_ports import ReleaseRecord, ReleaseState

T = TypeVar("T")
_COLUMNS = (
    "project, service, revision, name, tag, state, container, started_at, finished_at,"
    " exit_code, reason, log_tail"
)
_STATES = ("running", "succeeded", "failed")
MAX_TAIL = 8192  # characters of a task's log kept in the store


def _record(row: tuple[Any, ...]) -> ReleaseRecord:
    return ReleaseRecord(*row)


class ReleaseTable:
    """Mixed into SqliteStateStore, which provides `_tx` and `_query`."""

    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def _query(self, sql: str, args: tuple[Any, ...], convert: Callable[[Any], T]) -> list[T]:
        raise NotImplementedError  # SqliteStateStore's

    def release_task(
        self, project: str, service: str, revision: str, name: str
    ) -> ReleaseRecord | None:
        rows = self._query(
            f"SELECT {_COLUMNS} FROM release_tasks"
            " WHERE project = ? AND service = ? AND revision = ? AND name = ?",
            (project, service, revision, name),
            _record,
        )
        return rows[0] if rows else None

    def release_begin(
        self, project: str, service: str, revision: str, name: str, *, tag: str, at: float
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO release_tasks (project, service, revision, name, tag,"
                " state, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (project, service, revision, name, tag, at),
            )

    def release_container(
        self, project: str, service: str, revision: str, name: str, container: str
    ) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE release_tasks SET container = ?"
                " WHERE project = ? AND service = ? AND revision = ? AND name = ?",
                (container, project, service, revision, name),
            )

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
    ) -> None:
        if state not in _STATES or state == "running":
            raise ValueError(f"not a final release task state: {state!r}")
        key = (project, service, revision, name)
        with self._tx() as c:
            c.execute(
                "UPDATE release_tasks SET state = ?, exit_code = ?, reason = ?, log_tail = ?,"
                " finished_at = ?"
                " WHERE project = ? AND service = ? AND revision = ? AND name = ?",
                (state, exit_code, reason, log_tail[-MAX_TAIL:], at, *key),
            )

    def release_tasks(self, project: str | None = None, limit: int = 50) -> list[ReleaseRecord]:
        where, args = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        return self._query(
            f"SELECT {_COLUMNS} FROM release_tasks {where} ORDER BY started_at DESC, name LIMIT ?",
            (*args, max(1, limit)),
            _record,
        )
