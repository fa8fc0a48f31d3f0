"""gesalps example API: the service Berth rolls out with zero downtime in the example stack.

Endpoints are what the rollout tests need: `/health` gates a new replica (503 forever when
the image was built or started with BROKEN=1, the deliberately broken v3), `/version` tells
which release answered, `/slow` keeps a request in flight across a cut-over, and `POST /echo`
checks that request bodies survive the proxy.

`GET /notes` / `POST /notes` keep notes in PostgreSQL (DATABASE_URL). The table comes from a
migration (app/migrate.py, Berth's release task); until it ran they answer 503 with a message
saying so. `/health` never touches the database: a replica is healthy without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app.migrate import target_version

APP_VERSION = os.environ.get("APP_VERSION", "0.0.0-dev")
BROKEN = os.environ.get("BROKEN", "0").strip().lower() in {"1", "true", "yes", "on"}
MAX_SLOW_SECONDS = 600.0
HOSTNAME = socket.gethostname()
MIGRATION_BROKEN = os.environ.get("MIGRATION_BROKEN", "0").strip().lower() in {"1", "true"}
# notes.author exists from schema version 2 (release 2.0.0) on
WITH_AUTHOR = target_version(APP_VERSION, broken=MIGRATION_BROKEN) >= 2
MAX_NOTE_BYTES = 10_000

log = logging.getLogger("gesalps.api")
app = FastAPI(title="gesalps api", version=APP_VERSION)


@app.on_event("startup")
async def announce() -> None:
    state = "BROKEN (/health answers 503)" if BROKEN else "ready"
    log.warning("gesalps api %s on %s: %s", APP_VERSION, HOSTNAME, state)


@app.get("/health")
async def health() -> Response:
    if BROKEN:
        return JSONResponse({"status": "broken", "version": APP_VERSION}, status_code=503)
    return JSONResponse({"status": "ok"})


@app.get("/version")
async def version() -> dict[str, str]:
    return {"version": APP_VERSION}


@app.get("/")
async def index() -> dict[str, str]:
    return {"service": "gesalps-api", "version": APP_VERSION, "hostname": HOSTNAME}


@app.get("/slow")
async def slow(seconds: float = 5.0) -> dict[str, object]:
    delay = min(max(seconds, 0.0), MAX_SLOW_SECONDS)
    await asyncio.sleep(delay)
    return {"version": APP_VERSION, "slept": delay, "hostname": HOSTNAME}


@app.post("/echo")
async def echo(request: Request) -> dict[str, object]:
    body = await request.body()
    return {"version": APP_VERSION, "length": len(body), "hostname": HOSTNAME}


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse({"error": message, "version": APP_VERSION}, status_code=503)


def _database(work: Callable[[Any], Any]) -> Any:
    """Run `work(cursor)` in one transaction; a 503 answer when the database cannot serve."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return _unavailable("DATABASE_URL is not set: this replica has no database")
    try:
        import psycopg2
        import psycopg2.errors
    except ImportError:
        return _unavailable("psycopg2 is not installed in this image")
    try:
        conn = psycopg2.connect(url, connect_timeout=3, application_name="gesalps-api")
    except psycopg2.OperationalError as exc:
        log.warning("database unreachable: %s", " ".join(str(exc).split()))
        return _unavailable("database unavailable")
    try:
        with conn, conn.cursor() as cur:
            return work(cur)
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn) as exc:
        detail = exc.diag.message_primary or " ".join(str(exc).split())
        return _unavailable(
            f"schema not migrated ({detail}): run the release task `python3 -m app.migrate`"
        )
    except psycopg2.Error as exc:
        log.warning("database error: %s", " ".join(str(exc).split()))
        return _unavailable("database error")
    finally:
        conn.close()


def _note(row: tuple[Any, ...]) -> dict[str, object]:
    note: dict[str, object] = {"id": row[0], "body": row[1], "created_at": row[-1].isoformat()}
    if WITH_AUTHOR:
        note["author"] = row[2]
    return note


_COLUMNS = "id, body, author, created_at" if WITH_AUTHOR else "id, body, created_at"


@app.get("/notes")
def list_notes(limit: int = 100) -> Any:
    """The newest notes first (at most `limit`, 1..1000)."""

    def work(cur: Any) -> list[dict[str, object]]:
        cur.execute(
            f"SELECT {_COLUMNS} FROM notes ORDER BY id DESC LIMIT %s",
            (min(max(limit, 1), 1000),),
        )
        return [_note(row) for row in cur.fetchall()]

    return _database(work)


@app.post("/notes", status_code=201)
async def add_note(request: Request) -> Any:
    """JSON {"body": "..."} (2.0.0 on: also "author"); answers the stored note, 201."""
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        data = None
    body = data.get("body") if isinstance(data, dict) else None
    if not isinstance(body, str) or not body or len(body.encode()) > MAX_NOTE_BYTES:
        return JSONResponse(
            {"error": f'expected JSON {{"body": "..."}}, body 1..{MAX_NOTE_BYTES} bytes'},
            status_code=400,
        )
    author = data.get("author") if WITH_AUTHOR else None
    if author is not None and not isinstance(author, str):
        return JSONResponse({"error": '"author" must be a string'}, status_code=400)

    def work(cur: Any) -> dict[str, object]:
        if WITH_AUTHOR:
            cur.execute(
                f"INSERT INTO notes (body, author) VALUES (%s, %s) RETURNING {_COLUMNS}",
                (body, author),
            )
        else:
            cur.execute(f"INSERT INTO notes (body) VALUES (%s) RETURNING {_COLUMNS}", (body,))
        return _note(cur.fetchone())

    # psycopg2 blocks: keep it off the event loop
    return await asyncio.get_running_loop().run_in_executor(None, _database, work)
