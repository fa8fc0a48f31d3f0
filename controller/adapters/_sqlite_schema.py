"""The state store's schema and its migrations (adapters/sqlite_store.py).

Schema versions live in `PRAGMA user_version`; MIGRATIONS[i] takes version i to i + 1, each
in its own transaction, so a file from any older Berth opens and an empty file is version 0.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from controller.errors import PermanentError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE rollouts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project TEXT NOT NULL,
            service TEXT NOT NULL,
            from_tag TEXT,
            to_tag TEXT NOT NULL,
            from_revision TEXT,
            to_revision TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            source_commit TEXT
        )""",
        "CREATE INDEX rollouts_by_service ON rollouts (service, project, id)",
        "CREATE INDEX rollouts_by_outcome ON rollouts (outcome)",
        """CREATE TABLE quarantine (
            project TEXT NOT NULL,
            service TEXT NOT NULL,
            revision TEXT NOT NULL,
            tag TEXT NOT NULL,
            reason TEXT NOT NULL,
            since REAL NOT NULL,
            UNIQUE (project, service, revision)
        )""",
    ),
    # 1 -> 2: a failure repeated by retries (a pull while the registry is down) is one row
    ("ALTER TABLE rollouts ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",),
    # 2 -> 3: canaries in progress, and the operator's commands for them (another process)
    (
        """CREATE TABLE canary (
            project TEXT NOT NULL,
            service TEXT NOT NULL,
            revision TEXT NOT NULL,
            tag TEXT NOT NULL,
            step INTEGER NOT NULL,
            steps INTEGER NOT NULL,
            weight INTEGER NOT NULL,
            paused INTEGER NOT NULL,
            updated_at REAL NOT NULL,
            command TEXT,
            PRIMARY KEY (project, service)
        )""",
    ),
    # 3 -> 4: the registry digest the new revision was pinned to (digest pinning)
    ("ALTER TABLE rollouts ADD COLUMN to_digest TEXT",),
    # 4 -> 5: release tasks, recorded before they start and after they end (run once each)
    (
        """CREATE TABLE release_tasks (
            project TEXT NOT NULL,
            service TEXT NOT NULL,
            revision TEXT NOT NULL,
            name TEXT NOT NULL,
            tag TEXT NOT NULL,
            state TEXT NOT NULL,
            container TEXT,
            started_at REAL NOT NULL,
            finished_at REAL,
            exit_code INTEGER,
            reason TEXT NOT NULL DEFAULT '',
            log_tail TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (project, service, revision, name)
        )""",
        "CREATE INDEX release_tasks_by_time ON release_tasks (started_at)",
        "ALTER TABLE rollouts ADD COLUMN notes TEXT NOT NULL DEFAULT ''",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Brings the schema to SCHEMA_VERSION; refuses a file written by a newer Berth rather
    than guessing at its meaning. Returns the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise PermanentError(
            f"state database has schema {found}, this Berth knows up to {SCHEMA_VERSION}"
        )
    for version in range(found, SCHEMA_VERSION):
        with transaction(conn):  # per step: a crash leaves a consistent older version
            for stmt in MIGRATIONS[version]:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return found


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Explicit BEGIN IMMEDIATE (the connection is in autocommit mode): DDL is transactional
    too, and a writer takes the write lock up front instead of failing on upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
