"""Live progress for `berth apply`: a rich table on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from controller.core.outcome import Outcome
from controller.shell.rollout.executor import Event

if TYPE_CHECKING:  # rich is imported only for a terminal (~15 ms of every CLI start-up)
    from rich.console import Console
    from rich.table import Table

_STYLES: dict[str, str] = {
    Outcome.SUCCEEDED: "green",
    Outcome.ROLLED_BACK: "red",
    Outcome.FAILED: "red",
}
FINAL = frozenset(
    {o.value for o in Outcome if o.final and o.is_rollout}
    | {Outcome.SUPERSEDED, "restarted", "restart-failed"}  # a dependent's restart (compose)
)


class PlainProgress:
    """One line per event: what CI logs want."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        ms = int((e.at % 1) * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e.at)) + f".{ms:03d}Z"
        with self._lock:
            print(
                f"{stamp} {e.project}/{e.service} {e.phase}: {e.message}", file=self.out, flush=True
            )

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveProgress:
    """A table with one row per service that updates as events arrive."""

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.rows: dict[str, tuple[str, str, float, float | None]] = {}
        self._lock = threading.Lock()
        # get_renderable: the table is rebuilt at every refresh, so elapsed times tick.
        self._live = Live(
            console=console, refresh_per_second=8, transient=False, get_renderable=self._table
        )

    def __call__(self, e: Event) -> None:
        key = f"{e.project}/{e.service}"
        with self._lock:
            start = self.rows.get(key, ("", "", e.at, None))[2]
            end = e.at if e.phase in FINAL else None
            self.rows[key] = (e.phase, e.message, start, end)
        self._live.refresh()

    def _table(self) -> Table:
        from rich.table import Table

        t = Table(box=None, header_style="bold")
        for col in ("service", "phase", "detail", "elapsed"):
            t.add_column(col)
        now = time.time()
        with self._lock:
            rows = sorted(self.rows.items())
        for key, (phase, msg, start, end) in rows:
            style = _STYLES.get(phase, "")
            t.add_row(
                key, f"[{style}]{phase}[/]" if style else phase, msg, f"{(end or now) - start:.1f}s"
            )
        return t

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(et, ev, tb)


def progress_for(json_mode: bool) -> PlainProgress | LiveProgress:
    if not json_mode and sys.stderr.isatty():
        from rich.console import Console

        return LiveProgress(Console(stderr=True))
    return PlainProgress(sys.stderr)
