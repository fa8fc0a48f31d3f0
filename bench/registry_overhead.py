"""Registries (issue 13): what digest resolution and pulls add to a rollout, and how long
image-update automation takes from a registry push to the commit in desired/.

A real private registry on this host (tests/support/registry: Debian's docker-registry
2.8 with TLS from a test CA and htpasswd users, on the docker0 address) serves the 2 MB
busybox app image. `berth apply` replaces a 1-replica service, alternating 1.0.0 <-> 2.0.0,
in three modes measured in one run:

- local: the image from the host only (`berth-test/app`, built here), no registry at all;
- pinned, present: the image from the registry, already on the host: one manifest HEAD
  (TLS + basic auth) per apply resolves the tag to its digest, no pull;
- pinned, absent: the registry's copy removed before each apply: the HEAD and a pull.

Then: the manifest HEAD alone (Registry.digest, 30 calls), and automation: a new tag is
pushed, one ImageAutomation.scan (tag list + choice + validated edit + git commit) in
process, timed from the scan's start to the commit (10 pushes). In the daemon the scan
runs every `interval` (at least 10 s), so push -> commit is that wait plus this.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import client, interference_note, median, must_apply, pct, stack, table

from controller.adapters.registry import Registry, docker_auth, engine_insecure
from tests.support.images import ensure_app_image, healthcheck
from tests.support.registry import forget_trust, start_registry

N = int(os.environ.get("BENCH_ROLLOUTS", "6"))
TAGS = ("1.0.0", "2.0.0")


def compose(image: str, **xb: object) -> dict[str, object]:
    return {"services": {"api": {
        "image": image, "init": True, "stop_grace_period": "2s",
        "healthcheck": {"test": healthcheck(), "interval": "200ms", "retries": 3},
        "x-berth": {"progress_deadline": "30s", **xb},
    }}}  # fmt: skip


def drop(api: object, prefix: str) -> None:
    for img in api.images.list():  # type: ignore[attr-defined]
        for ref in [*(img.attrs.get("RepoTags") or []), *(img.attrs.get("RepoDigests") or [])]:
            if ref.startswith(prefix):
                with contextlib.suppress(Exception):
                    api.images.remove(ref, force=True)  # type: ignore[attr-defined]


def rollouts(image: str, *, absent: str | None, n: int, **xb: object) -> dict[str, list[float]]:
    api = client()
    out: dict[str, list[float]] = {"apply": [], "pull": [], "start_to_create": []}
    with stack("breg") as s:
        s.write_compose(compose(image, **xb))
        s.write_desired({"api": {"tag": TAGS[0]}})
        must_apply(s, "warm-up")
        for i in range(n):
            if absent:
                drop(api, absent)
            s.write_desired({"api": {"tag": TAGS[(i + 1) % 2]}})
            a = must_apply(s, f"rollout {i}")
            out["apply"].append(a.seconds * 1000)
            times = {phase: t for t, _, phase, _ in reversed(a.events)}
            if "pull" in times and "pulled" in times:
                out["pull"].append((times["pulled"] - times["pull"]) * 1000)
            if "start" in times and "create" in times:
                out["start_to_create"].append((times["create"] - times["start"]) * 1000)
    return out


def automation_latency(reg: object, host: str, n: int) -> list[float]:
    from prometheus_client import CollectorRegistry

    from controller.shell.daemon.automation import ImageAutomation
    from controller.shell.daemon.metrics import Metrics
    from controller.shell.wiring import Context

    api = client()
    local = ensure_app_image("2.0.0")
    repo = f"bench/auto{os.getpid()}"
    out: list[float] = []
    with stack("bauto") as s:
        s.write_compose(compose(f"{host}/{repo}", update={"semver": "^1", "interval": "10s"}))
        s.write_desired({"api": {"tag": "1.0.0"}})
        for cmd in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"],
        ):
            subprocess.run(["git", "-C", str(s.root), *cmd], check=True)  # fmt: skip
        reg.push(api, local, repo, "1.0.0")  # type: ignore[attr-defined]
        ctx = Context(str(s.desired_dir), str(s.state_dir), None)
        for i in range(1, n + 1):
            reg.push(api, local, repo, f"1.{i}.0")  # type: ignore[attr-defined]
            cfg = ctx.config()
            t = next(t for t in cfg.targets if t.service == "api")
            auto = ImageAutomation(ctx, lambda c=cfg: c, Metrics(CollectorRegistry()).images,
                                   threading.Event())  # fmt: skip
            assert t.spec.berth.update is not None
            t0 = time.monotonic()
            scan = auto.scan(t, t.spec.berth.update, f"1.{i - 1}.0")
            out.append((time.monotonic() - t0) * 1000)
            if scan.chosen != f"1.{i}.0" or scan.commit is None:
                raise RuntimeError(f"automation did not commit 1.{i}.0: {scan}")
    return out


def main() -> int:
    api = client()
    for tag in TAGS:
        ensure_app_image(tag)
        ensure_app_image(f"{tag}-reg")
    root = Path(tempfile.mkdtemp(prefix="berth-bench-registry-"))
    reg = start_registry(root, api)
    os.environ["DOCKER_CONFIG"] = str(reg.docker_config)
    try:
        for tag in TAGS:
            reg.push(api, f"berth-test/app:{tag}-reg", "bench/app", tag)
        client_ = Registry(auth=docker_auth(), insecure=engine_insecure(api.api.info))
        heads = []
        for _ in range(30):
            t0 = time.monotonic()
            client_.digest(f"{reg.host}/bench/app:1.0.0")
            heads.append((time.monotonic() - t0) * 1000)
        local = rollouts("berth-test/app", absent=None, n=N)
        present = rollouts(f"{reg.host}/bench/app", absent=None, n=N)
        absent = rollouts(f"{reg.host}/bench/app", absent=f"{reg.host}/", n=N)
        auto = automation_latency(reg, reg.host, 10)
        note = interference_note()
    finally:
        reg.stop()
        forget_trust(reg)
    print("## Registries: digest resolution and pull overhead, automation latency\n")
    print(
        f"`berth apply` of a 1-replica busybox service, {N} rollouts per mode (1.0.0 <-> "
        "2.0.0), against a real registry on this host (TLS, htpasswd). Times in ms.\n"
    )
    rows = []
    for name, r in (("local image, no registry", local),
                    ("registry, pinned, image on the host (HEAD only)", present),
                    ("registry, pinned, image absent (HEAD + pull)", absent)):  # fmt: skip
        pull = f"{median(r['pull']):.0f}" if r["pull"] else "-"
        rows.append((name, f"{median(r['apply']):.0f}", f"{pct(r['apply'], 90):.0f}",
                     f"{median(r['start_to_create']):.0f}", pull))  # fmt: skip
    print(table(("mode", "apply p50", "apply p90", "start → create p50", "pull p50"), rows))
    print(
        f"\nManifest HEAD (tag → digest, TLS + basic auth; one new connection each): p50 "
        f"{median(heads):.1f} ms, p90 {pct(heads, 90):.1f} ms over {len(heads)} calls.\n"
    )
    print(
        f"Image-update automation, scan start → commit in desired/ (tag list, choice, "
        f"validated edit, git commit): p50 {median(auto):.0f} ms, max {max(auto):.0f} ms over "
        f"{len(auto)} pushes. In `berth run` a push waits for the next scan: up to "
        "`interval` (≥ 10 s) more.\n"
    )
    print(f"_{note}_\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
