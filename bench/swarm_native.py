"""Native Docker Swarm rollouts on a real 3-node swarm: the baseline of issue 14.

A 1 manager + 2 worker docker-in-docker swarm (tests/support/swarm.py) with its registry;
a replicated service of the 2 MB busybox app image, 3 replicas, endpoint mode dnsrr on an
attachable overlay (no IPVS here), a Docker healthcheck every 1 s (retries 2), and

    update_config:   parallelism 1, delay 0, order start-first, monitor 5 s,
                     failure_action rollback, max_failure_ratio 0
    rollback_config: parallelism 1, delay 0, order start-first, monitor 5 s

i.e. what `docker service update --update-order start-first --update-monitor 5s
--update-failure-action rollback` sets. Measured, from the update call (Docker SDK,
`Service.update(image=...)`, what `docker service update --image` sends):

- good -> good (1.0.0 <-> 2.0.0 alternating): until UpdateStatus.State is `completed`;
  swarm's own StartedAt -> CompletedAt is reported beside it;
- good -> bad, two kinds of bad image: the app image's `crash` mode (exits 1 after 0.3 s)
  and its `unhealthy` mode (runs, `/health` answers 404 forever, so the Docker healthcheck
  fails): until `rollback_started` and until `rollback_completed`.

Wall times are client-side (polling every 100 ms). Nothing is asserted.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import client, interference_note, median, table

from tests.support.images import ensure_app_image
from tests.support.swarm import Swarm, start_swarm
from tests.support.swarm_services import (
    app_healthcheck,
    create_app_service,
    create_overlay,
    docker_time,
    start_first,
    task_errors,
    update_status,
    wait_running,
)

GOOD_RUNS = int(os.environ.get("BENCH_RUNS", "4"))
BAD_RUNS = int(os.environ.get("BENCH_BAD_RUNS", "2"))
MONITOR_S = 5
REPLICAS = 3


def _update(
    service: Any, image: str, until: tuple[str, ...], timeout: float = 180
) -> dict[str, Any]:
    """Update the image; return {state: seconds since the call} for each state in `until`
    as first seen, plus swarm's own duration when it reports one."""
    before = update_status(service).get("StartedAt")
    t0 = time.monotonic()
    service.update(image=image)
    seen: dict[str, Any] = {}
    while time.monotonic() - t0 < timeout:
        st = update_status(service)
        state = st.get("State", "")
        if st.get("StartedAt") != before and state in until and state not in seen:
            seen[state] = time.monotonic() - t0
            if state == until[-1]:
                if st.get("CompletedAt") and st.get("StartedAt"):
                    seen["swarm"] = docker_time(st["CompletedAt"]) - docker_time(st["StartedAt"])
                seen["message"] = st.get("Message", "")
                return seen
        time.sleep(0.1)
    raise TimeoutError(f"update to {image}: saw {seen}; tasks {task_errors(service)}")


def _service(swarm: Swarm, image: str) -> Any:
    api = swarm.manager.client
    create_overlay(api, "bench")
    update, rollback = start_first(MONITOR_S)
    service = create_app_service(
        api,
        "app",
        image,
        network="bench",
        replicas=REPLICAS,
        update_config=update,
        rollback_config=rollback,
        healthcheck=app_healthcheck(),
    )
    wait_running(service, REPLICAS)
    return service


Runs = list[dict[str, Any]]


def measure(swarm: Swarm, refs: dict[str, str]) -> tuple[Runs, Runs]:
    service = _service(swarm, refs["1.0.0"])
    good: Runs = []
    current = "1.0.0"
    for _ in range(GOOD_RUNS):
        target = "2.0.0" if current == "1.0.0" else "1.0.0"
        r = _update(service, refs[target], ("updating", "completed"))
        r["to"] = target
        good.append(r)
        current = target
        wait_running(service, REPLICAS)
    bad: Runs = []
    for kind in ("crash", "unhealthy"):
        for _ in range(BAD_RUNS):
            r = _update(service, refs[kind], ("rollback_started", "rollback_completed"))
            r["kind"] = kind
            bad.append(r)
            wait_running(service, REPLICAS)
    return good, bad


def main() -> int:
    api = client()
    t0 = time.monotonic()
    swarm = start_swarm(managers=1, workers=2, client=api)
    try:
        refs = {
            "1.0.0": swarm.push(ensure_app_image("1.0.0", client=api)),
            "2.0.0": swarm.push(ensure_app_image("2.0.0", client=api)),
            "crash": swarm.push(ensure_app_image("2.0.0-crash", mode="crash", client=api)),
            "unhealthy": swarm.push(
                ensure_app_image("2.0.0-unhealthy", mode="unhealthy", client=api)
            ),
        }
        rss = swarm.rss_bytes()
        good, bad = measure(swarm, refs)
        note = interference_note()
    finally:
        swarm.teardown()
    report(swarm, rss, good, bad, note)
    print(f"\n_(swarm_native took {time.monotonic() - t0:.0f} s)_")
    return 0


def report(
    swarm: Swarm, rss: int, good: list[dict[str, Any]], bad: list[dict[str, Any]], note: str
) -> None:
    t = swarm.timings
    print("## Native Swarm rollouts (issue 14 baseline)\n")
    print(
        f"A real swarm on this machine: 1 manager + 2 workers (docker-in-docker, Docker "
        f"20.10 in each), up in {t['bring_up']:.1f} s (engines {t['engines']:.1f} s, "
        f"init + joins + Ready {t['swarm']:.1f} s), {rss / 2**20:.0f} MiB RSS for the 3 "
        f"nodes and the registry. Service: {REPLICAS} replicas of the busybox app, dnsrr, "
        f"healthcheck every 1 s; `--update-order start-first --update-parallelism 1 "
        f"--update-delay 0 --update-monitor {MONITOR_S}s --update-failure-action rollback`, "
        f"rollback start-first with a {MONITOR_S} s monitor. Seconds from the update call.\n"
    )
    good_rows = [
        (i + 1, r["to"], f"{r.get('updating', float('nan')):.1f}", f"{r['completed']:.1f}",
         f"{r.get('swarm', float('nan')):.1f}")
        for i, r in enumerate(good)
    ]  # fmt: skip
    print(
        table(("run", "to", "→ updating", "→ completed", "swarm StartedAt→CompletedAt"), good_rows)
    )
    print(
        f"\nGood → good, median: **{median([r['completed'] for r in good]):.1f} s** "
        f"({len(good)} runs).\n"
    )
    rows = [
        (i + 1, r["kind"], f"{r['rollback_started']:.1f}", f"{r['rollback_completed']:.1f}",
         str(r.get("message", ""))[:70])
        for i, r in enumerate(bad)
    ]  # fmt: skip
    header = ("run", "bad image", "→ rollback_started", "→ rollback_completed", "swarm's message")
    print(table(header, rows))
    for kind in ("crash", "unhealthy"):
        done = [r["rollback_completed"] for r in bad if r["kind"] == kind]
        print(f"\nGood → {kind} image, median until rolled back: **{median(done):.1f} s**.")
    print(
        "\nIssue 14's targets for Berth's Swarm backend: ≤ 0.5 x the good → good time, "
        "0 failed requests.\n"
    )
    print(note)


if __name__ == "__main__":
    raise SystemExit(main())
