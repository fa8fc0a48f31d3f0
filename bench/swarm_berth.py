"""Berth's Swarm backend vs a native `docker service update`, side by side (issue 14).

One real swarm (1 manager + 2 dind workers, tests/support/swarm.py, its registry), one run,
the same app and the same load on both sides, one side after the other:

- app: 3 replicas of the busybox app, 1.0.0 <-> 2.0.0 (good), 3.0.N (crash mode: exits 1
  after 0.3 s) and 4.0.N (unhealthy mode: `/health` answers 404) for the bad-image cases
  (N = the run: Berth quarantines a tag that failed);
  Docker healthcheck every 1 s, retries 2; init; stop grace period 5 s on both sides;
- edge: `berth-test/nginx:1` as a Swarm service pinned to the manager, with a host-mode
  published port the load reaches from the host (`MANAGER_IP:PORT`), on the app's overlay;
- load (`tests/support/load.Load`): GET threads paced in total, plus 2 long GETs (3 s)
  and a slow POST (2 s, 20 kB) in a loop; keep-alive clients that never retry (and one
  connection-per-request run per side). Started 1 s before the change, stopped 1.5 s
  after it is done; every failed request counts.

Native side: a dnsrr service `app-native` updated the way `docker service update --image
... --update-order start-first --update-parallelism 1 --update-delay 0 --update-monitor 5s
--update-failure-action rollback` does (rollback start-first, monitor 5 s), exactly as in
bench/swarm_native.py; the edge fronts it the way it is done with open-source nginx:
`resolver 127.0.0.11 valid=1s ipv6=off; set $up app-native; proxy_pass http://$up:8000;`
(Docker's DNS answers the running tasks' IPs; re-resolved every second), its site config a
Swarm config. Time: update call -> UpdateStatus `completed` / `rollback_completed`.

Berth side: `berth apply` (a subprocess, from the host, `--docker-host tcp://MANAGER:2375`)
on the stack of tests/swarm/berth_stack.py (`x-berth.backend: swarm`, dynamic switch,
`x-berth.health` GET /health every 200 ms, healthy_threshold 2, progress deadline 20 s,
drain timeout 20 s); each replica a one-replica dnsrr service. Time: the wall time of
`berth apply` (CLI start-up included); for a bad image apply exits non-zero once it has
rolled back.

Knobs: BENCH_RUNS (good updates per side under keep-alive load, default 3),
BENCH_PER_REQUEST_RUNS (good updates per side under connection-per-request load, default 1),
BENCH_BAD_RUNS (per bad kind and side, default 1), BENCH_GET_THREADS (4), BENCH_GET_RATE
(total GET/s, default 200), BENCH_SIDES (default "native,berth"). Nothing is asserted.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docker.errors
import docker.types
from _common import client, interference_note, load_average, parse_events
from _swarm_report import report
from _swarm_workload import (
    BAD,
    BAD_RUNS,
    BERTH_PORT,
    GET_RATE,
    GET_THREADS,
    GOOD,
    LOG_DIR,
    LONG_S,
    MONITOR_S,
    NATIVE_PORT,
    OVERLAY,
    REPLICAS,
    SIDES,
    STOP_GRACE_S,
    TAIL_S,
    WARM_S,
    Run,
    bad_tag,
    plan,
)

from tests.support.images import ensure_app_image, ensure_nginx_image
from tests.support.load import Load
from tests.support.swarm import SWARM_LABEL, Swarm, start_swarm, wait_for
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

NATIVE_SITE = """\
server {
    listen 8080;
    resolver 127.0.0.11 valid=1s ipv6=off;
    location = /nginx-health { return 200 "ok\\n"; }
    location / {
        set $up app-native;
        proxy_pass http://$up:8000;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 600s;
        proxy_next_upstream error timeout;
    }
}
"""


def under_load(url: str, keep_alive: bool, change: Callable[[], Any]) -> tuple[Any, Load, float]:
    """Run `change` while the load runs; returns its result, the load and the change's
    wall-clock start."""
    load = Load(
        url,
        keep_alive=keep_alive,
        get_threads=GET_THREADS,
        get_rate=GET_RATE,
        long_seconds=LONG_S,
    )
    load.start()
    try:
        time.sleep(WARM_S)
        t0 = time.time()
        result = change()
        time.sleep(TAIL_S)
    finally:
        load.stop()
    return result, load, t0


def get(url: str, timeout: float = 3) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as res:
        return str(res.read().decode().strip())


def wait_serving(url: str, tag: str, timeout: float = 60) -> None:
    def check() -> bool:
        with contextlib.suppress(OSError):
            return get(url + "/version") == tag
        return False

    wait_for(check, timeout=timeout, what=f"{url} serving {tag}", interval=0.2)


# --------------------------------------------------------------------------- native


def _native_update(service: Any, image: str, until: str, timeout: float = 180) -> dict[str, Any]:
    """bench/swarm_native.py's measurement: update call -> UpdateStatus.State == `until`."""
    before = update_status(service).get("StartedAt")
    t0 = time.monotonic()
    service.update(image=image)
    while time.monotonic() - t0 < timeout:
        st = update_status(service)
        if st.get("StartedAt") != before and st.get("State") == until:
            out: dict[str, Any] = {"seconds": time.monotonic() - t0}
            if st.get("CompletedAt") and st.get("StartedAt"):
                out["swarm"] = docker_time(st["CompletedAt"]) - docker_time(st["StartedAt"])
            out["message"] = st.get("Message", "")
            return out
        time.sleep(0.1)
    raise TimeoutError(f"update to {image}: not {until}; tasks {task_errors(service)}")


