"""Parallel rollouts: 10 independent services replaced by one `berth apply` vs one alone.

Same image and probe as rollout_overhead.py (busybox httpd, probe interval 50 ms,
healthy_threshold 1, no Docker healthcheck, no proxy, no depends_on: all 10 are
independent and Berth rolls them out concurrently). Each measurement is a real
replacement (tags alternate 1.0.0 <-> 2.0.0); median of RUNS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    client,
    interference_note,
    median,
    must_apply,
    stack,
    table,
    verdict,
)
from rollout_overhead import compose as one_service

from tests.support.images import ensure_app_image

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
MANY = 10
TARGET_RATIO = 1.5
TAGS = ("1.0.0", "2.0.0")


def compose(n: int) -> dict[str, Any]:
    api = one_service()["services"]["api"]  # type: ignore[index]
    return {"services": {f"svc{i}": api for i in range(n)}}


def measure(n: int) -> tuple[list[float], str, dict[str, list[tuple[float, float]]]]:
    times = []
    spread: dict[str, list[tuple[float, float]]] = {}
    with stack(f"bpa{n}x") as s:
        s.write_compose(compose(n))
        s.write_desired({f"svc{i}": {"tag": TAGS[0]} for i in range(n)})
        must_apply(s, "initial")
        for r in range(1, RUNS + 1):
            tag = TAGS[r % 2]
            s.write_desired({f"svc{i}": {"tag": tag} for i in range(n)})
            a = must_apply(s, f"{n} x -> {tag}")
            changed = {svc for _, svc, phase, _ in a.events if phase == "succeeded"}
            if len(changed) != n:
                raise RuntimeError(f"expected {n} rollouts, saw {sorted(changed)}:\n{a.err}")
            times.append(a.seconds)
            by_phase: dict[str, list[float]] = {}
            for t, _, phase, _ in a.events:
                by_phase.setdefault(phase, []).append(t - a.t0)
            for phase, ts in by_phase.items():
                spread.setdefault(phase, []).append((min(ts), max(ts)))
        note = interference_note(s.project)
    return times, note, spread


def main() -> int:
    api = client()
    for tag in TAGS:
        ensure_app_image(tag, client=api)
    api.close()
    one, note1, spread1 = measure(1)
    many, note10, spread10 = measure(MANY)
    m1, m10 = median(one), median(many)
    ratio = m10 / m1
    print("## Parallel rollouts\n")
    print(
        f"`berth apply` wall time for a start-first replacement of {MANY} independent "
        "1-replica services at once vs 1 service alone (busybox httpd, probe 50 ms, "
        f"healthy_threshold 1). Median of {RUNS} replacements each.\n"
    )
    print(
        table(
            ("case", "median s", "all runs s"),
            [
                ("1 service", f"{m1:.2f}", ", ".join(f"{x:.2f}" for x in one)),
                (f"{MANY} services", f"{m10:.2f}", ", ".join(f"{x:.2f}" for x in many)),
            ],
        )
    )
    print()
    print(
        table(
            ("metric", "measured", "target", "verdict"),
            [
                (
                    f"{MANY} services / 1 service",
                    f"{ratio:.2f}x",
                    f"≤ {TARGET_RATIO}x",
                    verdict(ratio <= TARGET_RATIO),
                ),
            ],
        )
    )
    print(
        "\nWhere the time goes — median seconds from apply start to the first / last "
        "progress line of each phase across the services:\n"
    )
    rows = []
    for phase in sorted(spread10, key=lambda p: median([x[0] for x in spread10[p]])):
        one_t = spread1.get(phase)
        rows.append(
            (
                phase,
                f"{median([x[0] for x in one_t]):.2f}" if one_t else "",
                f"{median([x[0] for x in spread10[phase]]):.2f}",
                f"{median([x[1] for x in spread10[phase]]):.2f}",
            )
        )
    print(table(("phase", "1 service", f"{MANY} services: first", f"{MANY} services: last"), rows))
    print(f"\n_1 service: {note1}; {MANY} services: {note10}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
