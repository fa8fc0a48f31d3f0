"""Schema migrations of the gesalps API: `python3 -m app.migrate` (Berth's release task).

Numbered migrations, applied in order, all of one run in ONE transaction: a run either
brings the schema to what this release needs or leaves it exactly where it was. Applied
versions are recorded in `schema_migrations (version, applied_at)`. A transaction-scoped
advisory lock is the first thing a run takes, so two runs at once (two hosts, a retry while
the first still runs) apply each migration once: the second waits, then finds nothing to do.

Each migration names the release that introduced it; a release applies the migrations up to
its own version (APP_VERSION). A schema NEWER than the release (after a rollback of the app:
migrations are additive, expand/contract) is fine and left alone.

Exit codes: 0 done (or nothing to do), 1 a migration failed (rolled back) or the database
could not be reached, 2 misconfigured (no DATABASE_URL). Messages go to stderr, one line
each, without the password.

    DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DB python3 -m app.migrate
    MIGRATE_CONNECT_TIMEOUT=30    seconds to keep retrying the first connection

Build arg / env MIGRATION_BROKEN=1 (berth-demo/api:3.1.0) adds migration 3, which fails
half-way (a typo in a table name), to show that a failed release task changes nothing.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# "berth-demo" as a 63-bit key: every run of this app's migrations serialises on it.
LOCK_KEY = 0x6265727468_0001


@dataclass(frozen=True)
class Migration:
    version: int
    since: str  # the first release that needs it
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "1.0.0",
        "create table notes",
        (
            "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())",
        ),
    ),
    Migration(2, "2.0.0", "notes.author", ("ALTER TABLE notes ADD COLUMN author text",)),
)

# Deliberately broken: the index is created, then the typo ("note") fails the statement,
# and the transaction takes the index back with it.
BROKEN_MIGRATION = Migration(
    3,
    "3.1.0",
    "notes.tags (broken: typo in the table name)",
    (
        "CREATE INDEX notes_created_at ON notes (created_at)",
        "ALTER TABLE note ADD COLUMN tags text[]",
    ),
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in {"1", "true", "yes", "on"}


def _release(text: str) -> tuple[int, ...]:
    """'2.0.0' -> (2, 0, 0); anything else (a dev build) -> every migration applies."""
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        return (sys.maxsize,)
    return tuple(int(part) for part in text.split("."))


def migrations_for(app_version: str, *, broken: bool = False) -> list[Migration]:
    """The migrations release `app_version` needs, in order."""
    known = [*MIGRATIONS, BROKEN_MIGRATION] if broken else list(MIGRATIONS)
    mine = _release(app_version)
    return sorted((m for m in known if _release(m.since) <= mine), key=lambda m: m.version)


def target_version(app_version: str, *, broken: bool = False) -> int:
    """The schema version release `app_version` works with (0: none)."""
    return max((m.version for m in migrations_for(app_version, broken=broken)), default=0)


def describe(url: str) -> str:
    """`host:port/db` of a DATABASE_URL, for messages (never the password)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "(unparsable DATABASE_URL)"


def connect(url: str, *, wait: float) -> Any:
    """A connection, retrying refused/unreachable for up to `wait` seconds (the database may
    still be starting). Raises psycopg2.OperationalError when it stays unreachable."""
    import psycopg2

    deadline = time.monotonic() + wait
    while True:
        try:
            return psycopg2.connect(url, connect_timeout=5, application_name="app.migrate")
        except psycopg2.OperationalError as exc:
            text = str(exc)
            # a refused password or a missing database does not get better by waiting
            if "authentication failed" in text or "does not exist" in text:
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def migrate(conn: Any, wanted: list[Migration], out: Any = sys.stderr) -> list[int]:
    """Apply the pending ones of `wanted` in one transaction; returns the versions applied.

    Raises MigrationFailed (after rolling back) when a statement fails."""
    import psycopg2

    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            # first: two runs at once must not both create schema_migrations either
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur.execute("SELECT version FROM schema_migrations")
            applied = {int(row[0]) for row in cur.fetchall()}
            current = max(applied, default=0)
            done: list[int] = []
            for m in wanted:
                if m.version in applied:
                    continue
                print(f"migrate: applying {m.version} ({m.name})", file=out, flush=True)
                try:
                    for statement in m.statements:
                        cur.execute(statement)
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (m.version,))
                except psycopg2.Error as exc:
                    raise MigrationFailed(m, current, _one_line(exc)) from exc
                done.append(m.version)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return done


class MigrationFailed(Exception):
    def __init__(self, migration: Migration, current: int, detail: str) -> None:
        super().__init__(
            f"migration {migration.version} ({migration.name}) failed: {detail}; rolled back,"
            f" the schema stays at version {current}"
        )


def main() -> int:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        print("migrate: DATABASE_URL is not set", file=sys.stderr)
        return 2
    app_version = os.environ.get("APP_VERSION", "0.0.0-dev")
    wanted = migrations_for(app_version, broken=_flag("MIGRATION_BROKEN"))
    wait = float(os.environ.get("MIGRATE_CONNECT_TIMEOUT", "30"))
    try:
        import psycopg2
    except ImportError:
        print("migrate: psycopg2 is not installed", file=sys.stderr)
        return 1
    try:
        conn = connect(url, wait=wait)
    except psycopg2.OperationalError as exc:
        print(f"migrate: cannot connect to {describe(url)}: {_one_line(exc)}", file=sys.stderr)
        return 1
    try:
        done = migrate(conn, wanted)
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            at = int(cur.fetchone()[0])
        conn.rollback()
    except MigrationFailed as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        print(f"migrate: database error on {describe(url)}: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    target = target_version(app_version, broken=_flag("MIGRATION_BROKEN"))
    newer = f" (newer than release {app_version} needs: {target})" if at > target else ""
    if done:
        applied = ", ".join(map(str, done))
        print(f"migrate: applied {applied}; schema at version {at}{newer}", file=sys.stderr)
    else:
        print(f"migrate: nothing to do; schema at version {at}{newer}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
