"""POST /hooks/git: a signed push webhook (GitHub, Gitea, Forgejo, Gogs) asks the git
syncer for a sync now. The judging is pure (`core/webhook.py`); this is the glue: the
replay window under a lock, the metric, the log line, and the coalesced request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from controller.core.webhook import HTTP_STATUS, ReplayWindow, Verdict, judge
from controller.shell.daemon.git_metrics import GitMetrics

log = logging.getLogger("berth.git")


class GitHook:
    """The `Hook` of the HTTP server (http_request.Hook)."""

    def __init__(
        self,
        secret: bytes,
        *,
        branch: str,
        max_body: int,
        sync: Callable[[], None],
        metrics: GitMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret, self._branch, self.max_body = secret, branch, max_body
        self._sync, self._metrics, self._clock = sync, metrics, clock
        self._window = ReplayWindow()
        self._lock = threading.Lock()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self._lock:
            j = judge(
                self._secret,
                body,
                headers,
                branch=self._branch,
                window=self._window,
                now=self._clock(),
            )
        self._metrics.webhook(j.verdict)
        if j.verdict is Verdict.ACCEPTED:
            self._sync()
            log.info("webhook: %s; sync requested", j.reason, extra={"delivery": j.delivery})
        elif j.verdict is Verdict.IGNORED:
            log.info("webhook ignored: %s", j.reason, extra={"delivery": j.delivery})
        else:
            log.warning("webhook refused (%s): %s", j.verdict, j.reason,
                        extra={"delivery": j.delivery})  # fmt: skip
        return HTTP_STATUS[j.verdict], f"{j.verdict}: {j.reason}\n".encode()

    def too_large(self) -> None:
        self._metrics.webhook(Verdict.TOO_LARGE)
        log.warning("webhook refused: body larger than %d bytes", self.max_body)
