"""Berth's own controller API, as a client: the daemon's /status (used by `--wait`)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any


def fetch_status(url: str) -> list[dict[str, Any]] | None:
    """The daemon's /status rows, or None when no daemon answers there. Plain http.client:
    no proxy variables (the controller listens on the host), nothing to import at start-up."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    path = parts.path.rstrip("/") + "/status"
    try:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=2.0)
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            return None
        rows = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return rows if isinstance(rows, list) else None
