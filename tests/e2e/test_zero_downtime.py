"""Zero-downtime deploys under live load through a real nginx (issue: cut-over behind nginx).

Seven consecutive deploys of a 2-replica service, two of them of tags that never become
healthy (one unhealthy, one crashing) and one that fails during bake, while a load generator
records every response.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.berth import berth, popen_berth
from tests.support.daemon import free_port
from tests.support.images import ensure_nginx_image, healthcheck
from tests.support.load import Load, Sample

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.e2e]

SITE = """\
include /etc/nginx/berth/upstreams.conf;
server {
    listen 8080;
    location = /nginx-health { return 200 "ok\\n"; }
    location / {
        proxy_pass http://api_backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 600s;
        proxy_next_upstream error timeout;
    }
}
"""

DNS_CLIENT = r"""
check() {
  t=$(cut -d' ' -f1 /proc/uptime)
  line=$(printf 'GET /health HTTP/1.0\r\n\r\n' | nc -w 3 "$1" 8000 2>&1 | head -1 | tr -d '\r')
  case "$line" in
    *" 200 "*) echo "ok $1 $2 $t" ;;
    *) echo "FAIL $1 $2 $t $(cut -d' ' -f1 /proc/uptime) answer=[$3] got=[$line]" ;;
  esac
}
i=0
while [ $i -lt 4000 ]; do
  r=$(cut -d' ' -f1 /proc/uptime)
  ips=$(nslookup api 127.0.0.11 2>/dev/null | sed -n 's/^Address: *\([0-9.]*\)$/\1/p' | tr '\n' ' ')
  for ip in $ips; do check "$ip" "$r" "$ips" & done
  wait
  i=$((i+1))
  usleep 50000
done
"""


def stack_compose(
    port: int, *, bake: str = "0s", switch: str | None = None, upstreams_mount: str = "ro"
) -> dict[str, Any]:
    proxy: dict[str, Any] = {
        "service": "nginx",
        "upstreams_file": "../nginx/upstreams/upstreams.conf",
    }
    if switch is not None:
        proxy["switch"] = switch
    return {
        "x-berth": {"proxy": proxy},
        "services": {
            "api": {
                "image": "berth-test/app",
                "init": True,
                "expose": ["8000"],
                "stop_grace_period": "10s",
                "healthcheck": {
                    "test": healthcheck(),
                    "interval": "1s",
                    "timeout": "2s",
                    "retries": 2,
                },
                "deploy": {"replicas": 2},
                "networks": ["backend"],
                "x-berth": {
                    "upstream": {"name": "api_backend", "port": 8000},
                    "health": {
                        "path": "/health",
                        "port": 8000,
                        "interval": "100ms",
                        "healthy_threshold": 2,
                    },
                    "progress_deadline": "8s",
                    "drain_timeout": "30s",
                    "bake": bake,
                },
            },
            "nginx": {
                "image": "berth-test/nginx:1",
                "ports": [f"127.0.0.1:{port}:8080"],
                "volumes": [
                    "../nginx/conf.d:/etc/nginx/conf.d:ro",
                    f"../nginx/upstreams:/etc/nginx/berth:{upstreams_mount}",
                ],
                "networks": ["backend"],
                "depends_on": ["api"],
            },
        },
        "networks": {"backend": {}},
    }


def parse_events(lines: list[str]) -> list[tuple[float, str, str]]:
    """(event time, phase, message) from apply's plain progress lines."""
    out = []
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 4 or not parts[0].endswith("Z"):
            continue
        t = dt.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        out.append((t.timestamp(), parts[2].rstrip(":"), parts[3].strip()))
    return out


def deploy(
    s: Any, tmp_stack: Any, port: int, tag: str, *, bake: str = "0s", **compose_kw: Any
) -> tuple[int, list[tuple[float, str, str]], float, float]:
    tmp_stack(
        stack_compose(port, bake=bake, **compose_kw),
        {"api": {"tag": tag}},
        files={"nginx/conf.d/site.conf": SITE},
    )
    t0 = time.time()
    proc = popen_berth(s.desired_dir, s.state_dir, "apply")
    out, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, 3):
        raise AssertionError(f"berth apply of {tag} exited {proc.returncode}:\n{out}\n{err}")
    return proc.returncode, parse_events(err.splitlines()), t0, time.time()