def _native_edge(api: Any, image: str) -> tuple[Any, Any]:
    """nginx on the manager (host-mode port), its site from a Swarm config: the dnsrr name
    resolved per request, as open-source nginx fronts a Swarm service without a VIP."""
    site = api.configs.create(name="edge-native-site", data=NATIVE_SITE.encode())
    edge = api.services.create(
        image,
        name="edge-native",
        constraints=["node.role==manager"],
        endpoint_spec=docker.types.EndpointSpec(
            mode="dnsrr", ports={NATIVE_PORT: (8080, "tcp", "host")}
        ),
        networks=[docker.types.NetworkAttachmentConfig(target=OVERLAY)],
        configs=[
            docker.types.ConfigReference(
                site.id, "edge-native-site", filename="/etc/nginx/conf.d/site.conf"
            )
        ],
        stop_grace_period=int(STOP_GRACE_S * 10**9),
    )
    return site, edge


def native_side(swarm: Swarm, refs: dict[str, str], runs: list[Run]) -> None:
    api = swarm.manager.client
    create_overlay(api, OVERLAY)
    update, rollback = start_first(MONITOR_S)
    app = create_app_service(
        api,
        "app-native",
        refs["1.0.0"],
        network=OVERLAY,
        replicas=REPLICAS,
        update_config=update,
        rollback_config=rollback,
        healthcheck=app_healthcheck(),
        stop_grace_s=STOP_GRACE_S,
    )
    site, edge = _native_edge(api, refs["nginx"])
    url = f"http://{swarm.manager.ip}:{NATIVE_PORT}"
    try:
        wait_running(app, REPLICAS)
        wait_running(edge, 1)
        wait_serving(url, "1.0.0")
        current = "1.0.0"
        for kind, load_kind, bad in plan():
            target = bad or (GOOD[1] if current == GOOD[0] else GOOD[0])
            until = "completed" if kind == "good" else "rollback_completed"

            def change(t: str = target, u: str = until) -> dict[str, Any]:
                return _native_update(app, refs[t], u)

            res, load, t0 = under_load(url, load_kind == "keep-alive", change)
            runs.append(
                Run("native", kind, load_kind, target, res["seconds"], load.samples, t0, current,
                    {"swarm": res.get("swarm"), "message": res.get("message", "")})
            )  # fmt: skip
            if kind == "good":
                current = target
            wait_running(app, REPLICAS)
            wait_serving(url, current)
            print(
                f"native {kind} -> {target} ({load_kind}): {res['seconds']:.1f} s, "
                f"{len(runs[-1].failed)} failed of {len(load.samples)}",
                file=sys.stderr,
            )
    finally:
        for svc in (edge, app):
            with contextlib.suppress(docker.errors.DockerException):
                svc.remove()
        with contextlib.suppress(docker.errors.DockerException):
            site.remove()


# --------------------------------------------------------------------------- Berth


