"""Where a Berth rollout's seconds go on the Swarm backend: a trace, not a comparison.

The swarm, stack and load of bench/swarm_berth.py (1 manager + 2 dind workers, 3 replicas of
the busybox app, Docker healthcheck every 1 s, `x-berth.health` every 200 ms, 4 paced GET
threads at 200 GET/s, 2 long GETs of 3 s and a slow POST, keep-alive, started 1 s before the
change). For each of BENCH_RUNS good updates (1.0.0 <-> 2.0.0, default 6) it prints, in
seconds from the change:

- Berth's progress lines (create, cutover, retire, succeeded);
- per new task: its node, when Swarm reported it `running` (after its first passing
  Docker healthcheck) and the gap to Berth's cut-over;
- each node's engine events for the app's containers and overlay (create, connect, start,
  stop, destroy; `network destroy` / `create` is the node dropping and rebuilding the
  overlay), with BENCH_EVENTS=1.

Nothing is asserted; the summary line gives the median gap between the last task `running`
and the cut-over.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import client, load_average, parse_events
from _swarm_workload import GET_RATE, GET_THREADS, LONG_S, TAIL_S, WARM_S

from controller.adapters._docker_rows import parse_docker_time
from tests.support.images import ensure_app_image, ensure_nginx_image
from tests.support.load import Load
from tests.support.swarm import Node, Swarm, start_swarm
from tests.swarm.berth_stack import SwarmStack, new_stack

RUNS = int(os.environ.get("BENCH_RUNS", "6"))
EVENTS = os.environ.get("BENCH_EVENTS") == "1"
PORT = 18561


def follow(node: Node, out: list[tuple[float, str, str, str, str]]) -> None:
    """Append (time, node, type, action, name) for each engine event, until teardown."""
    try:
        for e in node.client.api.events(decode=True):
            name = str(((e.get("Actor") or {}).get("Attributes") or {}).get("name", ""))
            row = (e.get("timeNano", 0) / 1e9, node.name, e.get("Type", ""), e.get("Action", ""))
            out.append((*row, name))
    except Exception:  # the node went away at teardown
        return


def running_at(stack: SwarmStack, tag: str, nodes: dict[str, str]) -> list[tuple[str, float]]:
    """(node, when Swarm reported it running) for each app task of `tag` now running."""
    out = []
    for t in stack.app_tasks():
        spec = ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")
        status = t.get("Status") or {}
        if f":{tag}" in str(spec) and status.get("State") == "running":
            when = parse_docker_time(str(status.get("Timestamp", ""))) or 0.0
            out.append((nodes.get(str(t.get("NodeID")), "?"), when))
    return out


def one_update(stack: SwarmStack, swarm: Swarm, tag: str, events: list[Any]) -> float | None:
    nodes = {n["ID"]: n["Description"]["Hostname"] for n in swarm.manager.client.api.nodes()}
    load = Load(
        stack.url, keep_alive=True, get_threads=GET_THREADS, get_rate=GET_RATE,
        long_seconds=LONG_S,
    )  # fmt: skip
    load.start()
    time.sleep(WARM_S)
    stack.write(tag)
    t0 = time.time()
    res = stack.berth("apply")
    t1 = time.time()
    time.sleep(TAIL_S)
    load.stop()
    phases = {p: t - t0 for t, _, p, _ in parse_events(res.err.splitlines())}
    failed = sum(1 for s in load.samples if not s.ok)
    print(
        f"\n-> {tag}: exit {res.code}, {t1 - t0:.2f} s, {failed} failed of {len(load.samples)}; "
        + ", ".join(f"{p} {phases[p]:.2f}" for p in ("create", "cutover", "retire", "succeeded")
                    if p in phases)
    )  # fmt: skip
    tasks = running_at(stack, tag, nodes)
    for node, when in sorted(tasks, key=lambda x: x[1]):
        print(f"   task on {node}: running {when - t0:.2f}")
    if EVENTS:
        for t, node, kind, action, name in sorted(events):
            if (
                t0 - 3.0 < t < t1
                and kind in ("container", "network")
                and (action in ("create", "connect", "start", "stop", "destroy", "disconnect"))
            ):
                print(f"   {t - t0:6.2f} {node:>14} {kind:9} {action:10} {name[-40:]}")
    if "cutover" not in phases or not tasks:
        return None
    return phases["cutover"] - (max(w for _, w in tasks) - t0)


def main() -> int:
    api = client()
    print(f"load average before: {load_average()}")
    shared = tempfile.mkdtemp(prefix="berth-bench-trace-")
    swarm = start_swarm(managers=1, workers=2, client=api, shared=shared)
    swarm.shared = shared
    events: list[Any] = []
    gaps: list[float] = []
    try:
        for tag in ("1.0.0", "2.0.0"):
            swarm.push(ensure_app_image(tag, client=api))
        swarm.push(ensure_nginx_image(client=api))
        stack = new_stack(swarm, PORT)
        stack.write("1.0.0")
        first = stack.berth("apply")
        if first.code != 0:
            raise SystemExit(f"first apply exited {first.code}: {first.err[-2000:]}")
        for node in swarm.nodes:
            threading.Thread(target=follow, args=(node, events), daemon=True).start()
        current = "1.0.0"
        for _ in range(RUNS):
            current = "2.0.0" if current == "1.0.0" else "1.0.0"
            gap = one_update(stack, swarm, current, events)
            if gap is not None:
                gaps.append(gap)
    finally:
        swarm.teardown()
        shutil.rmtree(shared, ignore_errors=True)
    if gaps:
        print(
            f"\nlast task running -> cut-over: median {statistics.median(gaps):.2f} s, "
            f"min {min(gaps):.2f}, max {max(gaps):.2f} ({len(gaps)} updates)"
        )
    print(f"load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
