"""A Berth stack on the test swarm: the compose file, desired/, and Berth pointed at a manager.

The stack lives in the swarm's shared directory (every node sees it at the same path), so
the edge nginx task on the manager mounts the upstreams directory Berth writes on the host,
as it would on a production edge node where Berth runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.adapters.nginx_control import NginxControl
from tests.support.berth import Result, berth, berth_cmd, popen_berth
from tests.support.daemon import free_port
from tests.support.images import ensure_app_image, ensure_nginx_image, healthcheck
from tests.support.swarm import Node, Swarm, wait_for

SITE = """\
include /etc/nginx/berth/upstreams.conf;
server {
    listen 8080;
    location = /nginx-health { return 200 "ok\\n"; }
    location / {
        proxy_pass http://app_backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 600s;
        proxy_connect_timeout 1s;  # a lost node never answers the SYN: try the next peer
        proxy_next_upstream error timeout;
    }
}
"""


def compose(
    registry: str,
    port: int,
    *,
    replicas: int = 3,
    deadline: str = "20s",
    probe_timeout: str = "2s",
    canary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "x-berth": {
            "backend": "swarm",
            "proxy": {
                "service": "nginx",
                "upstreams_file": "../nginx/upstreams/upstreams.conf",
                "switch": "dynamic",
            },
        },
        "services": {
            "app": {
                "image": f"{registry}/berth-test/app",
                "init": True,
                "stop_grace_period": "5s",
                "healthcheck": {
                    "test": healthcheck(),
                    "interval": "1s",
                    "timeout": "2s",
                    "retries": 2,
                },
                "deploy": {"replicas": replicas},
                "networks": ["backend"],
                "x-berth": {
                    "upstream": {"name": "app_backend", "port": 8000},
                    "health": {
                        "path": "/health",
                        "port": 8000,
                        "interval": "200ms",
                        "timeout": probe_timeout,
                        "healthy_threshold": 2,
                    },
                    "progress_deadline": deadline,
                    "drain_timeout": "20s",
                    **({"canary": canary} if canary else {}),
                },
            },
            "nginx": {
                "image": f"{registry}/berth-test/nginx",
                "ports": [f"{port}:8080"],
                "volumes": [
                    "../nginx/conf.d:/etc/nginx/conf.d:ro",
                    "../nginx/upstreams:/etc/nginx/berth:rw",
                ],
                "networks": ["backend"],
                "stop_grace_period": "5s",
            },
        },
        "networks": {"backend": {}},
    }


@dataclass
class SwarmStack:
    swarm: Swarm
    root: Path
    project: str
    port: int
    via: Node | None = None  # the manager Berth talks to (and the edge runs on); default m1

    @property
    def node(self) -> Node:
        return self.via or self.swarm.manager

    @property
    def desired(self) -> Path:
        return self.root / "desired"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def url(self) -> str:
        return f"http://{self.node.ip}:{self.port}"

    def write(
        self,
        app_tag: str,
        *,
        replicas: int = 3,
        deadline: str = "20s",
        probe_timeout: str = "2s",
        canary: dict[str, Any] | None = None,
    ) -> None:
        doc = compose(
            self.swarm.registry,
            self.port,
            replicas=replicas,
            deadline=deadline,
            probe_timeout=probe_timeout,
            canary=canary,
        )
        doc = {"name": self.project, **doc}
        (self.root / "compose").mkdir(parents=True, exist_ok=True)
        (self.root / "compose" / "docker-compose.yml").write_text(yaml.safe_dump(doc))
        self.desired.mkdir(parents=True, exist_ok=True)
        desired = {
            "project": self.project,
            "compose": "../compose/docker-compose.yml",
            "services": {"app": {"tag": app_tag}, "nginx": {"tag": "1"}},
        }
        (self.desired / "stack.yaml").write_text(yaml.safe_dump(desired))
        site = self.root / "nginx" / "conf.d" / "site.conf"
        site.parent.mkdir(parents=True, exist_ok=True)
        site.write_text(SITE)
        (self.root / "nginx" / "upstreams").mkdir(parents=True, exist_ok=True)

    def args(self, *args: str) -> tuple[str, ...]:
        return ("--docker-host", f"tcp://{self.node.ip}:2375", *args)

    def berth(self, *args: str, timeout: float = 240) -> Result:
        return berth(self.desired, self.state, *self.args(*args), timeout=timeout)

    def popen(self, *args: str) -> Any:
        return popen_berth(self.desired, self.state, *self.args(*args))

    def status(self) -> list[dict[str, Any]]:
        out = self.berth("status", "--json")
        if out.code != 0 or not out.out.strip():
            # said, not a JSONDecodeError: a poll (wait_for) takes it as not-yet and keeps
            # it as the last error (seen in CI while a killed worker was being noticed)
            raise StatusUnavailable(f"berth status exited {out.code}: {out.err.strip()[-400:]}")
        rows: list[dict[str, Any]] = json.loads(out.out)
        return rows

    def get(self, path: str = "/version", timeout: float = 3) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as res:
            return str(res.read().decode().strip())

    def wait_serving(self, version: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self.get()
                if version in last:
                    return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise AssertionError(f"{self.url} never served {version}: last {last!r}")

    def peers(self, upstream: str = "app_backend") -> set[str]:
        """The addresses nginx routes the upstream to now, from its control socket."""
        sock = str(self.root / "nginx" / "upstreams" / "control.sock")
        state = NginxControl(sock).state()
        up = (state.get("upstreams") or {}).get(upstream) or {}
        out: set[str] = set()
        for side in up.get("sides") or []:
            if (side.get("weight") or 0) > 0:
                out.update(str(p["addr"]) for p in side.get("peers") or [] if p.get("addr"))
        return out

    def services(self) -> dict[str, dict[str, Any]]:
        """Berth's services of this project on the swarm, by name."""
        api = self.node.client.api
        rows = api.services(filters={"label": [f"com.docker.compose.project={self.project}"]})
        return {r["Spec"]["Name"]: r for r in rows}

    def app_tasks(self) -> list[dict[str, Any]]:
        api = self.node.client.api
        ids = [
            sid
            for sid, s in ((r["ID"], r) for r in self.services().values())
            if s["Spec"]["Labels"].get("com.docker.compose.service") == "app"
        ]
        return list(api.tasks(filters={"service": ids})) if ids else []


