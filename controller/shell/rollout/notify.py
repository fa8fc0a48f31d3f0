"""The notifier: every pass's result goes in, at most one notice per change comes out.

It joins the pure decisions (core/notify.py: which notice, and `admit`, the dedup policy)
to a NoticeSink (the Apprise adapter, or none). One per process: `berth run` builds it in
the manager and the reconciler hands it every RolloutResult; `berth apply --notify` builds
its own. The remote git source calls `sync_failed` / `sync_ok`.
"""

from __future__ import annotations

import threading

from controller.core.notify import Ending, Notice, Seen, admit, notice_for, sync_failed_notice
from controller.ports import NoticeSink
from controller.shell.rollout.results import RolloutResult


class Notifier:
    def __init__(self, sink: NoticeSink | None = None) -> None:
        self._sink = sink
        self._lock = threading.Lock()  # rollouts of different services end in parallel
        self._seen: dict[str, Seen] = {}

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def rollout(self, r: RolloutResult) -> Notice | None:
        """A pass ended: notify if it is news. Returns the notice sent, if any."""
        if self._sink is None:
            return None
        return self._offer(notice_for(ending_of(r)))

    def sync_failed(self, source: str, error: str, commit: str | None = None) -> Notice | None:
        """The desired state could not be fetched from `source` (say, a remote git): one
        notice per distinct error until `sync_ok(source)`. `commit`: the last good one, still
        in force. Never include credentials in `source` or `error`."""
        if self._sink is None:
            return None
        return self._offer(sync_failed_notice(source, error, commit))

    def sync_ok(self, source: str) -> None:
        """A sync of `source` succeeded: its next failure is news again."""
        with self._lock:
            self._seen.pop(f"sync {source}", None)

    def close(self, timeout: float = 10.0) -> None:
        if self._sink is not None:
            self._sink.close(timeout)

    def _offer(self, n: Notice | None) -> Notice | None:
        if n is None or self._sink is None:
            return None
        with self._lock:
            ok, seen = admit(self._seen.get(n.subject), n)
            if seen is not None:
                self._seen[n.subject] = seen
        if not ok:
            return None
        self._sink.send(n)
        return n


def ending_of(r: RolloutResult) -> Ending:
    return Ending(
        project=r.project,
        service=r.service,
        outcome=r.outcome,
        reason=r.reason,
        from_tag=r.from_tag,
        to_tag=r.to_tag,
        revision=r.revision,
        commit=r.commit,
        log_tail=r.log_tail,
        container=r.log_container,
        canary=r.canary,
        quarantined=r.quarantined,
    )
