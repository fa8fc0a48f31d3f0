"""`berth run --git-url`: follow a remote repository (docs/git-source.md).

The syncer owns Berth's own checkout (STATE_DIR/git/checkout or --git-checkout). One
thread syncs every `interval` and whenever `request()` is called (the webhook); requests
coalesce: at most one sync runs and at most one more is queued, however many arrive. A
sync fetches the branch, judges old..new (`core/gitsync.py`: fast-forward only, allowed
signers, the desired/ boundary), moves the checkout to exactly the judged commit, and
reloads the config at once (`on_change`), without waiting for the file watcher. A refused
or failed sync changes nothing: the last good commit stays in force, and the error is kept
for /status/source, the metrics and `on_sync` (e.g. a notification).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from controller.adapters import git_remote as g
from controller.adapters import git_writeback as gw
from controller.adapters.git import GitError
from controller.core.gitsync import (
    SyncOutcome,
    SyncResult,
    needs_signature,
    range_problem,
    redact_url,
    short,
)
from controller.errors import BerthError
from controller.shell.daemon.git_metrics import GitMetrics
from controller.shell.daemon.hooks import GitHook
from controller.shell.git_source import GitSource

log = logging.getLogger("berth.git")


class GitSync:
    def __init__(
        self,
        source: GitSource,
        metrics: GitMetrics,
        *,
        on_change: Callable[[str], None],
        on_sync: Callable[[SyncOutcome], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source, self.metrics, self.clock = source, metrics, clock
        self.on_change, self.on_sync = on_change, on_sync
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one sync at a time (run loop, tests, start-up)
        self._last: SyncOutcome | None = None
        self._synced_at: float | None = None
        self._failures = 0

    # -- start-up ----------------------------------------------------------------------

    def prepare(self) -> None:
        """Clone when there is no checkout yet (the tip is the operator's choice; with
        allowed signers it must verify), else check the checkout follows this remote. A
        first clone that fails stops `berth run` (BerthError); an existing checkout whose
        remote is unreachable starts with the commit it holds (the error shows in status)."""
        src, remote = self.source, self.source.remote
        if not os.path.exists(src.checkout):
            log.info("git: cloning %s (%s) into %s", redact_url(src.url), src.branch, src.checkout)
            tip = g.clone(remote, src.checkout)
            if src.auth.signers is not None and not g.verified(remote, src.checkout, tip):
                _discard(src.checkout)
                raise BerthError(f"git: commit {short(tip)} is not signed by an allowed signer")
            self._record(SyncOutcome(SyncResult.SUCCESS, tip, tip, True, None, self.clock()))
            _describe(src)
            return
        origin = g.origin_url(src.checkout)
        if origin != src.url:
            raise BerthError(
                f"git: {src.checkout} follows {redact_url(origin or '(no remote)')}, not "
                f"{redact_url(src.url)}; remove it or choose another --git-checkout"
            )
        _describe(src)
        self.metrics.started(self.clock())
        self.sync_once()

    # -- the loop ----------------------------------------------------------------------

    def request(self) -> None:
        """Sync as soon as possible (coalesced with any request already waiting)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.source.interval)
            if self._stop.is_set():
                return
            self._wake.clear()  # requests from now on queue one more sync
            try:
                self.sync_once()
            except Exception:  # a bug must not end the loop: that is a sync that stops
                log.exception("git: sync failed unexpectedly")

    def sync_once(self) -> SyncOutcome:
        with self._lock:
            outcome = self._attempt()
            self._record(outcome)
        if outcome.changed:
            self.on_change(f"git {short(outcome.commit or '')}")
        if self.on_sync is not None:
            try:
                self.on_sync(outcome)
            except Exception:
                log.exception("git: on_sync callback failed")
        return outcome

    def _attempt(self) -> SyncOutcome:
        src, remote, now = self.source, self.source.remote, self.clock()
        try:
            head = g.head(remote, src.checkout)
        except GitError as exc:
            return SyncOutcome(SyncResult.ERROR, None, None, False, str(exc), now)
        try:
            tip = g.fetch(remote, src.checkout)
        except GitError as exc:
            return SyncOutcome(SyncResult.ERROR, head, None, False, str(exc), now)
        if tip == head:
            return SyncOutcome(SyncResult.SUCCESS, head, tip, False, None, now)
        try:
            problem = self._judge(head, tip)
            if problem is None:
                g.fast_forward(remote, src.checkout, tip)
        except GitError as exc:
            return SyncOutcome(SyncResult.ERROR, head, tip, False, str(exc), now)
        if problem is not None:
            return SyncOutcome(SyncResult.REJECTED, head, tip, False, problem, now)
        return SyncOutcome(SyncResult.SUCCESS, tip, tip, True, None, now)

    def _judge(self, head: str, tip: str) -> str | None:
        src, remote = self.source, self.source.remote
        if g.is_ancestor(remote, src.checkout, tip, head):
            return (
                f"the checkout ({short(head)}) is ahead of {src.branch} ({short(tip)}): "
                "a local commit was not pushed; push it or reset the checkout"
            )
        ff = g.is_ancestor(remote, src.checkout, head, tip)
        commits = g.commits_between(remote, src.checkout, head, tip) if ff else []
        wanted = set(needs_signature(commits, src.policy))
        if src.policy.signers and ff:
            wanted.add(tip)
        signed = frozenset(s for s in wanted if g.verified(remote, src.checkout, s))
        return range_problem(
            fast_forward=ff, head=head, tip=tip, commits=commits, signed=signed, policy=src.policy
        )

    def _record(self, o: SyncOutcome) -> None:
        self._last = o
        if o.result is SyncResult.SUCCESS:
            self._synced_at, self._failures = o.at, 0
        else:
            self._failures += 1
        self.metrics.sync(o.result, at=o.at, failures=self._failures)
        if o.changed:
            log.info("git: now at %s", short(o.commit or ""), extra={"commit": o.commit})
        elif o.error is not None:
            log.warning("git: sync %s: %s", o.result, o.error, extra={"error": o.error})

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `source` object of /status/source (no credentials: the URL is redacted)."""
        src, last = self.source, self._last
        return {
            "url": redact_url(src.url),
            "branch": src.branch,
            "path": src.path,
            "commit": last.commit if last else None,
            "synced_at": _iso(self._synced_at),
            "last_attempt_at": _iso(last.at if last else None),
            "last_result": str(last.result) if last else None,
            "last_error": last.error if last else None,
            "remote_commit": last.fetched if last else None,
            "consecutive_failures": self._failures,
            "interval_seconds": src.interval,
            "webhook": src.webhook_secret is not None,
        }


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _describe(src: GitSource) -> None:
    """What the checkout follows, into its .git/config (no token): `berth deploy --commit`
    on it reads this to push (git_writeback). A failure only costs that."""
    a = src.auth
    followed = gw.Followed(src.checkout, src.url, src.branch, src.path, a.username,
                           a.ssh_key, a.known_hosts, a.signers)  # fmt: skip
    try:
        gw.record(src.checkout, followed)
    except GitError as exc:
        log.warning("git: cannot record the remote in the checkout: %s", exc)


def _discard(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@dataclass
class GitLink:
    """The git source's parts as the daemon holds them: the syncer and the webhook."""

    sync: GitSync
    hook: GitHook | None

    @staticmethod
    def build(
        source: GitSource | None,
        registry: CollectorRegistry,
        reload: Callable[[str], None],
        on_sync: Callable[[SyncOutcome], None] | None,
    ) -> GitLink | None:
        if source is None:
            return None
        secret = source.webhook_secret
        metrics = GitMetrics(registry, interval=source.interval, webhook=secret is not None)
        sync = GitSync(source, metrics, on_change=reload, on_sync=on_sync)
        hook = None
        if secret is not None:
            hook = GitHook(
                secret,
                branch=source.branch,
                max_body=source.max_body,
                sync=sync.request,
                metrics=metrics,
            )
        return GitLink(sync, hook)

    def status(self) -> dict[str, Any]:
        return self.sync.status()
