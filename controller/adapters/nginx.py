"""Talking to nginx: test the configuration, reload it, and wait for the old workers to go.

`nginx -s reload` (or SIGHUP) returns as soon as the master has read the new configuration;
the old worker processes keep serving their in-flight requests and exit afterwards. A backend
stopped before they exit drops those requests, so a reload here ends only when every worker
that existed before the signal is gone (bounded by the drain timeout).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

from controller.errors import NotFound, ProxyError
from controller.ports import ContainerRuntime

WORKER = "nginx: worker process"
SHUTTING_DOWN = "worker process is shutting down"
LUA_MODULE = "ngx_http_lua_module"


@contextlib.contextmanager
def dir_lock(path: str) -> Iterator[None]:
    """An exclusive advisory lock (flock) on the directory holding `path`, so Berth
    processes sharing an upstream file (`berth run` and a `berth apply`, say) take turns:
    each re-reads, changes its own block and reloads without losing the other's change."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def atomic_write(path: str, text: str) -> None:
    """Write via a temporary file in the same directory and rename: nginx never reads half a
    file. (Mount the directory into the nginx container, not the file: a file bind mount
    keeps showing the old inode after a rename.)"""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".berth-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ContainerNginx:
    """nginx running in containers of the stack (the `x-berth.proxy.service`)."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        container_ids: Sequence[str],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.runtime = runtime
        self.ids = list(container_ids)
        self.sleep = sleep

    def test(self) -> None:
        for cid in self.ids:
            code, out = self.runtime.exec(cid, ["nginx", "-t", "-q"])
            if code != 0:
                raise ProxyError(f"nginx -t failed in {cid[:12]}: {out.strip()[-400:]}")

    def lua_available(self) -> bool:
        """Whether this nginx loads the Lua module (its full configuration, `nginx -T`)."""
        code, out = self.runtime.exec(self.ids[0], ["nginx", "-T"])
        return code == 0 and LUA_MODULE in out

    def reload(self, *, drain_timeout: float) -> float:
        """SIGHUP every nginx container, then wait for its pre-reload workers to exit.
        Returns the seconds spent waiting for the drain."""
        before = {cid: self._workers(cid) for cid in self.ids}
        for cid in self.ids:
            self.runtime.kill(cid, "SIGHUP")
        t0 = time.monotonic()
        for cid, old in before.items():
            self._wait(cid, old, t0=t0, drain_timeout=drain_timeout)
        return time.monotonic() - t0

    def _workers(self, cid: str) -> set[int]:
        try:
            return {pid for pid, cmd in self.runtime.processes(cid) if WORKER in cmd}
        except NotFound as exc:
            raise ProxyError(f"nginx container {cid[:12]} is gone") from exc

    def _wait(self, cid: str, old: set[int], *, t0: float, drain_timeout: float) -> None:
        reloaded = False
        while True:
            procs = self.runtime.processes(cid)
            workers = {pid for pid, cmd in procs if WORKER in cmd}
            fresh = {pid for pid, cmd in procs if WORKER in cmd and SHUTTING_DOWN not in cmd}
            reloaded = reloaded or bool(fresh - old)
            if reloaded and not (workers & old):
                return
            waited = time.monotonic() - t0
            if not reloaded and waited > 10.0:
                raise ProxyError("nginx did not start new workers after SIGHUP (see its log)")
            if reloaded and waited > drain_timeout:
                return  # the drain timeout bounds the wait; stragglers are cut off
            self.sleep(0.02)


class HostNginx:
    """nginx on the host, driven by configurable commands (e.g. `nginx -t`, `nginx -s reload`)."""

    def __init__(
        self,
        test_command: Sequence[str],
        reload_command: Sequence[str],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.test_command = list(test_command)
        self.reload_command = list(reload_command)
        self.sleep = sleep

    def test(self) -> None:
        self._run(self.test_command, "test")

    def lua_available(self) -> bool:
        """Whether this nginx loads the Lua module: its test command with `-T` dumps the
        whole configuration (a command that is not nginx's fails, and means no)."""
        try:
            res = subprocess.run(
                [*self.test_command, "-T"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return res.returncode == 0 and LUA_MODULE in res.stdout + res.stderr

    def reload(self, *, drain_timeout: float) -> float:
        before = _host_workers()
        self._run(self.reload_command, "reload")
        t0 = time.monotonic()
        while time.monotonic() - t0 < drain_timeout and (_host_workers() & before):
            self.sleep(0.02)
        return time.monotonic() - t0

    @staticmethod
    def _run(cmd: Sequence[str], what: str) -> None:
        try:
            res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ProxyError(f"nginx {what} command {list(cmd)} failed: {exc}") from exc
        if res.returncode != 0:
            msg = (res.stderr or res.stdout).strip()[-400:]
            raise ProxyError(f"nginx {what} failed (exit {res.returncode}): {msg}")


def _host_workers() -> set[int]:
    """Worker pids of the nginx masters in our PID namespace: nginx on this host, not the
    nginx of some container (whose processes /proc shows too, in their own PID namespace).
    (Not the mount namespace: systemd's PrivateTmp/ProtectSystem give Berth its own.)"""
    procs: dict[int, tuple[int, str]] = {}  # pid -> (ppid, cmdline)
    try:
        own_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        own_ns = ""
    masters: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if "nginx: master process" in cmd and os.readlink(f"/proc/{entry}/ns/pid") == own_ns:
                masters.add(pid)
        except (OSError, ValueError, IndexError):
            continue
        procs[pid] = (ppid, cmd)
    return {pid for pid, (ppid, cmd) in procs.items() if ppid in masters and WORKER in cmd}
