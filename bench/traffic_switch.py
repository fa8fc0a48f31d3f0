"""The traffic layer: the dynamic switch (peers set in nginx through Lua) vs the reload switch.

One workload, both modes, one run: a 2-replica busybox httpd `api` behind
`berth-test/nginx:1` (Debian nginx 1.22 with libnginx-mod-http-lua), driven by `berth run`
(each deploy is an atomic write of the desired file). Per mode:

1. nginx CPU per switch: DEPLOYS deploys with no load; nginx's container CPU time (cgroup,
   through the Engine's stats) over those deploys, divided by their number.
2. Keep-alive clients under load: `wrk -t2 -c16` (HTTP/1.1 keep-alive, no retries) runs
   through DEPLOYS deploys; its socket errors and non-2xx answers are the failures.
3. Desired write -> 100 % of traffic on the new revision: a paced keep-alive client
   (tests/support/load.Load, 4 threads, ~200 GET/s), alone (DEPLOYS more deploys) and
   beside wrk; per deploy, the end of the last response that still carried an older tag,
   minus the write; split at the daemon's `rollout.cutover` log line.

Then, dynamic mode only (a canary needs it): time from a canary's first failed response
to its weight 0 (the `rollout.canary` "weight 0" log line), for a revision that fails 1
request in 5 at a 20 % step (analysis: min_requests 20, success_rate 95), and to the last
response it answered.

Knobs: BENCH_DEPLOYS (default 8).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import client, free_port, interference_note, median, pct, stack, table, verdict
from cutover_vs_compose import BERTH_SITE, berth_compose, wait_version
from reaction_latency import TERMINAL, Tail
from reaction_latency import ts as log_ts

from tests.support.daemon import berth_run
from tests.support.images import ensure_app_image, ensure_nginx_image
from tests.support.load import Load

DEPLOYS = max(2, int(os.environ.get("BENCH_DEPLOYS", "8")))
TAGS = ("1.0.0", "2.0.0")
TARGET_FULL_P50 = 0.5  # seconds, daemon path, dynamic switch
WRK_SECONDS = 60


def compose(port: int, mode: str, *, canary: bool = False) -> dict[str, Any]:
    c = berth_compose(port)
    c["x-berth"]["proxy"]["switch"] = mode
    if mode == "dynamic":  # nginx creates its control socket in the directory
        c["services"]["nginx"]["volumes"][1] = "../nginx/upstreams:/etc/nginx/berth"
    if canary:
        c["services"]["api"]["x-berth"]["canary"] = {
            "steps": [20],
            "interval": "3s",
            "analysis": {"min_requests": 20, "success_rate": 95},
        }
    return c


def paced_load(port: int) -> Load:
    """The paced keep-alive client that times the switch: 4 pooled connections, ~200 GET/s."""
    return Load(
        f"http://127.0.0.1:{port}", keep_alive=True, get_threads=4, get_rate=200, extras=False
    )


def nginx_cpu(api: Any, project: str) -> float:
    """CPU seconds nginx's container has used (all its processes, cgroup accounting)."""
    (c,) = api.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=nginx"]
        }
    )
    return float(c.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def deploy(s: Any, tail: Tail, tag: str) -> tuple[float, str, float | None]:
    """Write the tag; (write time, terminal event, time of the `rollout.cutover` line)."""
    tail.lines()
    t0 = time.time()
    s.write_desired({"api": {"tag": tag}})
    cut: list[float] = []

    def done(d: dict[str, object]) -> bool:
        if d.get("service") == "api" and d.get("event") == "rollout.cutover":
            cut.append(log_ts(d))
        return d.get("service") == "api" and d.get("event") in TERMINAL

    end = tail.wait(done, 120)
    return t0, str(end.get("event")), (cut[0] if cut else None)


def full_switch(samples: list[Any], tag: str, t0: float, t1: float) -> float | None:
    """Seconds from the write to the end of the last response in [t0, t1 + 1] that still
    carried another tag than `tag` (None: no new-tag response seen)."""
    window = [x for x in samples if x.start >= t0 and x.start <= t1 + 1 and x.body]
    if not any(x.body.split()[0] == tag for x in window):
        return None
    old = [x.end for x in window if x.body.split()[0] != tag]
    return (max(old) if old else min(x.end for x in window if x.body.split()[0] == tag)) - t0


def run_mode(api: Any, mode: str) -> dict[str, Any]:
    port = free_port()
    files = {"nginx/conf.d/site.conf": BERTH_SITE, "nginx/upstreams/.keep": ""}
    out: dict[str, Any] = {"mode": mode}
    with stack("bts", files) as s:
        s.write_compose(compose(port, mode))
        s.write_desired({"api": {"tag": TAGS[0]}})
        with berth_run(s.desired_dir, s.state_dir, log=s.root / "run.log") as run:
            tail = Tail(run.log)
            wait_version(port, TAGS[0], timeout=90)
            time.sleep(1)
            # 1. nginx CPU per switch, no load
            cpu0 = nginx_cpu(api, s.project)
            for i in range(DEPLOYS):
                deploy(s, tail, TAGS[(i + 1) % 2])
            out["cpu_ms"] = (nginx_cpu(api, s.project) - cpu0) / DEPLOYS * 1000
            current = TAGS[DEPLOYS % 2]
            # 3. write -> 100 % new, the paced keep-alive client alone (no wrk)
            paced = paced_load(port)
            paced.start()
            time.sleep(1)
            quiet = []
            for _ in range(DEPLOYS):
                current = TAGS[1] if current == TAGS[0] else TAGS[0]
                t0, _, cut = deploy(s, tail, current)
                quiet.append((current, t0, time.time(), cut))
                time.sleep(0.5)
            paced.stop()
            calm = paced.snapshot()
            out["quiet_failed"] = sum(1 for x in calm if not x.ok)
            out["quiet_full"] = [
                v for tag, t0, t1, _ in quiet if (v := full_switch(calm, tag, t0, t1)) is not None
            ]
            out["quiet_cut"] = [cut - t0 for _, t0, _, cut in quiet if cut is not None]
            out["quiet_switch"] = [
                v - (cut - t0)
                for tag, t0, t1, cut in quiet
                if cut is not None and (v := full_switch(calm, tag, t0, t1)) is not None
            ]
            # 2. + 3. under load
            wrk = subprocess.Popen(
                ["wrk", "-t2", "-c16", f"-d{WRK_SECONDS}s", f"http://127.0.0.1:{port}/version"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            load = paced_load(port)
            load.start()
            time.sleep(2)
            windows = []
            t_end = time.time() + WRK_SECONDS - 12
            outcomes = []
            for _ in range(DEPLOYS):
                if time.time() > t_end:
                    break
                current = TAGS[1] if current == TAGS[0] else TAGS[0]
                t0, event, _ = deploy(s, tail, current)
                outcomes.append(event)
                windows.append((current, t0, time.time()))
                time.sleep(1.0)
            load.stop()
            report, _ = wrk.communicate(timeout=WRK_SECONDS + 30)
            samples = load.snapshot()
        out["note"] = interference_note(s.project)
    out["wrk"] = parse_wrk(report)
    out["deploys_under_load"] = len(windows)
    out["outcomes"] = outcomes
    out["pooled_failed"] = sum(1 for x in samples if not x.ok)
    out["pooled_requests"] = len(samples)
    full = [full_switch(samples, tag, t0, t1) for tag, t0, t1 in windows]
    out["full"] = [x for x in full if x is not None]
    return out


def parse_wrk(text: str) -> dict[str, int]:
    got = {"requests": 0, "errors": 0, "non2xx": 0}
    if m := re.search(r"(\d+) requests in", text):
        got["requests"] = int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        got["errors"] = sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        got["non2xx"] = int(m.group(1))
    return got


def run_canary(api: Any) -> dict[str, Any]:
    port = free_port()
    files = {"nginx/conf.d/site.conf": BERTH_SITE, "nginx/upstreams/.keep": ""}
    with stack("btc", files) as s:
        s.write_compose(compose(port, "dynamic", canary=True))
        s.write_desired({"api": {"tag": TAGS[0]}})
        with berth_run(s.desired_dir, s.state_dir, log=s.root / "run.log") as run:
            tail = Tail(run.log)
            wait_version(port, TAGS[0], timeout=90)
            load = Load(
                f"http://127.0.0.1:{port}",
                keep_alive=True,
                get_threads=4,
                get_rate=200,
                get_path="/cgi-bin/try",
                extras=False,
            )
            load.start()
            time.sleep(1)
            tail.lines()
            s.write_desired({"api": {"tag": "3.0.0-flaky"}})
            zero: float | None = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for d in tail.lines():
                    msg = str(d.get("message", ""))
                    if d.get("event") == "rollout.canary" and msg.startswith("weight 0"):
                        zero = log_ts(d)
                    if d.get("service") == "api" and d.get("event") in TERMINAL:
                        deadline = 0
                time.sleep(0.02)
            time.sleep(1)
            load.stop()
            samples = load.snapshot()
        note = interference_note(s.project)
    flaky = [x for x in samples if x.body.startswith("3.0.0-flaky")]
    failed = [x for x in flaky if x.status != 200]
    first_error = min(x.end for x in failed) if failed else None
    last_canary = max(x.end for x in flaky) if flaky else None
    return {
        "to_zero": (zero - first_error) if zero and first_error else None,
        "to_last": (last_canary - first_error) if last_canary and first_error else None,
        "canary_requests": len(flaky),
        "canary_failed": len(failed),
        "note": note,
    }


def main() -> int:
    ensure_nginx_image()
    for tag in TAGS:
        ensure_app_image(tag)
    ensure_app_image("3.0.0-flaky", mode="flaky")
    api = client()
    modes = [run_mode(api, "dynamic"), run_mode(api, "reload")]
    canary = run_canary(api)
    print("## Traffic layer: dynamic switch vs reload switch\n")
    print(
        f"`berth run`, a 2-replica busybox `api` behind nginx 1.22 (Lua module); {DEPLOYS} "
        "deploys per measurement, each an atomic write of the desired file. Keep-alive load: "
        f"`wrk -t2 -c16 -d{WRK_SECONDS}s` (no retries) plus a paced keep-alive client "
        "(4 pooled connections, ~200 GET/s) that times the switch.\n"
    )
    rows = []
    for m in modes:
        w = m["wrk"]
        full = m["full"]
        rows.append(
            (
                m["mode"],
                f"{w['errors'] + w['non2xx']} of {w['requests']:,}",
                f"{m['pooled_failed']} of {m['pooled_requests']:,}",
                f"{median(full):.2f} s / {pct(full, 90):.2f} s" if full else "-",
                f"{m['cpu_ms']:.0f} ms",
                f"{m['deploys_under_load']} ({', '.join(sorted(set(m['outcomes'])))})",
            )
        )
    print(
        table(
            (
                "switch",
                "wrk failures (errors + non-2xx)",
                "pooled client failures",
                "write → 100 % new p50 / p90",
                "nginx CPU per deploy",
                "deploys under load",
            ),
            rows,
        )
    )
    print(
        "\nWithout wrk (the paced keep-alive client alone, ~200 GET/s), the same deploys: "
        "write → the `rollout.cutover` log line (Docker create + start, the gate, the DNS "
        "alias), then the switch itself (cut-over line → end of the last response on an "
        "older tag).\n"
    )
    quiet_rows = []
    for m in modes:
        full, cut, sw = m["quiet_full"], m["quiet_cut"], m["quiet_switch"]
        quiet_rows.append(
            (
                m["mode"],
                f"{median(full):.2f} s / {pct(full, 90):.2f} s" if full else "-",
                f"{median(cut):.2f} s" if cut else "-",
                f"{median(sw) * 1000:.0f} ms" if sw else "-",
                str(m["quiet_failed"]),
            )
        )
    print(
        table(
            (
                "switch",
                "write → 100 % new p50 / p90",
                "write → cut-over p50",
                "cut-over → 100 % new p50",
                "failed",
            ),
            quiet_rows,
        )
    )
    dyn = modes[0]["quiet_full"]
    p50 = median(dyn) if dyn else float("inf")
    print(
        f"\nTarget: write → 100 % of traffic on the new revision ≤ {TARGET_FULL_P50} s p50 "
        f"(daemon, dynamic, no wrk): {p50:.2f} s — {verdict(p50 <= TARGET_FULL_P50)}.\n"
    )
    print("### Canary: time from its first failed response to weight 0\n")
    z, last = canary["to_zero"], canary["to_last"]
    print(
        table(
            ("metric", "measured"),
            [
                ("first canary 5xx → `weight 0` logged", f"{z:.2f} s" if z is not None else "-"),
                (
                    "first canary 5xx → its last response",
                    f"{last:.2f} s" if last is not None else "-",
                ),
                (
                    "canary responses (failed)",
                    f"{canary['canary_requests']} ({canary['canary_failed']})",
                ),
            ],
        )
    )
    print(
        "\nThe analysis needs `min_requests` (20) of the canary's own requests in a window, "
        "so at a 20 % step of ~200 req/s the first measurement closes about 0.5 s after the "
        "first request; Berth looks once a second.\n"
    )
    for m in modes:
        print(f"_{m['mode']}: {m['note']}_\n")
    print(f"_canary: {canary['note']}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
