"""Idle footprint of `berth run` managing 50 services.

One stack of 50 services, each 1 replica of the busybox httpd app (probe interval 50 ms,
healthy_threshold 1). After every service is ready, the daemon is left idle for IDLE
seconds (default 60, default --resync 30 s, so two full resyncs fall in the window):

- CPU % = (utime + stime) delta from /proc/PID/stat over the window / wall time
- RSS = max VmRSS from /proc/PID/status, sampled every second
- Docker API calls per idle minute: berth talks to the engine through a counting
  subclass of tests/support/daemon.SocketProxy (DOCKER_HOST=unix://...), which counts
  connections and HTTP requests (by request line) and tallies them by endpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interference_note, stack, table, verdict
from rollout_overhead import compose as one_service

from tests.support.daemon import SocketProxy, berth_run
from tests.support.images import ensure_app_image

SERVICES = int(os.environ.get("BENCH_SERVICES", "50"))
IDLE = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
TARGET_CPU = 1.0
TARGET_RSS_MB = 80.0
REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP/1\.[01]\r\n")


class CountingProxy(SocketProxy):
    """SocketProxy that counts connections and requests (request line at a chunk start)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: Counter[str] = Counter()

    def reset(self) -> None:
        with self.lock:
            self.connections = 0
            self.requests = Counter()

    def _count(self, data: bytes) -> None:
        m = REQUEST_LINE.match(data)
        if m:
            path = m.group(2).decode(errors="replace").split("?", 1)[0]
            path = re.sub(r"^/v[0-9.]+", "", path)
            path = re.sub(r"/[0-9a-f]{12,64}(?=/|$)", "/{id}", path)
            with self.lock:
                self.requests[f"{m.group(1).decode()} {path}"] += 1

    def _serve(self, client: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.connect(self.upstream)

        def pump(src: socket.socket, dst: socket.socket, count: bool) -> None:
            with contextlib.suppress(OSError):
                while not self._stop.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    if count:
                        self._count(data)
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=pump, args=(client, up, True), daemon=True).start()
        pump(up, client, False)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime = field 14, stime = field 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def ready_count(run: Any) -> int:
    text = run.get("/metrics").text
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("berth_service_replicas{")
        and 'state="ready"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
    )


def main() -> int:
    ensure_app_image("1.0.0")
    tmp = tempfile.mkdtemp(prefix="berth-bench-sock-")
    proxy = CountingProxy(os.path.join(tmp, "docker.sock"))
    proxy.start()
    try:
        with stack("bfp") as s:
            api = one_service()["services"]["api"]  # type: ignore[index]
            s.write_compose({"services": {f"svc{i:02d}": api for i in range(SERVICES)}})
            s.write_desired({f"svc{i:02d}": {"tag": "1.0.0"} for i in range(SERVICES)})
            log = s.root / "berth-run.log"
            t_start = time.monotonic()
            with berth_run(
                s.desired_dir, s.state_dir, log=log, docker_host=f"unix://{proxy.path}"
            ) as run:
                deadline = time.monotonic() + 300
                while ready_count(run) < SERVICES:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {ready_count(run)}/{SERVICES} ready")
                    time.sleep(0.5)
                converge = time.monotonic() - t_start
                time.sleep(2.0)  # let the last rollouts' bookkeeping finish
                pid = run.proc.pid
                converge_rss = rss_mb(pid)
                proxy.reset()
                c0, w0 = cpu_seconds(pid), time.monotonic()
                rss_max = converge_rss
                while time.monotonic() - w0 < IDLE:
                    time.sleep(1.0)
                    rss_max = max(rss_max, rss_mb(pid))
                c1, w1 = cpu_seconds(pid), time.monotonic()
                with proxy.lock:
                    conns = proxy.connections
                    reqs = Counter(proxy.requests)
            note = interference_note(s.project)
    finally:
        proxy.stop()
        with contextlib.suppress(OSError):
            os.unlink(proxy.path)
            os.rmdir(tmp)
    cpu = (c1 - c0) / (w1 - w0) * 100
    per_min = 60.0 / (w1 - w0)
    total = sum(reqs.values())
    print("## Idle footprint\n")
    print(
        f"`berth run` (default --resync 30 s) managing {SERVICES} services x 1 replica "
        f"(busybox httpd, probe 50 ms); converged in {converge:.1f} s; then idle for "
        f"{w1 - w0:.0f} s. Docker traffic counted by a socket proxy in front of the engine.\n"
    )
    print(
        table(
            ("metric", "measured", "target", "verdict"),
            [
                (
                    "CPU (utime+stime / wall)",
                    f"{cpu:.2f} %",
                    f"≤ {TARGET_CPU:.0f} %",
                    verdict(cpu <= TARGET_CPU),
                ),
                (
                    "RSS max (VmRSS)",
                    f"{rss_max:.1f} MB",
                    f"≤ {TARGET_RSS_MB:.0f} MB",
                    verdict(rss_max <= TARGET_RSS_MB),
                ),
                ("RSS right after converging", f"{converge_rss:.1f} MB", "", ""),
                ("Docker API requests per idle minute", f"{total * per_min:.0f}", "", ""),
                ("new Docker API connections per idle minute", f"{conns * per_min:.0f}", "", ""),
            ],
        )
    )
    if reqs:
        print("\nRequests in the idle window by endpoint (ids collapsed):\n")
        print(table(("endpoint", "count"), reqs.most_common(12)))
    print(f"\n_{note}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
