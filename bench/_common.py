"""Shared helpers for the benchmarks: stacks on disk, `berth apply` timing, cleanup, stats.

Benchmarks are scripts (`.venv/bin/python bench/NAME.py`), not tests: they REPORT targets as
met / not met and never fail because of a number. Everything they create carries the label
`com.docker.compose.project=<unique project>` and is force-removed at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
import docker.errors  # noqa: E402

from tests.support.cleanup import remove_project  # noqa: E402

PROJECT_LABEL = "com.docker.compose.project"
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def client() -> Any:
    return docker.from_env(timeout=120)


def unique_project(prefix: str) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(6))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Stack:
    root: Path
    project: str
    compose_file: Path
    desired_dir: Path
    desired_file: Path
    state_dir: Path

    def write_compose(self, compose: Mapping[str, Any]) -> None:
        named = {"name": self.project, **compose}  # the compose file chooses the project
        self.compose_file.write_text(json.dumps(named, indent=2) + "\n")

    def write_desired(self, services: Mapping[str, Any]) -> None:
        """Atomic write (rename), the way an editor or `git checkout` replaces a file."""
        doc = {
            "project": self.project,
            "compose": "../compose/docker-compose.yml",
            "services": dict(services),
        }
        tmp = self.desired_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.desired_file)


@contextlib.contextmanager
def stack(prefix: str, files: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """A temporary stack directory and a unique project; everything is removed afterwards."""
    project = unique_project(prefix)
    root = Path(tempfile.mkdtemp(prefix=f"berth-bench-{project}-"))
    s = Stack(
        root=root,
        project=project,
        compose_file=root / "compose" / "docker-compose.yml",
        desired_dir=root / "desired",
        desired_file=root / "desired" / "stack.yaml",
        state_dir=root / "state",
    )
    for d in (s.compose_file.parent, s.desired_dir, s.state_dir):
        d.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {}).items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    api = client()
    try:
        yield s
    finally:
        try:
            remove_project(api, project)
        finally:
            api.close()
            shutil.rmtree(root, ignore_errors=True)


def berth_cmd(s: Stack, *args: str) -> list[str]:
    return [
        PYTHON,
        "-m",
        "controller",
        "--desired",
        str(s.desired_dir),
        "--state-dir",
        str(s.state_dir),
        *args,
    ]


@dataclass(frozen=True)
class Applied:
    code: int
    t0: float  # wall clock (time.time()) just before the subprocess was started
    t1: float
    events: list[tuple[float, str, str, str]]  # (time, "project/service", phase, message)
    out: str
    err: str

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def parse_events(lines: Sequence[str]) -> list[tuple[float, str, str, str]]:
    """(time, project/service, phase, message) from apply's plain progress lines."""
    out = []
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 3 or not parts[0].endswith("Z"):
            continue
        try:
            t = dt.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        msg = parts[3].strip() if len(parts) > 3 else ""
        out.append((t.timestamp(), parts[1], parts[2].rstrip(":"), msg))
    return out


def apply(s: Stack, *, timeout: float = 180) -> Applied:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    p = subprocess.run(
        berth_cmd(s, "apply"),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=ROOT,
    )
    t1 = time.time()
    return Applied(p.returncode, t0, t1, parse_events(p.stderr.splitlines()), p.stdout, p.stderr)


def must_apply(s: Stack, what: str) -> Applied:
    a = apply(s)
    if a.code != 0:
        raise RuntimeError(f"berth apply ({what}) exited {a.code}:\n{a.out}\n{a.err}")
    return a


def phase_breakdown(a: Applied) -> list[tuple[str, float]]:
    """Seconds from apply start to each progress event (first occurrence per phase)."""
    seen: dict[str, float] = {}
    for t, _, phase, _ in a.events:
        seen.setdefault(phase, t - a.t0)
    return sorted(seen.items(), key=lambda kv: kv[1])


# --------------------------------------------------------------------------- stats / output


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, round(p / 100 * len(xs) + 0.5) - 1))
    return xs[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def other_containers(exclude_project: str | None = None) -> int:
    """Running containers not created by this benchmark (a sign of interference)."""
    api = client()
    try:
        n = 0
        for c in api.containers.list():
            if exclude_project and c.labels.get(PROJECT_LABEL) == exclude_project:
                continue
            n += 1
        return n
    finally:
        api.close()


def interference_note(project: str | None = None) -> str:
    return (
        f"load average at end: {load_average()}; other running containers: "
        f"{other_containers(project)}"
    )


def docker_events(api: Any, since: float, until: float, prefix: str) -> list[tuple[float, str]]:
    """Engine events (from the daemon's ring buffer) between two wall-clock times, for the
    containers whose name starts with `prefix` and for networks named `prefix_*`:
    (time, "type action on service") — e.g. "network disconnect on api"."""
    out: list[tuple[float, str]] = []
    low = api.api  # the low-level client accepts float since/until
    for ev in low.events(since=since, until=until, decode=True):
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        typ, action = ev.get("Type", ""), str(ev.get("Action", ""))
        t = ev.get("timeNano", 0) / 1e9
        if typ == "container":
            name = attrs.get("name", "")
            if not name.startswith(prefix):
                continue
            svc = attrs.get("com.docker.compose.service", name)
            action = action.split(":")[0]  # "exec_start: nginx -t" -> "exec_start"
            cmd = ([*ev.get("Action", "").split(":", 1), ""])[1].strip()
            what = f"container {action} on {svc}" + (f" ({cmd[:30]})" if cmd else "")
            if action == "kill":
                what += f" signal={attrs.get('signal', '')}"
        elif typ == "network":
            if not attrs.get("name", "").startswith(prefix):
                continue
            cname = ""
            with contextlib.suppress(Exception):
                cname = api.containers.get(attrs.get("container", "")).labels.get(
                    "com.docker.compose.service", ""
                )
            what = f"network {action} on {cname or 'a removed container'}"
        else:
            continue
        out.append((t, what))
    return out


def _engine_ready(
    api: Any, image: str, network: str, t0: float, passes: int, every: float, init: bool
) -> float:
    """Create and start one container, probe GET :8000/health every `every` s until
    `passes` in a row; seconds since `t0`. Removed afterwards, outside the timing."""
    c = api.containers.create(image, init=init, network=network, labels={"bench": "engine"})
    try:
        c.start()
        c.reload()
        ip = c.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        streak = 0
        while streak < passes:
            try:
                with urllib.request.urlopen(f"http://{ip}:8000/health", timeout=1) as res:
                    streak = streak + 1 if res.status == 200 else 0
            except OSError:
                streak = 0
            if streak < passes:
                time.sleep(every)
        return time.time() - t0
    finally:
        c.remove(force=True)


def engine_alone(
    api: Any, image: str, network: str, n: int, *, passes: int, every: float, init: bool = False
) -> float:
    """The engine with no controller: n containers created and started at once, each probed
    until `passes` in a row; seconds until the last is ready (what any start-first
    controller waits for before it may move traffic)."""
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=n) as pool:
        ready = [
            pool.submit(_engine_ready, api, image, network, t0, passes, every, init)
            for _ in range(n)
        ]
        return max(f.result(timeout=120) for f in ready)
