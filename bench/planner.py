"""Planner speed: `plan(targets, observed)` for 1,000 services x 3 replicas (pure, no Docker).

Synthetic state built with tests/unit/builders.py, across 20 projects of 50 services:
90 % converged, 5 % replace (3 old-revision containers), 3 % scale-up (2 of 3 running,
one exited), 2 % create (nothing running). The revision hash is computed inside `plan`
(Target.revision is a property), so it is part of the measured time.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median, pct, table, verdict

from controller.core.model import ContainerState, Observed, ObservedContainer, Target
from controller.core.plan import plan
from tests.unit.builders import container, target

SERVICES = 1000
REPLICAS = 3
RUNS = 50
TARGET_MS = 50.0


def world() -> tuple[list[Target], Observed, dict[str, int]]:
    targets: list[Target] = []
    containers: list[ObservedContainer] = []
    mix = {"converged": 0, "replace": 0, "scale-up": 0, "create": 0}
    for i in range(SERVICES):
        t = target(f"svc{i:04d}", tag="2.0.0", replicas=REPLICAS, project=f"p{i % 20:02d}")
        targets.append(t)
        bucket = i % 100
        if bucket < 90:
            mix["converged"] += 1
            containers += [container(t, n) for n in range(1, REPLICAS + 1)]
        elif bucket < 95:
            mix["replace"] += 1
            containers += [
                container(t, n, revision=f"old{i:013d}", tag="1.0.0")
                for n in range(1, REPLICAS + 1)
            ]
        elif bucket < 98:
            mix["scale-up"] += 1
            containers += [container(t, n) for n in range(1, REPLICAS)]
            containers.append(container(t, REPLICAS, state=ContainerState.EXITED))
        else:
            mix["create"] += 1
    return targets, Observed(tuple(containers)), mix


def main() -> int:
    targets, observed, _mix = world()
    first = plan(targets, observed)  # warm-up; also a sanity check of the mix
    kinds: dict[str, int] = {}
    for a in first.actions:
        kinds[a.kind.value] = kinds.get(a.kind.value, 0) + 1
    times: list[float] = []
    gc.collect()
    for _ in range(RUNS):
        t0 = time.perf_counter()
        plan(targets, observed)
        times.append((time.perf_counter() - t0) * 1000)
    med, p99 = median(times), pct(times, 99)
    print("## Planner\n")
    print(
        f"`plan(targets, observed)` for {SERVICES} services x {REPLICAS} replicas "
        f"({len(observed.containers)} observed containers), {RUNS} runs after one warm-up. "
        f"Actions planned: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}.\n"
    )
    print(
        table(
            ("metric", "measured", "target", "verdict"),
            [
                ("median", f"{med:.1f} ms", f"≤ {TARGET_MS:.0f} ms", verdict(med <= TARGET_MS)),
                ("p99", f"{p99:.1f} ms", f"≤ {TARGET_MS:.0f} ms", verdict(p99 <= TARGET_MS)),
                ("min / max", f"{min(times):.1f} / {max(times):.1f} ms", "", ""),
            ],
        )
    )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
