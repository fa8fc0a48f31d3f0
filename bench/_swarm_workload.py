"""The workload of bench/swarm_berth.py (both sides the same), and one measured change."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.load import Sample

GOOD_RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PER_REQUEST_RUNS = int(os.environ.get("BENCH_PER_REQUEST_RUNS", "1"))
BAD_RUNS = int(os.environ.get("BENCH_BAD_RUNS", "1"))
GET_THREADS = int(os.environ.get("BENCH_GET_THREADS", "4"))
GET_RATE = float(os.environ.get("BENCH_GET_RATE", "200"))
SIDES = [s.strip() for s in os.environ.get("BENCH_SIDES", "native,berth").split(",") if s]
REPLICAS = 3
MONITOR_S = 5
STOP_GRACE_S = 5.0
LONG_S = 3.0
WARM_S = 1.0  # load before the change
TAIL_S = 1.5  # load after it is done
NATIVE_PORT = 18080
BERTH_PORT = 18081
OVERLAY = "bench"
LOG_DIR = Path(tempfile.gettempdir()) / f"berth-bench-swarm-logs-{os.getpid()}"
GOOD = ("1.0.0", "2.0.0")
BAD = {"crash": 3, "unhealthy": 4}  # mode -> major: 3.0.0, 3.0.1, ... (a new tag per run:
# Berth quarantines a tag that failed, so a second run of the same tag would measure that)


def bad_tag(kind: str, i: int) -> str:
    return f"{BAD[kind]}.0.{i}"


def plan() -> list[tuple[str, str, str]]:
    """(kind, load, tag) in run order; "" as tag for a good run (the other good tag)."""
    out = [("good", "keep-alive", "")] * GOOD_RUNS + [
        ("good", "per-request", "")
    ] * PER_REQUEST_RUNS
    out += [(kind, "keep-alive", bad_tag(kind, i)) for kind in BAD for i in range(BAD_RUNS)]
    return out


@dataclass
class Run:
    side: str  # native | berth
    kind: str  # good | crash | unhealthy
    load: str  # keep-alive | per-request
    to: str  # the tag asked for
    seconds: float  # the side's own "done": completed / rollback_completed / apply's exit
    samples: list[Sample]
    t0: float  # wall clock of the change
    before: str  # the tag served before
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def served(self, tag: str, *, last: bool) -> float:
        """Seconds from the change to the first (last) GET response carrying `tag`."""
        ends = [s.end for s in self.samples if s.ok and s.kind == "get" and s.body == tag]
        if not ends:
            return float("nan")
        return (max(ends) if last else min(ends)) - self.t0
