"""Remote git source: webhook -> rollout start, next to interval polling (issue 13, item 4).

A real git server (tests/support/git_server: Debian's nginx + fcgiwrap + git-http-backend,
basic auth with a token) holds the deployment repository; `berth run --git-url` (JSON
logs) follows it with a 1-replica busybox httpd service. Each iteration commits a new tag
(1.0.0 <-> 2.0.0) to desired/, pushes, and then
- webhook mode (`--git-interval 3600`, so only the hook can trigger): POSTs a GitHub-style
  signed push event; latency = `ts` of the `rollout.start` JSON line - wall clock just
  before the POST. Also: POST -> `git: now at` (fetch, judge, fast-forward done);
- poll mode (`--git-interval POLL`): latency = rollout.start - wall clock after the push.
Each rollout finishes before the next push. ms resolution (log `ts` is truncated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import interference_note, median, pct, stack, table, verdict
from reaction_latency import TERMINAL, Tail, ts
from rollout_overhead import compose

from tests.support.daemon import berth_run
from tests.support.git_server import git_http_server
from tests.support.images import ensure_app_image

HOOKS = int(os.environ.get("BENCH_WEBHOOKS", "15"))
POLLS = int(os.environ.get("BENCH_POLLS", "5"))
POLL = float(os.environ.get("BENCH_POLL_INTERVAL", "5"))
TARGET_MS = 1000.0
TAGS = ("1.0.0", "2.0.0")
SECRET = "bench-secret"


def desired(project: str, tag: str) -> str:
    doc = {"project": project, "compose": "../compose/docker-compose.yml",
           "services": {"api": {"tag": tag}}}  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


def post_hook(url: str, after: str, n: int) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": after}).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = httpx.post(
        url + "/hooks/git",
        content=body,
        headers={
            "X-Hub-Signature-256": f"sha256={sig}",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"bench-{n}",
        },
        timeout=10,
        trust_env=False,
    )
    if r.status_code != 202:
        raise RuntimeError(f"webhook answered {r.status_code}: {r.text}")


def run_mode(root: Path, project: str, *, webhook: bool, n: int) -> dict[str, list[float]]:
    with git_http_server(root / ("srv-hook" if webhook else "srv-poll")) as server:
        server.create()
        work = server.clone(root / ("dev-hook" if webhook else "dev-poll"))
        work.write("compose/docker-compose.yml", json.dumps({"name": project, **compose()}))
        work.write("desired/stack.yaml", desired(project, TAGS[0]))
        work.commit("initial")
        work.push()
        secret = root / "secret"
        secret.write_text(SECRET)
        state = root / ("state-hook" if webhook else "state-poll")
        interval = "3600" if webhook else str(POLL)
        extra = ["--git-url", server.url(), "--git-interval", interval,
                 "--webhook-secret-file", str(secret)]  # fmt: skip
        log = root / ("hook.log" if webhook else "poll.log")
        out: dict[str, list[float]] = {"start": [], "synced": []}
        with berth_run(root / "unused", state, log=log, extra=extra,
                       env_extra={"BERTH_GIT_TOKEN": server.token}) as run:  # fmt: skip
            tail = Tail(log)
            deadline = time.monotonic() + 60
            while run.metric("berth_service_replicas", service="api", state="ready") != 1.0:
                if time.monotonic() > deadline:
                    raise RuntimeError("initial rollout never became ready")
                time.sleep(0.1)
            time.sleep(0.5)
            tail.lines()
            for i in range(1, n + 1):
                work.write("desired/stack.yaml", desired(project, TAGS[i % 2]))
                sha = work.commit(f"api {TAGS[i % 2]}")
                work.push()
                t0 = time.time()
                if webhook:
                    post_hook(run.url, sha, i)
                synced: float | None = None

                def is_start(doc: dict[str, object]) -> bool:
                    nonlocal synced
                    if synced is None and str(doc.get("event", "")).startswith("git: now at"):
                        synced = ts(doc)
                    return doc.get("event") == "rollout.start"

                start = tail.wait(is_start, POLL * 3 + 30)
                out["start"].append((ts(start) - t0) * 1000)
                if synced is not None:
                    out["synced"].append((synced - t0) * 1000)
                tail.wait(lambda d: d.get("event") in TERMINAL, 60)
                time.sleep(0.2)
    return out


def main() -> int:
    for tag in TAGS:
        ensure_app_image(tag)
    with stack("bwh") as s:
        hook = run_mode(s.root, s.project, webhook=True, n=HOOKS)
        poll = run_mode(s.root, s.project, webhook=False, n=POLLS)
        note = interference_note(s.project)
    h = hook["start"]
    print("## Remote git source: webhook → rollout start\n")
    print(
        "`berth run --git-url` against a real git server (nginx + fcgiwrap + git-http-backend, "
        f"token auth, on this host) with one 1-replica busybox httpd service. {HOOKS} pushes "
        "of a new tag to desired/, each followed by a signed GitHub-style webhook "
        f"(`--git-interval 3600`); then {POLLS} pushes with no webhook and `--git-interval "
        f"{POLL:g}`. Latency = `ts` of `rollout.start` - wall clock just before the POST (poll "
        "mode: after the push). Each rollout ends before the next push.\n"
    )
    rows = [
        ("webhook → rollout.start p50", f"{median(h):.0f} ms", f"≤ {TARGET_MS:.0f} ms",
         verdict(median(h) <= TARGET_MS)),
        ("webhook → rollout.start p90 / max", f"{pct(h, 90):.0f} / {max(h):.0f} ms", "", ""),
    ]  # fmt: skip
    if hook["synced"]:
        rows.append(("webhook → checkout fast-forwarded (`git: now at`) p50",
                     f"{median(hook['synced']):.0f} ms", "", ""))  # fmt: skip
    p = poll["start"]
    rows.append((f"push → rollout.start, polling every {POLL:g} s: p50 / max",
                 f"{median(p):.0f} / {max(p):.0f} ms", "", ""))  # fmt: skip
    print(table(("metric", "measured", "target", "verdict"), rows))
    print(f"\n_{note}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
