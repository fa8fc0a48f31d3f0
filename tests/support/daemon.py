"""Start `berth run` as a real process for tests, and a Docker socket proxy that can go
silent (to cut the event stream the way a broken connection does)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.berth import berth_cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, trust_env=False)

    def metric(self, name: str, **labels: str) -> float | None:
        for line in self.get("/metrics").text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None


@contextlib.contextmanager
def berth_run(
    desired: Path,
    state: Path,
    *,
    resync: float = 30.0,
    docker_host: str | None = None,
    log: Path,
    extra: Sequence[str] = (),
    env_extra: Mapping[str, str] | None = None,
) -> Iterator[Running]:
    port = free_port()
    cmd = berth_cmd(
        desired,
        state,
        "run",
        "--listen",
        f"127.0.0.1:{port}",
        "--resync",
        str(resync),
        "--log-format",
        "json",
        *extra,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    r = Running(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: _ready(r), 60, f"berth run never became ready; log:\n{_tail(log)}")
        yield r
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(r: Running) -> bool:
    if r.proc.poll() is not None:
        raise AssertionError(f"berth run exited {r.proc.returncode}:\n{_tail(r.log)}")
    try:
        return r.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def _tail(p: Path) -> str:
    try:
        return "\n".join(p.read_text().splitlines()[-40:])
    except OSError:
        return ""


def wait_for(cond: object, timeout: float, msg: str, *, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(step)
    raise AssertionError(msg)


@dataclass
class SocketProxy:
    """A unix-socket proxy in front of the Docker socket. `silence_events()` makes every
    /events stream (current and future) stop delivering bytes without closing: exactly what
    a half-dead TCP connection looks like to the client."""

    path: str
    upstream: str = "/var/run/docker.sock"
    silent: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(self.path)
        self._srv.listen(64)
        self._srv.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._srv.close()

    def silence_events(self) -> None:
        self.silent.set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        up.connect(self.upstream)
        first = client.recv(65536)
        is_events = b"/events" in first.split(b"\r\n", 1)[0]
        up.sendall(first)

        def pump(src: socket.socket, dst: socket.socket, events: bool) -> None:
            with contextlib.suppress(OSError):
                while not self._stop.is_set():
                    data = src.recv(65536)
                    if not data:
                        break
                    if events and self.silent.is_set():
                        continue  # swallow: the stream goes quiet, the socket stays open
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=pump, args=(client, up, False), daemon=True).start()
        pump(up, client, is_events)
