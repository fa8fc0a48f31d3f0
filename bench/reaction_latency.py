"""Daemon reaction latency: desired-file write -> `rollout.start` (issue: daemon).

`berth run` (tests/support/daemon.berth_run, JSON logs) manages a 1-replica busybox httpd
service. The benchmark writes a new tag into the desired file (atomic rename, as an editor
or `git checkout` does) ITERATIONS times, alternating 1.0.0 <-> 2.0.0 (both images exist,
so every change is a real, cheap replacement), and waits for each rollout to finish before
the next write. Latency = `ts` of the JSON line with event `rollout.start` minus the wall
clock right after the rename (`ts` has millisecond resolution, truncated).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interference_note, median, pct, stack, table, verdict
from rollout_overhead import compose

from tests.support.daemon import berth_run
from tests.support.images import ensure_app_image

ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "50"))
TARGET_P50_MS = 100.0
TAGS = ("1.0.0", "2.0.0")
TERMINAL = {"rollout.succeeded", "rollout.rolled_back", "rollout.failed"}


def ts(doc: dict[str, object]) -> float:
    return (
        dt.datetime.strptime(str(doc["ts"]), "%Y-%m-%dT%H:%M:%S.%fZ")
        .replace(tzinfo=dt.UTC)
        .timestamp()
    )


class Tail:
    """Reads new JSON lines from the daemon's log file."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open()
        self.buf = ""

    def lines(self) -> list[dict[str, object]]:
        self.buf += self.fh.read()
        *full, self.buf = self.buf.split("\n")
        out = []
        for line in full:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def wait(self, pred: object, timeout: float) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for doc in self.lines():
                if pred(doc):  # type: ignore[operator]
                    return doc
            time.sleep(0.005)
        raise RuntimeError("timed out waiting for the daemon's log line")


def main() -> int:
    for tag in TAGS:
        ensure_app_image(tag)
    starts: list[float] = []
    notices: list[float] = []
    with stack("bre") as s:
        s.write_compose(compose())
        s.write_desired({"api": {"tag": TAGS[0]}})
        log = s.root / "berth-run.log"
        with berth_run(s.desired_dir, s.state_dir, log=log) as run:
            tail = Tail(log)
            # wait for the initial create to finish (readyz is up once the first pass is done)
            deadline = time.monotonic() + 60
            while run.metric("berth_service_replicas", service="api", state="ready") != 1.0:
                if time.monotonic() > deadline:
                    raise RuntimeError("initial rollout never became ready")
                time.sleep(0.1)
            tail.lines()
            time.sleep(0.5)
            for i in range(1, ITERATIONS + 1):
                s.write_desired({"api": {"tag": TAGS[i % 2]}})
                t_write = time.time()
                notice: float | None = None

                def is_start(doc: dict[str, object]) -> bool:
                    nonlocal notice
                    msg = str(doc.get("event", ""))
                    if notice is None and msg.startswith("desired state changed"):
                        notice = ts(doc)
                    return doc.get("event") == "rollout.start"

                start = tail.wait(is_start, 30)
                starts.append((ts(start) - t_write) * 1000)
                if notice is not None:
                    notices.append((notice - t_write) * 1000)
                tail.wait(lambda d: d.get("event") in TERMINAL, 60)
                time.sleep(0.2)
        note = interference_note(s.project)
    p50, p99 = median(starts), pct(starts, 99)
    print("## Daemon reaction latency\n")
    print(
        f"`berth run` with one 1-replica busybox httpd service; {ITERATIONS} atomic writes of "
        "a new tag into the desired file (1.0.0 ↔ 2.0.0), each after the previous rollout "
        "finished. Latency = `ts` of the `rollout.start` JSON log line - wall clock just "
        "after the rename (ms resolution).\n"
    )
    rows = [
        (
            "write → rollout.start p50",
            f"{p50:.0f} ms",
            f"≤ {TARGET_P50_MS:.0f} ms",
            verdict(p50 <= TARGET_P50_MS),
        ),
        ("write → rollout.start p99", f"{p99:.0f} ms", "", ""),
        ("write → rollout.start min / max", f"{min(starts):.0f} / {max(starts):.0f} ms", "", ""),
    ]
    if notices:
        rows.append(
            (
                'write → "desired state changed" (watcher) p50 / p99',
                f"{median(notices):.0f} / {pct(notices, 99):.0f} ms",
                "",
                "",
            )
        )
    print(table(("metric", "measured", "target", "verdict"), rows))
    print(f"\n_{note}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
