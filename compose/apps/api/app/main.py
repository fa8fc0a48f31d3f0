"""gesalps example API: the service Berth rolls out with zero downtime in the example stack.

Endpoints are what the rollout tests need: `/health` gates a new replica (503 forever when
the image was built or started with BROKEN=1, the deliberately broken v3), `/version` tells
which release answered, `/slow` keeps a request in flight across a cut-over, and `POST /echo`
checks that request bodies survive the proxy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

APP_VERSION = os.environ.get("APP_VERSION", "0.0.0-dev")
BROKEN = os.environ.get("BROKEN", "0").strip().lower() in {"1", "true", "yes", "on"}
MAX_SLOW_SECONDS = 600.0
HOSTNAME = socket.gethostname()

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