# Every kind of deploy once, each failure followed by a good deploy: a cut-over after a
# good release, after a rollback of an unhealthy one, after a crash, and after a bake
# failure's switch-back (which is a traffic switch too). It was eleven, repeating the
# unhealthy -> good pair and ending on three good deploys in a row: ~40 s more per test
# that uses it, and nothing the first of each did not show. The keep-alive test over these
# deploys with `switch: reload` lost 16 requests in eleven deploys (docs/operations.md),
# and 15 of 55,474 over these seven (measured 2026-12-03): it still catches a reload.
PLAN = [  # (tag, mode, expected exit)
    ("2.0.0", "good", 0),
    ("2.1.0-bad", "unhealthy", 3),
    ("2.2.0", "good", 0),
    ("2.3.0-crash", "crash", 3),
    ("2.4.0", "good", 0),
    ("2.7.0-bake", "bake-fail", 3),
    ("2.8.0", "good", 0),
]


def deploy_plan(
    s: Any, tmp_stack: Any, port: int, **compose_kw: Any
) -> tuple[dict[str, int], dict[str, Any]]:
    """Every deploy of PLAN in turn: (exit code per tag, (t0, t1, events) per tag)."""
    windows: dict[str, tuple[float, float, list[tuple[float, str, str]]]] = {}
    codes = {}
    for tag, mode, _ in PLAN:
        bake = "8s" if mode == "bake-fail" else "0s"
        code, events, t0, t1 = deploy(s, tmp_stack, port, tag, bake=bake, **compose_kw)
        codes[tag] = code
        windows[tag] = (t0, t1, events)
        time.sleep(0.5)
    return codes, windows