def new_stack(swarm: Swarm, port: int, via: Node | None = None) -> SwarmStack:
    project = "sw" + uuid.uuid4().hex[:6]
    root = Path(swarm.shared) / project
    root.mkdir(parents=True)
    return SwarmStack(swarm=swarm, root=root, project=project, port=port, via=via)


class Daemon:
    """`berth run` against the swarm's manager, restartable (a crash and a new start)."""

    def __init__(self, stack: SwarmStack) -> None:
        self.stack = stack
        self.listen = f"127.0.0.1:{free_port()}"
        self.log = stack.root / "berth-run.log"  # a file, not a pipe nobody reads
        self.proc = self._spawn()

    def _spawn(self) -> Any:
        with self.log.open("a") as out:
            return subprocess.Popen(
                berth_cmd(
                    self.stack.desired,
                    self.stack.state,
                    *self.stack.args("run", "--listen", self.listen),
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)

    def start(self) -> None:
        self.proc = self._spawn()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=30)
        except Exception:
            self.proc.kill()


def tasks_by_node(stack: SwarmStack) -> dict[str, set[str]]:
    """node hostname -> overlay addresses (IP:8000) of the app's running tasks there."""
    api = stack.node.client.api
    names = {n["ID"]: n["Description"]["Hostname"] for n in api.nodes()}
    out: dict[str, set[str]] = {}
    for t in stack.app_tasks():
        if t["DesiredState"] != "running" or t["Status"]["State"] != "running":
            continue
        for att in t.get("NetworksAttachments") or []:
            for addr in att.get("Addresses") or []:
                out.setdefault(names[t["NodeID"]], set()).add(addr.split("/")[0] + ":8000")
    return out


def new_revision_running(stack: SwarmStack, tag: str) -> bool:
    """Some replica of `tag` has a task up (created by the rollout in flight)."""
    ids = {
        r["ID"] for r in stack.services().values() if r["Spec"]["Labels"].get("berth.tag") == tag
    }
    return any(
        t["ServiceID"] in ids and t["Status"]["State"] in ("starting", "running")
        for t in stack.app_tasks()
    )


class StatusUnavailable(OSError):
    """`berth status` could not read the swarm this time (it exits 1 and says why)."""


def settled(stack: SwarmStack) -> str | None:
    """The one version every routed peer and every app service runs, once steady."""
    rows = {r["service"]: r for r in stack.status()}
    app = rows["app"]
    tags = {
        r["Spec"]["Labels"].get("berth.tag")
        for r in stack.services().values()
        if r["Spec"]["Labels"].get("com.docker.compose.service") == "app"
    }
    if len(tags) != 1 or app["ready"] != 3 or len(stack.peers()) != 3:
        return None
    return str(tags.pop())


@contextlib.contextmanager
def daemon_on(
    swarm: Swarm, host: Any, *, via: Node | None = None, deadline: str = "40s"
) -> Iterator[Daemon]:
    """`berth run` on a fresh stack of app 1.0.0 (2.0.0 pushed too) x 3 behind the edge,
    probed every 200 ms with a 500 ms timeout; yielded once 3 peers are routed."""
    for tag in ("1.0.0", "2.0.0"):
        swarm.push(ensure_app_image(tag, client=host))
    swarm.push(ensure_nginx_image(client=host))
    s = new_stack(swarm, free_port(), via=via)
    s.write("1.0.0", probe_timeout="500ms", deadline=deadline)
    d = Daemon(s)
    try:
        s.wait_serving("1.0.0", timeout=90)
        wait_for(lambda: len(s.peers()) == 3, timeout=30, what="3 peers routed")
        yield d
    finally:
        d.stop()
