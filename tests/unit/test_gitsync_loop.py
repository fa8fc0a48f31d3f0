"""The syncer's loop: requests coalesce (at most one sync runs and one more is queued, however
many requests arrive), the interval still syncs, a crashing attempt does not end the loop,
and `stop` ends it. The attempt itself is replaced: git is tested against a real server in
tests/integration/test_git_source.py."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from controller.adapters.git_remote import Auth
from controller.core.gitsync import SyncOutcome, SyncResult
from controller.shell.daemon.git_metrics import GitMetrics
from controller.shell.daemon.gitsync import GitSync
from controller.shell.git_source import GitSource


class Blocking(GitSync):
    def __init__(self, interval: float = 3600.0) -> None:
        src = GitSource("https://h/r", "main", "desired", interval, "/nonexistent", Auth())
        super().__init__(src, GitMetrics(CollectorRegistry(), interval=interval, webhook=False),
                         on_change=lambda _: None)  # fmt: skip
        self.entered = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.calls = 0
        self.crash = False

    def _attempt(self) -> SyncOutcome:
        self.calls += 1
        self.entered.release()
        self.release.acquire()
        if self.crash:
            self.crash = False
            raise RuntimeError("bug")
        return SyncOutcome(SyncResult.SUCCESS, "a", "a", False, None, 0.0)


def test_requests_coalesce_into_one_running_and_one_queued() -> None:
    s = Blocking()
    t = threading.Thread(target=s.run, daemon=True)
    t.start()
    s.request()
    assert s.entered.acquire(timeout=5)  # the first sync runs ...
    for _ in range(50):
        s.request()  # ... 50 requests meanwhile queue exactly one more
    s.release.release()
    assert s.entered.acquire(timeout=5)
    s.release.release()
    assert not s.entered.acquire(timeout=0.3)
    assert s.calls == 2
    s.stop()
    t.join(5)
    assert not t.is_alive()


def test_interval_syncs_and_a_crash_does_not_end_the_loop() -> None:
    s = Blocking(interval=0.05)
    s.crash = True
    t = threading.Thread(target=s.run, daemon=True)
    t.start()
    for _ in range(3):
        assert s.entered.acquire(timeout=5)
        s.release.release()
    s.stop()
    for _ in range(2):
        s.release.release()  # an attempt that started before stop must not hang the join
    t.join(5)
    assert not t.is_alive() and s.calls >= 3
