"""The desired/ watcher (real inotify through watchfiles) follows desired/ being replaced
as a whole, as a checkout swap or `rm -rf desired && cp -r ...` does."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from controller.shell.daemon.triggers import FileWatcher


def _wait(seen: list[list[str]], count: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(seen) >= count:
            return True
        time.sleep(0.02)
    return False


def test_a_replaced_desired_directory_is_watched_again(tmp_path: Path) -> None:
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "a.yaml").write_text("x: 1\n")
    seen: list[list[str]] = []
    stopping = threading.Event()
    watcher = FileWatcher(str(desired), seen.append, stopping)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # the watch is armed
        os.rename(desired, tmp_path / "desired.old")
        desired.mkdir()
        (desired / "a.yaml").write_text("x: 2\n")
        assert _wait(seen, 1), "the swap of desired/ was not noticed"
        time.sleep(1.0)  # re-armed on the new directory
        before = len(seen)
        (desired / "a.yaml").write_text("x: 3\n")
        assert _wait(seen, before + 1), "a change in the new desired/ was missed"
        assert any(p.endswith("a.yaml") for p in seen[-1]), seen
    finally:
        stopping.set()
        thread.join(5)


class _SlowToRearm(FileWatcher):
    """Widens the moment between one watch ending and the next being armed, which under
    CI load was long enough for a write to fall into it."""

    def _dirs(self) -> list[str]:
        dirs = super()._dirs()
        self._rearms += 1
        if self._rearms > 1:
            time.sleep(1.0)
        return dirs

    _rearms = 0


def test_a_write_while_the_watch_is_rearmed_is_not_lost(tmp_path: Path) -> None:
    """track() with a new file set restarts the watch; a desired/ write during the restart
    must still reach on_change (not wait for the 30 s resync)."""
    desired = tmp_path / "desired"
    desired.mkdir()
    other = tmp_path / "compose"
    other.mkdir()
    (desired / "a.yaml").write_text("x: 1\n")
    seen: list[list[str]] = []
    stopping = threading.Event()
    watcher = _SlowToRearm(str(desired), seen.append, stopping)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.7)  # the first watch is armed
        watcher.track([str(other / "c.yml")])  # the file set changes: the watch restarts
        time.sleep(0.7)  # the old watch has ended; the new one is not armed yet
        assert watcher._rearms == 2, "the watch did not restart"
        (desired / "a.yaml").write_text("x: 2\n")
        assert _wait(seen, 1, 5.0), "a write during the re-arm was lost"
    finally:
        stopping.set()
        thread.join(5)
