"""Berth's own controller API, as a client: the daemon's /status (used by `--wait`)."""

from __future__ import annotations

from typing import Any

import httpx


def fetch_status(url: str) -> list[dict[str, Any]] | None:
    """The daemon's /status rows, or None when no daemon answers there."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/status", timeout=2.0, trust_env=False)
        resp.raise_for_status()
        rows = resp.json()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError):
        return None
    return rows if isinstance(rows, list) else None