def test_deploys_under_load_lose_nothing(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str, tmp_path: Path
) -> None:
    ensure_nginx_image(client=docker_client)
    app_image("1.0.0")
    for tag, mode, _ in PLAN:
        app_image(tag, mode=mode)
    port = free_port()
    s = tmp_stack(
        stack_compose(port),
        {"api": {"tag": "1.0.0"}},
        files={"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""},
    )
    code, _, _, _ = deploy(s, tmp_stack, port, "1.0.0")
    assert code == 0
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/version")

    dns = docker_client.containers.run(
        "berth-test/app:1.0.0",
        ["sh", "-c", DNS_CLIENT],
        detach=True,
        init=True,
        network=f"{project}_backend",
        labels={"com.docker.compose.project": project},
        name=f"{project}-dnsclient",
    )
    load = Load(base)
    load.start()
    time.sleep(1.0)
    try:
        codes, windows = deploy_plan(s, tmp_stack, port)
    finally:
        load.stop()
        dns.kill()
    samples = load.snapshot()
    dns_log = dns.logs().decode()
    dns.remove(force=True)

    assert codes == {tag: exit_ for tag, _, exit_ in PLAN}, windows
    _check_no_failures(samples)
    _check_versions(samples, windows)
    _check_dns(dns_log, windows)
    rate = sum(1 for x in samples if x.kind == "get") / (samples[-1].end - samples[0].start)
    assert rate >= 200, f"load too low to mean anything: {rate:.0f} req/s"


def _wait_http(url: str) -> None:
    import httpx

    for _ in range(100):
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _check_no_failures(samples: list[Sample]) -> None:
    bad = [x for x in samples if not x.ok]
    assert not bad, f"{len(bad)} failed of {len(samples)}: {bad[:5]}"
    longs = [x for x in samples if x.kind == "long"]
    posts = [x for x in samples if x.kind == "post"]
    assert len(longs) >= 10 and len(posts) >= 10


def _check_versions(samples: list[Sample], windows: dict[str, Any]) -> None:
    versions = {x.body.split()[0] for x in samples if x.body}
    never = {tag for tag, mode, _ in PLAN if mode in ("unhealthy", "crash")}
    assert not versions & never, f"traffic reached a never-healthy version: {versions & never}"
    for tag, mode, _ in PLAN:
        _, t1, events = windows[tag]
        served = [x for x in samples if x.body.split()[:1] == [tag]]
        if mode == "good":
            cut = [t for t, phase, _ in events if phase == "cutover"]
            assert cut, f"no cutover event for {tag}: {events}"
            assert served, f"{tag} never served"
            assert min(x.end for x in served) >= cut[0], f"{tag} served before its cut-over"
        if mode == "bake-fail":
            back = [t for t, phase, _ in events if phase == "switch-back"]
            assert back, f"bake failure did not switch back: {events}"
            assert not [x for x in served if x.start > t1], f"{tag} served after switch-back"


def _check_dns(log: str, windows: dict[str, Any]) -> None:
    """No resolved address may fail its health check, except from the cut-over of the
    version that breaks during bake to the end of its deploy: it passed its gate, then
    failed (and was taken out).

    A line's time is when the name was resolved. The client checks the addresses of one
    answer in parallel: checked one after another, an address of a container removed
    just after the lookup stalled the client for 3 s (ARP), and the next address was
    tried after the deploy had ended, when a new container had taken it over (seen once
    in CI: a FAIL timed 3 s after the bake failure it came from)."""
    with open("/proc/uptime") as f:  # containers share the host kernel's uptime clock
        offset = time.time() - float(f.read().split()[0])
    _, bake_end, bake_events = next(windows[t] for t, m, _ in PLAN if m == "bake-fail")
    allowed = (min(t for t, phase, _ in bake_events if phase == "cutover"), bake_end)
    lines = log.splitlines()
    fails = [
        line
        for line in lines
        if line.startswith("FAIL")
        and not allowed[0] <= float(line.split()[2]) + offset <= allowed[1]
    ]
    oks = [line for line in lines if line.startswith("ok")]
    assert len(oks) > 100, log[-2000:]
    lag = max(float(line.split()[3]) - float(line.split()[2]) for line in oks)
    assert lag < 1.5, f"the client tried an address {lag:.2f} s after resolving it"
    if fails:
        at = float(fails[0].split()[2]) + offset
        where = [
            f"{tag}: {t0 - offset:.2f}..{t1 - offset:.2f} "
            + ", ".join(f"{phase}@{t - offset:.2f}" for t, phase, _ in events)
            for tag, (t0, t1, events) in windows.items()
            if t0 - 5 <= at <= t1 + 5
        ]
        i = lines.index(fails[0])
        context = "\n".join(lines[max(0, i - 12) : i + 6])
        raise AssertionError(
            f"internal DNS reached an unready container: {fails[:5]}\n"
            f"deploys around it (uptime clock):\n" + "\n".join(where) + f"\n{context}"
        )


def _served_stack(docker_client: Any, app_image: Any, tmp_stack: Any) -> tuple[Any, int]:
    """A 2-replica api at 1.0.0 behind nginx on a free port; 2.0.0 is built too."""
    ensure_nginx_image(client=docker_client)
    app_image("1.0.0")
    app_image("2.0.0")
    port = free_port()
    s = tmp_stack(
        stack_compose(port),
        {"api": {"tag": "1.0.0"}},
        files={"nginx/conf.d/site.conf": SITE, "nginx/upstreams/.keep": ""},
    )
    assert deploy(s, tmp_stack, port, "1.0.0")[0] == 0
    return s, port


def test_nginx_test_failure_fails_rollout_cleanly(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    """`nginx -t` failing at cut-over: the rollout fails, the old version keeps serving."""
    s, port = _served_stack(docker_client, app_image, tmp_stack)
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/version")
    # break nginx's configuration behind Berth's back: the next `nginx -t` fails
    (s.root / "nginx/conf.d/broken.conf").write_text("this is not nginx syntax;\n")
    code, events, _, _ = deploy(s, tmp_stack, port, "2.0.0")
    assert code == 3
    assert any("nginx -t failed" in m for _, _, m in events), events
    import httpx

    assert httpx.get(base + "/version", trust_env=False).text.strip() == "1.0.0"
    upstreams = (s.root / "nginx/upstreams/upstreams.conf").read_text()
    status = berth(s.desired_dir, s.state_dir, "status").out
    assert "api_backend" in status and f"{project}-api-" in status
    old = docker_client.containers.list(
        filters={
            "label": [f"com.docker.compose.project={project}", "com.docker.compose.service=api"]
        }
    )
    assert {c.labels["berth.tag"] for c in old} == {"1.0.0"}
    assert all(c.name in upstreams for c in old)


def test_nginx_not_running_fails_rollout_and_recovers(
    docker_client: Any, app_image: Any, tmp_stack: Any, project: str
) -> None:
    """nginx down at cut-over: the rollout fails with the reason, the old containers are
    untouched, nothing is quarantined, and once nginx is back the same tag goes through."""
    s, port = _served_stack(docker_client, app_image, tmp_stack)
    sel = {"label": [f"com.docker.compose.project={project}"]}
    (nginx,) = [
        c
        for c in docker_client.containers.list(filters=sel)
        if c.labels["com.docker.compose.service"] == "nginx"
    ]
    old = sorted(
        c.id
        for c in docker_client.containers.list(filters=sel)
        if c.labels["com.docker.compose.service"] == "api"
    )
    nginx.stop(timeout=5)
    code, events, _, _ = deploy(s, tmp_stack, port, "2.0.0")
    assert code == 3
    assert any("not running" in m for _, _, m in events), events
    now = sorted(
        c.id
        for c in docker_client.containers.list(filters=sel)
        if c.labels["com.docker.compose.service"] == "api"
    )
    assert now == old
    nginx.start()
    code, _, _, _ = deploy(s, tmp_stack, port, "2.0.0")
    assert code == 0  # not quarantined: the failure was nginx's, not the release's
    _wait_http(f"http://127.0.0.1:{port}/version")
    import httpx

    assert httpx.get(f"http://127.0.0.1:{port}/version", trust_env=False).text.strip() == "2.0.0"
