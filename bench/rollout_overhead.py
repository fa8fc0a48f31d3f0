"""Rollout overhead of Berth's core engine (issue: core engine).

overhead = wall time of `berth apply` (a subprocess, as users run it) for one v1 -> v2
start-first replacement of a 1-replica busybox httpd service
           MINUS the image's own start-to-healthy time, measured in the same run: docker
create + start of the same image on the same network, then GET /health on its IP every
10 ms until 200.

The service has no Docker healthcheck, so the gate is Berth's HTTP probe alone:
interval 50 ms, healthy_threshold 1 (one passing probe opens the gate; the image is
healthy as soon as httpd listens, so a threshold of 2 would only add one 50 ms interval).
No proxy: this isolates the engine (plan, create, gate, retire) from nginx.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PROJECT_LABEL,
    PYTHON,
    ROOT,
    Applied,
    Stack,
    client,
    docker_events,
    interference_note,
    median,
    must_apply,
    phase_breakdown,
    stack,
    table,
    verdict,
)

from tests.support.images import ensure_app_image

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
TARGET_MS = 300.0
TAGS = ("1.0.0", "2.0.0")


def compose() -> dict[str, object]:
    return {
        "services": {
            "api": {
                "image": "berth-test/app",
                "init": True,
                "expose": ["8000"],
                "stop_grace_period": "5s",
                "x-berth": {
                    "strategy": "start-first",
                    "health": {
                        "path": "/health",
                        "port": 8000,
                        "interval": "50ms",
                        "timeout": "1s",
                        "healthy_threshold": 1,
                    },
                    "progress_deadline": "30s",
                },
            }
        }
    }


def http_ok(ip: str, path: str = "/health") -> bool:
    conn = http.client.HTTPConnection(ip, 8000, timeout=0.5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def image_start_to_healthy(api: object, s: Stack, tag: str, network: str, n: int) -> float:
    """create + start of the image on the stack's network, poll /health at 10 ms -> seconds."""
    t0 = time.monotonic()
    c = api.containers.create(  # type: ignore[attr-defined]
        f"berth-test/app:{tag}",
        init=True,
        network=network,
        labels={PROJECT_LABEL: s.project, "berth.bench": "probe"},
        name=f"{s.project}-probe-{n}",
    )
    try:
        c.start()
        ip = ""
        deadline = t0 + 30
        while time.monotonic() < deadline:
            if not ip:
                c.reload()  # the IP is known only after start; this inspect counts
                ip = c.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
            if ip and http_ok(ip):
                return time.monotonic() - t0
            time.sleep(0.01)
        raise RuntimeError("the image never became healthy")
    finally:
        c.remove(force=True)


def berth_startup() -> float:
    """Interpreter + import cost of the CLI (part of the overhead every apply pays)."""
    t0 = time.monotonic()
    subprocess.run(
        [PYTHON, "-m", "controller", "--version"], check=True, capture_output=True, cwd=ROOT
    )
    return time.monotonic() - t0


def main() -> int:
    api = client()
    for tag in TAGS:
        ensure_app_image(tag, client=api)
    rows = []
    overheads: list[float] = []
    applies: list[float] = []
    images: list[float] = []
    breakdowns: list[list[tuple[str, float]]] = []
    to_cut: list[float] = []
    with stack("bro") as s:
        s.write_compose(compose())
        s.write_desired({"api": {"tag": TAGS[0], "replicas": 1}})
        must_apply(s, "initial")
        network = f"{s.project}_default"
        api.networks.get(network)  # the compose default network Berth created
        # warm-up (page cache, first-run costs), not recorded
        image_start_to_healthy(api, s, TAGS[0], network, 0)
        for i in range(1, RUNS + 1):
            tag = TAGS[i % 2]
            s.write_desired({"api": {"tag": tag, "replicas": 1}})
            a: Applied = must_apply(s, f"-> {tag}")
            img = image_start_to_healthy(api, s, tag, network, i)
            over = a.seconds - img
            overheads.append(over)
            applies.append(a.seconds)
            images.append(img)
            b = phase_breakdown(a)
            last: dict[str, float] = {}
            for t, what in docker_events(api, a.t0, a.t1, s.project):
                key = "engine: " + what
                if key not in dict(b):
                    b.append((key, t - a.t0))
                last[key + " (last)"] = t - a.t0
            b += [(k, v) for k, v in last.items() if abs(v - dict(b)[k[:-7]]) > 1e-3]
            breakdowns.append(b)
            cut = dict(b).get("cutover")
            if cut is not None:
                to_cut.append(cut - img)
            rows.append(
                (i, tag, f"{a.seconds * 1000:.0f}", f"{img * 1000:.0f}", f"{over * 1000:.0f}")
            )
        note = interference_note(s.project)
    startup = median([berth_startup() for _ in range(5)])
    api.close()

    med = median(overheads)
    # breakdown: median time from apply start to the first event of each phase
    phases: dict[str, list[float]] = {}
    for b in breakdowns:
        for phase, t in b:
            phases.setdefault(phase, []).append(t)
    brows = [
        (phase, f"{median(ts) * 1000:.0f}")
        for phase, ts in sorted(phases.items(), key=lambda kv: median(kv[1]))
    ]
    print("## Rollout overhead (core engine)\n")
    print(
        "One start-first replacement of a 1-replica busybox httpd service by `berth apply` "
        "(subprocess), health probe interval 50 ms, **healthy_threshold 1**, no Docker "
        "healthcheck, no proxy. Overhead = apply wall time - the image's own start-to-healthy "
        "time (docker create+start on the same network, GET /health on its IP every 10 ms), "
        f"measured right after each apply. Tags alternate 1.0.0 ↔ 2.0.0; {RUNS} runs.\n"
    )
    print(table(("run", "to tag", "apply ms", "image start→healthy ms", "overhead ms"), rows))
    print()
    print(
        table(
            ("metric", "median", "target", "verdict"),
            [
                (
                    "overhead",
                    f"{med * 1000:.0f} ms",
                    f"≤ {TARGET_MS:.0f} ms",
                    verdict(med * 1000 <= TARGET_MS),
                ),
                (
                    "overhead to cut-over (apply start → `cutover` line - image start→healthy)",
                    f"{median(to_cut) * 1000:.0f} ms",
                    "",
                    "",
                ),
                ("`berth apply` wall time", f"{median(applies) * 1000:.0f} ms", "", ""),
                ("image start→healthy", f"{median(images) * 1000:.0f} ms", "", ""),
                (
                    "CLI start-up (`python -m controller --version`)",
                    f"{startup * 1000:.0f} ms",
                    "",
                    "",
                ),
            ],
        )
    )
    print(
        "\nBreakdown — median ms from `berth apply` start to the first progress line of each "
        "phase (the process start-up and config load come before the first line):\n"
    )
    brows.append(("exit", f"{median(applies) * 1000:.0f}"))
    print(table(("phase", "ms since apply start"), brows))
    print(f"\n_{note}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
