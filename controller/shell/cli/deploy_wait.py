"""`--wait` for `berth deploy` and `berth rollback`: until the controller reports the
outcome of the new tags (through a running daemon's /status, else one reconcile here)."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from controller.adapters.controller_api import fetch_status
from controller.core.config import Config
from controller.core.outcome import Outcome
from controller.shell.cli.commands import EXIT_ERROR, EXIT_FAILED, EXIT_OK, apply_once
from controller.shell.wiring import Context

if TYPE_CHECKING:
    from controller.shell.desired_edit import Want

POLL_INTERVAL = 0.5


Verdict = Literal["converged", "failed", "pending"]


def verdict(row: Mapping[str, Any] | None, tag: str, before: Mapping[str, Any] | None) -> Verdict:
    """One service against its new tag. A failure counts only once the daemon desires the
    new tag and its outcome moved since the edit (an old failure is not this one's)."""
    if row is None or row.get("desired_tag") != tag:
        return "pending"
    if row.get("quarantined"):
        return "failed"
    want = int(row.get("desired_replicas") or 0)
    running = list(row.get("running_tags") or [])
    if int(row.get("ready") or 0) == want and running == ([tag] if want else []):
        return "converged"
    moved = before is None or (row.get("last_outcome"), row.get("last_reason")) != (
        before.get("last_outcome"),
        before.get("last_reason"),
    )
    if row.get("last_outcome") in (Outcome.ROLLED_BACK, Outcome.FAILED) and moved:
        return "failed"
    return "pending"


def _rows_by_key(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(str(r.get("project")), str(r.get("service"))): r for r in rows}


def wait_daemon(
    url: str, wants: Sequence[Want], before: Sequence[Mapping[str, Any]], timeout: float
) -> tuple[int, dict[str, Verdict]]:
    base = _rows_by_key(before)
    deadline = time.monotonic() + timeout
    states: dict[str, Verdict] = {}
    while True:
        rows = fetch_status(url)
        if rows is not None:
            now = _rows_by_key(rows)
            states = {
                f"{w.project}/{w.service}": verdict(
                    now.get((w.project, w.service)), w.tag, base.get((w.project, w.service))
                )
                for w in wants
            }
            if "failed" in states.values() and "pending" not in states.values():
                return EXIT_FAILED, states
            if all(v == "converged" for v in states.values()):
                return EXIT_OK, states
        if time.monotonic() >= deadline:
            return EXIT_ERROR, states
        time.sleep(POLL_INTERVAL)


def _not_seen(url: str, wants: Sequence[Want]) -> list[str]:
    """Services whose new tag the daemon never took up: the likely reason is that it does
    not watch the desired/ that was edited (another checkout, a mount, a missing git pull)."""
    now = _rows_by_key(fetch_status(url) or [])
    out = []
    for w in wants:
        row = now.get((w.project, w.service))
        if row is None:
            out.append(f"the controller at {url} does not manage {w.project}/{w.service}")
        elif row.get("desired_tag") != w.tag:
            out.append(
                f"the controller at {url} still desires {row.get('desired_tag')} for "
                f"{w.project}/{w.service}, not {w.tag}: does it watch the desired/ that was "
                "edited (another checkout or mount, a git pull it has not had)?"
            )
    return out


@dataclass(frozen=True)
class WaitOptions:
    wait: bool
    timeout: float
    controller: str
    as_json: bool


def wait_for(
    ctx: Context, cfg: Config, wants: Sequence[Want], opts: WaitOptions, before: Any
) -> tuple[int, Any]:
    """Through the daemon when one answers at `controller`, else one reconcile here."""
    if before is not None:
        code, states = wait_daemon(opts.controller, wants, before, opts.timeout)
        if code == EXIT_ERROR:
            print(
                f"berth: timed out after {opts.timeout:.0f}s waiting for the controller",
                file=sys.stderr,
            )
            for line in _not_seen(opts.controller, wants):
                print(f"berth: {line}", file=sys.stderr)
        return code, {"via": opts.controller, "services": states}
    results = apply_once(ctx, cfg, as_json=opts.as_json)
    for r in results:
        if r.outcome is not Outcome.UNCHANGED and not opts.as_json:
            print(f"{r.project}/{r.service}: {r.outcome} ({r.reason}) in {r.duration:.1f}s")
    code = EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
    return code, {"via": "in-process apply", "results": [asdict(r) for r in results]}
