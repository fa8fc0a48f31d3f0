"""Judging a smoke check's answer (x-berth.smoke): pure, on what the HTTP client returned."""

from __future__ import annotations

from collections.abc import Mapping

from controller.core.tagpolicy import compiled
from controller.core.task_options import SmokeCheck
from controller.errors import printable

_SHOWN = 120  # characters of a body quoted in a failure


def judge(check: SmokeCheck, status: int, headers: Mapping[str, str], body: bytes) -> str | None:
    """Why the answer fails the check; None when it passes. Patterns are RE2 (linear time:
    the body is the new container's, which the compose file's author does not control)."""
    if status not in check.status:
        want = " or ".join(str(s) for s in check.status)
        return f"expected status {want}, got {status}{_quote(body)}"
    for name, pattern in check.response_headers:
        value = headers.get(name)
        if value is None:
            return f"no {name} header in the answer"
        if compiled(pattern).search(value) is None:
            return f"header {name}: {printable(value[:_SHOWN])!r} does not match {pattern!r}"
    if check.body_matches is not None:
        text = body.decode("utf-8", errors="replace")
        if compiled(check.body_matches).search(text) is None:
            return f"body does not match {check.body_matches!r}{_quote(body)}"
    return None


def _quote(body: bytes) -> str:
    text = body[:_SHOWN].decode("utf-8", errors="replace").strip()
    return f": {printable(text)!r}" if text else ""
