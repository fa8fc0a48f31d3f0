"""gesalps synth-worker: runs (fake) synthetic-data jobs in a loop.

Liveness is a heartbeat file, touched at least every 2 s from the job loop itself (not from
a side thread), so a wedged job makes the heartbeat go stale and the compose healthcheck
(`heartbeat younger than 10 s`) turns the container unhealthy.

SIGTERM/SIGINT: the current job is finished, then the process exits 0. A job takes at most
JOB_MAX_SECONDS (default 8 s), well inside the compose stop_grace_period of 30 s.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from pathlib import Path
from types import FrameType

APP_VERSION = os.environ.get("APP_VERSION", "0.0.0-dev")
HEARTBEAT = Path(os.environ.get("HEARTBEAT_FILE", "/tmp/heartbeat"))
HEARTBEAT_EVERY = 2.0
STEP = 0.5
JOB_MIN_SECONDS = float(os.environ.get("JOB_MIN_SECONDS", "2"))
JOB_MAX_SECONDS = float(os.environ.get("JOB_MAX_SECONDS", "8"))
IDLE_SECONDS = float(os.environ.get("IDLE_SECONDS", "1"))

log = logging.getLogger("synth-worker")


class Worker:
    def __init__(self) -> None:
        self.stopping = False
        self.last_beat = 0.0
        self.jobs_done = 0

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("got %s: finishing the current job, then exiting", signal.Signals(signum).name)
        self.stopping = True

    def beat(self, *, force: bool = False) -> None:
        now = time.time()
        if force or now - self.last_beat >= HEARTBEAT_EVERY:
            tmp = HEARTBEAT.with_name(HEARTBEAT.name + ".tmp")
            tmp.write_text(f"{now:.3f} jobs={self.jobs_done} version={APP_VERSION}\n")
            tmp.replace(HEARTBEAT)
            self.last_beat = now

    def run_job(self, job_id: int) -> None:
        rows = random.randint(1_000, 50_000)
        duration = random.uniform(JOB_MIN_SECONDS, JOB_MAX_SECONDS)
        log.info("job %d: generating %d synthetic rows (~%.1f s)", job_id, rows, duration)
        end = time.monotonic() + duration
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(STEP, left))  # one "batch" of rows
            self.beat()
        self.jobs_done += 1
        log.info("job %d: done (%d jobs so far)", job_id, self.jobs_done)

    def idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.stopping and (left := end - time.monotonic()) > 0:
            time.sleep(min(STEP, left))
            self.beat()

    def run(self) -> int:
        log.info("synth-worker %s starting (heartbeat %s)", APP_VERSION, HEARTBEAT)
        self.beat(force=True)
        job_id = 0
        while not self.stopping:
            job_id += 1
            self.run_job(job_id)
            self.idle(IDLE_SECONDS)
        log.info("synth-worker %s stopped cleanly after %d jobs", APP_VERSION, self.jobs_done)
        HEARTBEAT.unlink(missing_ok=True)
        return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    worker = Worker()
    signal.signal(signal.SIGTERM, worker.request_stop)
    signal.signal(signal.SIGINT, worker.request_stop)
    return worker.run()


if __name__ == "__main__":
    raise SystemExit(main())
