"""Desired write -> 100 % new (issue 11's target), beside what the engine alone needs for
the same new containers: is the ≤ 0.5 s p50 target above the floor on this machine?

One stack, one run: the workload of bench/traffic_switch.py (a 2-replica busybox `api`
behind `berth-test/nginx:1`, dynamic switch, Berth probe every 100 ms, healthy_threshold
2, `berth run`), the paced keep-alive client (4 pooled connections, ~200 GET/s) running
throughout. Interleaved, DEPLOYS times each:

- **berth**: an atomic write of the desired file; seconds to the end of the last response
  that still carried the older tag (as traffic_switch.py's quiet rows), and to the
  `rollout.cutover` log line.
- **engine alone** (no Berth): what any controller must wait for before it may move
  traffic. Two containers of the same image with the same options (init, the stack's
  network) are created and started in parallel through the Engine API, then each is
  probed at GET /health every 100 ms until 2 passes in a row (the workload's gate). Seconds
  from just before the first create to the second pass of the last container; the
  containers are removed afterwards, outside the timing. nginx is not touched.

Knobs: BENCH_DEPLOYS (default 8). Nothing is asserted.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    client,
    engine_alone,
    free_port,
    interference_note,
    median,
    pct,
    stack,
    table,
    verdict,
)
from cutover_vs_compose import BERTH_SITE, wait_version
from reaction_latency import Tail
from traffic_switch import TAGS, TARGET_FULL_P50, compose, deploy, full_switch, paced_load

from tests.support.daemon import berth_run
from tests.support.images import ensure_app_image, ensure_nginx_image

DEPLOYS = max(2, int(os.environ.get("BENCH_DEPLOYS", "8")))
PROBE_EVERY = 0.1
THRESHOLD = 2


def run(api: Any) -> dict[str, Any]:
    port = free_port()
    files = {"nginx/conf.d/site.conf": BERTH_SITE, "nginx/upstreams/.keep": ""}
    out: dict[str, Any] = {"berth": [], "cut": [], "engine": []}
    with stack("bsf", files) as s:
        s.write_compose(compose(port, "dynamic"))
        s.write_desired({"api": {"tag": TAGS[0]}})
        network = f"{s.project}_backend"
        with berth_run(s.desired_dir, s.state_dir, log=s.root / "run.log") as run:
            tail = Tail(run.log)
            wait_version(port, TAGS[0], timeout=90)
            load = paced_load(port)
            load.start()
            time.sleep(1)
            current, deploys = TAGS[0], []
            for _ in range(DEPLOYS):
                image = f"berth-test/app:{current}"
                out["engine"].append(
                    engine_alone(
                        api, image, network, 2, passes=THRESHOLD, every=PROBE_EVERY, init=True
                    )
                )
                time.sleep(1.0)
                current = TAGS[1] if current == TAGS[0] else TAGS[0]
                t0, _, cut = deploy(s, tail, current)
                deploys.append((current, t0, time.time()))
                if cut is not None:
                    out["cut"].append(cut - t0)
                time.sleep(1.0)
            load.stop()
            samples = load.snapshot()
        out["failed"] = sum(1 for x in samples if not x.ok)
        out["requests"] = len(samples)
        out["note"] = interference_note(s.project)
    out["berth"] = [
        v for tag, t0, t1 in deploys if (v := full_switch(samples, tag, t0, t1)) is not None
    ]
    return out


def main() -> int:
    ensure_nginx_image()
    for tag in TAGS:
        ensure_app_image(tag)
    m = run(client())
    b, e, c = m["berth"], m["engine"], m["cut"]
    print("## Write → 100 % new, beside the engine's own floor (issue 11)\n")
    print(
        "The workload of the traffic-layer section (2-replica busybox `api`, dynamic switch, "
        "probe every 100 ms, healthy_threshold 2, `berth run`), the paced keep-alive client "
        f"(~200 GET/s) throughout; {len(b)} Berth deploys interleaved with {len(e)} "
        "engine-alone runs. Engine alone: 2 containers of the same image and options created "
        "and started in parallel through the Engine API, each probed every 100 ms until 2 "
        "passes in a row; what any controller waits for before it may move traffic.\n"
    )
    rows = [
        (
            "engine alone: create + start 2, until both pass 2 probes",
            f"{median(e):.2f} s",
            f"{pct(e, 90):.2f} s",
            f"{min(e):.2f} s",
        ),
        ("berth: write → `rollout.cutover`", f"{median(c):.2f} s", f"{pct(c, 90):.2f} s", "-"),
        (
            "berth: write → 100 % new",
            f"{median(b):.2f} s",
            f"{pct(b, 90):.2f} s",
            f"{min(b):.2f} s",
        ),
    ]
    print(table(("measure", "p50", "p90", "min"), rows))
    print(
        f"\nFailed requests of the paced client: {m['failed']} of {m['requests']:,}. "
        f"Target ≤ {TARGET_FULL_P50} s p50: Berth {median(b):.2f} s — "
        f"{verdict(median(b) <= TARGET_FULL_P50)}; the engine alone {median(e):.2f} s — "
        f"{'below' if median(e) <= TARGET_FULL_P50 else 'above'} the target. "
        f"Berth's own share (p50 difference): {median(b) - median(e):.2f} s.\n"
    )
    print(f"_{m['note']}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