def berth_side(swarm: Swarm, runs: list[Run], info: dict[str, Any]) -> None:
    from tests.swarm.berth_stack import new_stack  # the stack the tests use (on main)

    stack = new_stack(swarm, BERTH_PORT)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"berth apply output: {LOG_DIR}", file=sys.stderr)
    info["project"] = stack.project
    stack.write("1.0.0")
    t = time.monotonic()
    first = stack.berth("apply")
    info["first_apply"] = time.monotonic() - t
    if first.code != 0:
        raise RuntimeError(f"berth apply (first, 1.0.0) exited {first.code}:\n{first.err}")
    wait_serving(stack.url, "1.0.0")
    current = "1.0.0"
    for kind, load_kind, bad in plan():
        target = bad or (GOOD[1] if current == GOOD[0] else GOOD[0])

        def change(tag: str = target) -> tuple[Any, float]:
            stack.write(tag)
            t1 = time.monotonic()
            res = stack.berth("apply")
            return res, time.monotonic() - t1

        (res, seconds), load, t0 = under_load(stack.url, load_kind == "keep-alive", change)
        events = parse_events(res.err.splitlines())
        log = LOG_DIR / f"apply-{len(runs) + 1:02d}-{kind}-{target}.log"
        log.write_text(res.out + res.err)
        detail: dict[str, Any] = {
            "code": res.code,
            "phases": _phases(events, t0),
            "tail": [ln for ln in res.err.strip().splitlines() if ln.strip()][-3:],
        }
        runs.append(Run("berth", kind, load_kind, target, seconds, load.samples, t0, current,
                        detail))  # fmt: skip
        print(
            f"berth {kind} -> {target} ({load_kind}): exit {res.code}, {seconds:.1f} s, "
            f"{len(runs[-1].failed)} failed of {len(load.samples)}",
            file=sys.stderr,
        )
        if kind == "good":
            if res.code != 0:
                raise RuntimeError(f"berth apply ({target}) exited {res.code}:\n{res.err}")
            current = target
        else:
            stack.write(current)  # desired back to the running tag (not measured)
            back = stack.berth("apply")
            detail["restore_code"] = back.code
        wait_serving(stack.url, current)


def _phases(events: Sequence[tuple[float, str, str, str]], t0: float) -> list[tuple[str, float]]:
    seen: dict[str, float] = {}
    for t, _, phase, _ in events:
        seen.setdefault(phase, t - t0)
    return sorted(seen.items(), key=lambda kv: kv[1])


# --------------------------------------------------------------------------- main


def other_swarms(api: Any, mine: str = "") -> int:
    """Test swarms on this host other than ours (other runs' tests: interference)."""
    ids = {
        c.labels.get(SWARM_LABEL)
        for c in api.containers.list(filters={"label": SWARM_LABEL, "status": "running"})
    }
    return len(ids - {mine})


def main() -> int:
    api = client()
    t_start = time.monotonic()
    load_before = load_average()
    swarms_before = other_swarms(api)
    shared = tempfile.mkdtemp(prefix="berth-bench-swarm-")
    swarm = start_swarm(managers=1, workers=2, client=api, shared=shared)
    swarm.shared = shared
    runs: list[Run] = []
    info: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        refs = {tag: swarm.push(ensure_app_image(tag, client=api)) for tag in GOOD}
        for kind in BAD:
            local = ensure_app_image(bad_tag(kind, 0), mode=kind, client=api)
            for i in range(BAD_RUNS):
                refs[bad_tag(kind, i)] = swarm.push(local, tag=bad_tag(kind, i))
        refs["nginx"] = swarm.push(ensure_nginx_image(client=api))
        if "native" in SIDES:
            try:
                native_side(swarm, refs, runs)
            except Exception as exc:  # report what was measured
                errors["native"] = f"{type(exc).__name__}: {exc}"[:2000]
        if "berth" in SIDES:
            try:
                berth_side(swarm, runs, info)
            except Exception as exc:
                errors["berth"] = f"{type(exc).__name__}: {exc}"[:2000]
        note = (
            f"{interference_note()} (our swarm's 4 included); other test swarms running: "
            f"{swarms_before} at the start, {other_swarms(api, swarm.id)} at the end"
        )
    finally:
        swarm.teardown()
        shutil.rmtree(shared, ignore_errors=True)
    report(swarm, runs, info, errors, note, load_before)
    print(f"\n_(swarm_berth took {time.monotonic() - t_start:.0f} s)_")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
