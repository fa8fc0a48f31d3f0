"""The report of bench/swarm_berth.py: the runs table, the summary and the verdict."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Sequence
from typing import Any

from _common import median, table
from _swarm_workload import (
    BAD,
    GET_RATE,
    GET_THREADS,
    LONG_S,
    MONITOR_S,
    REPLICAS,
    STOP_GRACE_S,
    TAIL_S,
    WARM_S,
    Run,
)

from tests.support.load import Sample
from tests.support.swarm import Swarm


def _failures(samples: Sequence[Sample]) -> str:
    c = collections.Counter(
        f"{s.kind} {s.status if s.status is not None else s.error.split(':')[0]}"
        for s in samples
        if not s.ok
    )
    return ", ".join(f"{n}x {what}" for what, n in c.most_common(4)) or "—"


def _row(r: Run) -> tuple[object, ...]:
    new = r.served(r.to, last=False) if r.kind == "good" else float("nan")
    old = r.served(r.before, last=True) if r.kind == "good" else float("nan")
    return (
        r.side,
        r.kind,
        f"{r.before} → {r.to}",
        r.load,
        f"{r.seconds:.1f}",
        len(r.samples),
        len(r.failed),
        _failures(r.samples),
        "—" if new != new else f"{new:.1f}",
        "—" if old != old else f"{old:.1f}",
    )


def report(
    swarm: Swarm,
    runs: list[Run],
    info: dict[str, Any],
    errors: dict[str, str],
    note: str,
    load_before: str,
) -> None:
    _preamble(swarm, load_before)
    _runs(runs, info, errors)
    _summary(runs)
    _verdict(runs)
    _berth_details(runs)
    print()
    print(note)


def _preamble(swarm: Swarm, load_before: str) -> None:
    t = swarm.timings
    print("## Berth's Swarm backend vs native `docker service update` (issue 14)\n")
    print(
        "Command: `.venv/bin/python bench/swarm_berth.py` (run alone, not by run_all.sh, on "
        f"{dt.date.today().isoformat()}; the script as committed with this section). "
        f"Load average before: {load_before}.\n"
    )
    print(
        f"One swarm: 1 manager + 2 workers (docker-in-docker, Docker 20.10), up in "
        f"{t['bring_up']:.1f} s. Both sides on it, one after the other, same app "
        f"({REPLICAS} replicas of the busybox app, Docker healthcheck every 1 s, retries 2, "
        f"stop grace {STOP_GRACE_S:g} s), same edge image (`berth-test/nginx:1` as a Swarm "
        f"service on the manager, host-mode port) and same load: {GET_THREADS} GET threads "
        f"paced to {GET_RATE:g} GET/s in total, 2 long GETs ({LONG_S:g} s) and a slow POST "
        f"(2 s, 20 kB) in a loop; keep-alive clients never retry. Load from {WARM_S:g} s "
        f"before the change to {TAIL_S:g} s after it is done; every failed request counts.\n"
    )
    print(
        "- **native**: `docker service update --image` with `--update-order start-first "
        f"--update-parallelism 1 --update-delay 0 --update-monitor {MONITOR_S}s "
        "--update-failure-action rollback` (rollback start-first, same monitor); the edge "
        "resolves the dnsrr service per request (`resolver 127.0.0.11 valid=1s ipv6=off; "
        "set $up app-native; proxy_pass http://$up:8000;`, `proxy_next_upstream error "
        "timeout`). Seconds: update call → `completed` (good) / `rollback_completed` (bad)."
    )
    print(
        "- **berth**: `berth apply` from the host with `--docker-host tcp://MANAGER:2375` on "
        "the stack of tests/swarm/berth_stack.py: `x-berth.backend: swarm`, dynamic switch, "
        "`x-berth.health` GET /health every 200 ms, healthy_threshold 2, progress deadline "
        "20 s, drain timeout 20 s; each replica a one-replica dnsrr service. Seconds: wall "
        "time of the `berth apply` process (CLI start-up included; a bad image: until it "
        "exits non-zero, rolled back).\n"
    )


def _runs(runs: list[Run], info: dict[str, Any], errors: dict[str, str]) -> None:
    if "first_apply" in info:
        print(f"Berth's first apply (3 replicas + edge created): {info['first_apply']:.1f} s.\n")
    header = (
        "side", "kind", "change", "load", "seconds", "requests", "failed", "failures",
        "new tag first served (s)", "old tag last served (s)",
    )  # fmt: skip
    print(table(header, [_row(r) for r in runs]))
    print()
    for side, msg in errors.items():
        print(f"**{side} side failed**: `{msg}`\n")


def _summary(runs: list[Run]) -> None:
    summary = []
    for side in ("native", "berth"):
        good = [r for r in runs if r.side == side and r.kind == "good"]
        ka = [r.seconds for r in good if r.load == "keep-alive"]
        row: list[object] = [side, f"{median(ka):.1f}" if ka else "—"]
        row.append(sum(len(r.failed) for r in good if r.load == "keep-alive"))
        row.append(sum(len(r.failed) for r in good if r.load == "per-request"))
        for kind in BAD:
            bad = [r for r in runs if r.side == side and r.kind == kind]
            row.append(
                f"{median([r.seconds for r in bad]):.1f} ({sum(len(r.failed) for r in bad)} failed)"
                if bad else "—"
            )  # fmt: skip
        summary.append(row)
    print(
        table(
            ("side", "good update, median s (keep-alive)", "failed (keep-alive)",
             "failed (per-request)", "crash rolled back, s", "unhealthy rolled back, s"),
            summary,
        )
    )  # fmt: skip


def _verdict(runs: list[Run]) -> None:
    nat = [r.seconds for r in runs if r.side == "native" and r.kind == "good"]
    brt = [r.seconds for r in runs if r.side == "berth" and r.kind == "good"]
    if nat and brt:
        ratio = median(brt) / median(nat)
        failed = sum(len(r.failed) for r in runs if r.side == "berth" and r.kind == "good")
        print(
            f"\nBerth / native, good update (median of all good runs): **{ratio:.2f}x** "
            f"({median(brt):.1f} s / {median(nat):.1f} s). Issue 14's targets: ≤ 0.5x "
            f"({'met' if ratio <= 0.5 else 'NOT met'}), 0 failed requests "
            f"({'met' if failed == 0 else f'NOT met: {failed}'}).\n"
        )


def _berth_details(runs: list[Run]) -> None:
    for r in runs:
        if r.side == "berth" and r.kind != "good":
            tail = " / ".join(r.detail.get("tail", []))
            print(f"- berth, {r.kind} image: apply exit {r.detail.get('code')}; last lines: "
                  f"`{tail[:300]}`")  # fmt: skip
    phased = [r for r in runs if r.side == "berth" and r.kind == "good" and r.detail.get("phases")]
    if phased:
        names = [p for p, _ in phased[0].detail["phases"]]
        at = [dict(r.detail["phases"]) for r in phased]
        steps = ", ".join(
            f"{name} {median([a[name] for a in at if name in a]):.2f}" for name in names
        )
        print(
            f"\nBerth's good updates from apply's progress lines, median s from the change "
            f"({len(phased)} runs): {steps}."
        )
