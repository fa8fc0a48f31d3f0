"""The StateStore port on SQLite: rollout history and quarantined revisions.

One connection guarded by a lock: the executor writes from several rollout threads, the
writes are tiny, and a single connection is the only way `:memory:` can be shared. WAL mode
lets `berth history` read while `berth run` writes (another process, another connection);
busy_timeout makes the rare writer-writer overlap wait instead of failing.

The schema and its migrations are in _sqlite_schema.py.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from controller.adapters._sqlite_release import ReleaseTable
from controller.adapters._sqlite_schema import MIGRATIONS as MIGRATIONS
from controller.adapters._sqlite_schema import SCHEMA_VERSION as SCHEMA_VERSION
from controller.adapters._sqlite_schema import migrate, transaction
from controller.core.outcome import RECORDED, Outcome
from controller.errors import PermanentError, TemporaryError
from controller.ports import CanaryRecord, Quarantine, RolloutRecord

ABANDONED_REASON = "controller restarted during rollout"


_OUTCOMES = frozenset(RECORDED)
_COLUMNS = (
    "id, project, service, from_tag, to_tag, from_revision, to_revision, "
    "started_at, finished_at, outcome, reason, source_commit, attempts, to_digest, notes"
)
T = TypeVar("T")


def _kind(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


def _record(row: tuple[Any, ...]) -> RolloutRecord:
    return RolloutRecord(
        id=row[0],
        project=row[1],
        service=row[2],
        from_tag=row[3],
        to_tag=row[4],
        from_revision=row[5],
        to_revision=row[6],
        started_at=row[7],
        finished_at=row[8],
        outcome=Outcome(row[9]),
        reason=row[10],
        commit=row[11],
        attempts=row[12],
        to_digest=row[13],
        notes=row[14],
    )


class SqliteStateStore(ReleaseTable):
    """StateStore on one SQLite file (or `:memory:`); release tasks: _sqlite_release.py."""

    def __init__(self, path: str) -> None:
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._conn.execute("PRAGMA busy_timeout = 10000")
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise PermanentError(f"cannot open state database {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Serialises threads and translates sqlite errors: a locked file is temporary."""
        with self._lock:
            try:
                with transaction(self._conn) as conn:
                    yield conn
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise TemporaryError(f"state database busy: {exc}") from exc
                raise PermanentError(f"state database: {exc}") from exc
            except sqlite3.Error as exc:
                raise PermanentError(f"state database: {exc}") from exc

    def _query(self, sql: str, args: tuple[Any, ...], convert: Callable[[Any], T]) -> list[T]:
        with self._tx() as c:
            return [convert(r) for r in c.execute(sql, args).fetchall()]

    # -- rollouts ---------------------------------------------------------------------------

    def begin_rollout(
        self,
        *,
        project: str,
        service: str,
        from_tag: str | None,
        to_tag: str,
        from_revision: str | None,
        to_revision: str,
        commit: str | None,
        at: float,
        to_digest: str | None = None,
    ) -> int:
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO rollouts (project, service, from_tag, to_tag, from_revision,"
                " to_revision, started_at, outcome, reason, source_commit, to_digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'in_progress', '', ?, ?)",
                (
                    project,
                    service,
                    from_tag,
                    to_tag,
                    from_revision,
                    to_revision,
                    at,
                    commit,
                    to_digest,
                ),
            )
            return int(cur.lastrowid or 0)

    def finish_rollout(
        self, rollout_id: int, *, outcome: Outcome, reason: str, at: float, notes: str = ""
    ) -> None:
        if outcome not in _OUTCOMES or outcome == "in_progress":
            raise ValueError(f"not a final outcome: {outcome!r}")
        with self._tx() as c:
            cur = c.execute(
                "UPDATE rollouts SET outcome = ?, reason = ?, finished_at = ?, notes = ?"
                " WHERE id = ?",
                (outcome, reason, at, notes[-8192:], rollout_id),
            )
            if cur.rowcount == 0:
                raise PermanentError(f"no rollout with id {rollout_id}")

    def note_rollout(self, rollout_id: int, notes: str) -> None:
        with self._tx() as c:  # a record absorbed into an earlier one is gone: no-op
            c.execute("UPDATE rollouts SET notes = ? WHERE id = ?", (notes[-8192:], rollout_id))

    def absorb_retry(self, rollout_id: int) -> bool:
        """Fold a failed rollout into the row before it when it repeats that failure: same
        service, same target revision, both `failed`, same kind of failure (the reason up
        to its first ':', e.g. `pull failed`). The daemon retries such failures with
        backoff (every minute while a registry is down); history keeps one row whose
        `attempts` counts them, with the latest reason and finish time. Returns whether it
        folded."""
        with self._tx() as c:
            new = c.execute(
                "SELECT project, service, to_revision, outcome, reason, finished_at"
                " FROM rollouts WHERE id = ?",
                (rollout_id,),
            ).fetchone()
            if new is None or new[3] != Outcome.FAILED:
                return False
            prev = c.execute(
                "SELECT id, to_revision, outcome, reason FROM rollouts"
                " WHERE project = ? AND service = ? AND id < ? ORDER BY id DESC LIMIT 1",
                (new[0], new[1], rollout_id),
            ).fetchone()
            if (
                prev is None
                or (prev[1], prev[2]) != (new[2], Outcome.FAILED)
                or _kind(prev[3]) != _kind(new[4])
            ):
                return False
            c.execute(
                "UPDATE rollouts SET attempts = attempts + 1, reason = ?, finished_at = ?"
                " WHERE id = ?",
                (new[4], new[5], prev[0]),
            )
            c.execute("DELETE FROM rollouts WHERE id = ?", (rollout_id,))
            return True

    def abandon_in_progress(self, project: str | None, service: str | None, *, at: float) -> int:
        """Rollouts a killed controller left `in_progress` become `superseded` with reason
        ABANDONED_REASON: not `failed`, because nothing proved the revision bad, so it is not
        quarantined and the restarted controller simply converges again. None = any."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE rollouts SET outcome = 'superseded', reason = ?, finished_at = ?"
                " WHERE outcome = 'in_progress' AND (? IS NULL OR project = ?)"
                " AND (? IS NULL OR service = ?)",
                (ABANDONED_REASON, at, project, project, service, service),
            )
            return cur.rowcount

    def history(self, project: str | None, service: str, *, limit: int = 50) -> list[RolloutRecord]:
        """Newest first; `project=None` finds the service in any stack (CLI convenience)."""
        return self._query(
            f"SELECT {_COLUMNS} FROM rollouts WHERE service = ? AND (? IS NULL OR project = ?)"
            " ORDER BY id DESC LIMIT ?",
            (service, project, project, limit),
            _record,
        )

    def last(self, project: str, service: str) -> RolloutRecord | None:
        rows = self.history(project, service, limit=1)
        return rows[0] if rows else None

    def last_good(self, project: str | None, service: str) -> RolloutRecord | None:
        """The most recent succeeded rollout: what `berth rollback` goes back to."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM rollouts WHERE service = ? AND (? IS NULL OR project = ?)"
            " AND outcome = 'succeeded' ORDER BY id DESC LIMIT 1",
            (service, project, project),
            _record,
        )
        return rows[0] if rows else None

    def outcomes(self) -> dict[tuple[str, str], RolloutRecord]:
        """Latest rollout per (project, service), for `berth status` in one query."""
        rows = self._query(
            f"SELECT {_COLUMNS} FROM rollouts WHERE id IN"
            " (SELECT MAX(id) FROM rollouts GROUP BY project, service)",
            (),
            _record,
        )
        return {(r.project, r.service): r for r in rows}

    # -- quarantine ---------------------------------------------------------------------------

    def quarantine(
        self, *, project: str, service: str, revision: str, tag: str, reason: str, at: float
    ) -> None:
        """Idempotent: quarantining again updates the reason but keeps the first `since`."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO quarantine (project, service, revision, tag, reason, since)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project, service, revision)"
                " DO UPDATE SET tag = excluded.tag, reason = excluded.reason",
                (project, service, revision, tag, reason, at),
            )

    def lift_quarantine(self, project: str | None, service: str) -> int:
        with self._tx() as c:
            cur = c.execute(
                "DELETE FROM quarantine WHERE service = ? AND (? IS NULL OR project = ?)",
                (service, project, project),
            )
            return cur.rowcount

    def quarantined(self) -> list[Quarantine]:
        return self._query(
            "SELECT project, service, revision, tag, reason, since FROM quarantine"
            " ORDER BY since, project, service",
            (),
            lambda r: Quarantine(*r),
        )

    # -- canaries -----------------------------------------------------------------------------

    def canary_progress(self, record: CanaryRecord) -> None:
        r = record
        with self._tx() as c:
            c.execute(
                "INSERT INTO canary (project, service, revision, tag, step, steps, weight,"
                " paused, updated_at, command) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)"
                " ON CONFLICT (project, service) DO UPDATE SET"
                " command = CASE WHEN revision = excluded.revision THEN command END,"
                " revision = excluded.revision, tag = excluded.tag, step = excluded.step,"
                " steps = excluded.steps, weight = excluded.weight, paused = excluded.paused,"
                " updated_at = excluded.updated_at",
                (
                    r.project,
                    r.service,
                    r.revision,
                    r.tag,
                    r.step,
                    r.steps,
                    r.weight,
                    int(r.paused),
                    r.updated_at,
                ),
            )

    def canary_command(
        self, project: str | None, service: str, command: str
    ) -> CanaryRecord | None:
        with self._tx() as c:
            rows = c.execute(
                f"SELECT {_CANARY} FROM canary WHERE service = ? AND (? IS NULL OR project = ?)",
                (service, project, project),
            ).fetchall()
            if len(rows) != 1:
                return None
            found = _canary(rows[0])
            c.execute(
                "UPDATE canary SET command = ? WHERE project = ? AND service = ?",
                (command, found.project, service),
            )
            return found

    def take_canary_command(self, project: str, service: str, revision: str) -> str | None:
        with self._tx() as c:
            row = c.execute(
                "SELECT command FROM canary WHERE project = ? AND service = ? AND revision = ?",
                (project, service, revision),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            c.execute(
                "UPDATE canary SET command = NULL WHERE project = ? AND service = ?",
                (project, service),
            )
            return str(row[0])

    def canary_end(self, project: str, service: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM canary WHERE project = ? AND service = ?", (project, service))

    def canaries(self) -> list[CanaryRecord]:
        return self._query(f"SELECT {_CANARY} FROM canary ORDER BY project, service", (), _canary)


_CANARY = "project, service, revision, tag, step, steps, weight, paused, updated_at, command"


def _canary(row: tuple[Any, ...]) -> CanaryRecord:
    return CanaryRecord(
        project=row[0],
        service=row[1],
        revision=row[2],
        tag=row[3],
        step=int(row[4]),
        steps=int(row[5]),
        weight=int(row[6]),
        paused=bool(row[7]),
        updated_at=float(row[8]),
        command=row[9],
    )
