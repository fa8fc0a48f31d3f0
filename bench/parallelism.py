"""Parallel rollouts: 10 independent services replaced by one `berth apply` vs one.

Same image and probe as rollout_overhead.py (busybox httpd, probe interval 50 ms,
healthy_threshold 1, no Docker healthcheck, no proxy, no depends_on: all 10 are
independent and Berth rolls them out concurrently). Each measurement is a real
replacement (tags alternate 1.0.0 <-> 2.0.0); median of RUNS.

Three cases. "1 service alone" has nobody on its network who could resolve its name, so
Berth skips DNS gating (no alias swaps, no DNS grace). In a stack of 10 on one network
every service is a DNS client of the others, so each rollout moves aliases (two swaps per
container) and keeps a retiring container for the DNS grace. The scaling target compares
like with like: all 10 replaced at once vs 1 of the same 10 replaced (the other 9 steady).

Beside them, the engine alone (no Berth): N containers of the same image created and
started in parallel through the Engine API on one network, each probed every 50 ms until
its first pass (the workload's gate); seconds to the last one ready, for N = 1 and N = 10.
That is the part of any start-first rollout no controller can skip, and how it scales on
this machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    client,
    engine_alone,
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


def measure(n: int, replaced: int) -> tuple[list[float], str, dict[str, list[tuple[float, float]]]]:
    """`replaced` of `n` services on one network replaced together, RUNS times."""
    times = []
    spread: dict[str, list[tuple[float, float]]] = {}
    with stack(f"bpa{n}x{replaced}") as s:
        s.write_compose(compose(n))
        s.write_desired({f"svc{i}": {"tag": TAGS[0]} for i in range(n)})
        must_apply(s, "initial")
        for r in range(1, RUNS + 1):
            tag = TAGS[r % 2]
            tags = {f"svc{i}": {"tag": tag if i < replaced else TAGS[0]} for i in range(n)}
            s.write_desired(tags)
            a = must_apply(s, f"{replaced} of {n} -> {tag}")
            changed = {svc for _, svc, phase, _ in a.events if phase == "succeeded"}
            if len(changed) != replaced:
                raise RuntimeError(f"expected {replaced} rollouts, saw {sorted(changed)}:\n{a.err}")
            times.append(a.seconds)
            by_phase: dict[str, list[float]] = {}
            for t, _, phase, _ in a.events:
                by_phase.setdefault(phase, []).append(t - a.t0)
            for phase, ts in by_phase.items():
                spread.setdefault(phase, []).append((min(ts), max(ts)))
        note = interference_note(s.project)
    return times, note, spread


def engine_alone_runs(n: int) -> list[float]:
    """RUNS times: seconds until all of n containers created and started at once answer
    their first probe (50 ms apart), on a network of their own."""
    api = client()
    net = api.networks.create(f"bench-parallel-{os.getpid()}-{n}")
    try:
        return [
            engine_alone(api, f"berth-test/app:{TAGS[r % 2]}", net.name, n, passes=1, every=0.05)
            for r in range(RUNS)
        ]
    finally:
        net.remove()
        api.close()


def _runs(xs: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in xs)


def main() -> int:
    api = client()
    for tag in TAGS:
        ensure_app_image(tag, client=api)
    api.close()
    alone, note_a, _ = measure(1, 1)
    one, note1, spread1 = measure(MANY, 1)
    many, note10, spread10 = measure(MANY, MANY)
    bare1, bare10 = engine_alone_runs(1), engine_alone_runs(MANY)
    ma, m1, m10 = median(alone), median(one), median(many)
    b1, b10 = median(bare1), median(bare10)
    ratio = m10 / m1
    print("## Parallel rollouts\n")
    print(
        f"`berth apply` wall time for a start-first replacement of {MANY} independent "
        f"1-replica services at once vs 1 of the same {MANY} (busybox httpd, probe 50 ms, "
        f"healthy_threshold 1; all on one network, so each is a DNS client of the others "
        f"and every rollout moves aliases). Median of {RUNS} replacements each. A service "
        "alone on its network skips DNS gating: shown for reference.\n"
    )
    print(
        table(
            ("case", "median s", "all runs s"),
            [
                ("1 service alone (no DNS gating)", f"{ma:.2f}", _runs(alone)),
                (f"1 of {MANY} services", f"{m1:.2f}", _runs(one)),
                (f"all {MANY} services", f"{m10:.2f}", _runs(many)),
                ("engine alone: 1 container to ready", f"{b1:.2f}", _runs(bare1)),
                (f"engine alone: {MANY} containers to ready", f"{b10:.2f}", _runs(bare10)),
            ],
        )
    )
    print()
    print(
        table(
            ("metric", "measured", "target", "verdict"),
            [
                (
                    f"all {MANY} / 1 of {MANY}",
                    f"{ratio:.2f}x",
                    f"≤ {TARGET_RATIO}x",
                    verdict(ratio <= TARGET_RATIO),
                ),
                (f"all {MANY} / 1 service alone", f"{m10 / ma:.2f}x", "(reference)", ""),
                (f"engine alone, {MANY} / 1", f"{b10 / b1:.2f}x", "(reference)", ""),
                (
                    f"all {MANY} minus engine alone {MANY} / 1 of {MANY} minus engine alone 1",
                    f"{(m10 - b10) / (m1 - b1):.2f}x",
                    "(Berth's own part)",
                    "",
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
    print(
        table(
            ("phase", f"1 of {MANY}", f"all {MANY}: first", f"all {MANY}: last"),
            rows,
        )
    )
    print(f"\n_1 alone: {note_a}; 1 of {MANY}: {note1}; all {MANY}: {note10}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
