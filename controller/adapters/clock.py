"""The Clock port on the real clock; tests use tests.fakes.FakeClock instead of sleeping."""

from __future__ import annotations

import time


class SystemClock:
    """Wall-clock `now` because it is also written into rollout records; deadlines of a few
    minutes tolerate the rare NTP step."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
