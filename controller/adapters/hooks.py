"""The HookRunner port: a rollout's start/success/rollback hooks, bounded and never raising.

A command hook runs on Berth's host in the compose project's directory, in a process group
of its own, with Berth's environment plus the rollout as BERTH_* variables, stdin from
/dev/null and stdout+stderr read as they come (only the last 4 KiB is kept: a hook printing
gigabytes costs no memory). At the timeout the whole group gets SIGTERM, then SIGKILL
`kill_grace` seconds later. When the command itself exits, what is left of its group (a
`sleep 100 &` still holding the output pipe) is stopped the same way: a hook does not
outlive its run, and an orphan holding the pipe cannot make run() wait. A hook that must
leave something running detaches it into a session of its own (setsid).

A webhook hook is one POST of the rollout as JSON (controller/adapters/_webhook.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO

from controller.adapters._webhook import post
from controller.core.task_options import HookSpec
from controller.errors import printable
from controller.task_ports import HookResult

TAIL = 4096  # bytes of a command's output kept
LINE = 200  # characters of its last line quoted in the detail
_CHUNK = 1 << 16
_TICK = 0.05  # seconds between looks at the process when no pidfd tells its exit


class HookRunner:
    """Thread-safe: each run has its own process and connection."""

    def __init__(self, *, kill_grace: float = 2.0) -> None:
        self._grace = kill_grace

    def run(self, hook: HookSpec, payload: Mapping[str, str], *, cwd: str) -> HookResult:
        started = time.monotonic()
        try:
            if hook.command:
                ok, detail = self._command(hook.command, payload, cwd, hook.timeout)
            elif hook.url:
                ok, detail = post(hook.url, payload, hook.timeout)
            else:
                ok, detail = False, "neither a command nor a url"
        except Exception as exc:  # the port's promise: a hook's failure is a result
            ok, detail = False, f"{type(exc).__name__}: {printable(str(exc)[:LINE])}"
        return HookResult(ok=ok, detail=detail, seconds=time.monotonic() - started)

    def _command(
        self, command: Sequence[str], payload: Mapping[str, str], cwd: str, timeout: float
    ) -> tuple[bool, str]:
        env = dict(os.environ)
        env.update({"BERTH_" + re.sub(r"\W", "_", k.upper()): v for k, v in payload.items()})
        try:
            proc = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            where = f": {printable(str(exc.filename)[:LINE])}" if exc.filename else ""
            return False, f"could not start: {exc.strerror or exc}{where}"
        except ValueError as exc:  # an argument or variable with a NUL byte
            return False, f"could not start: {exc}"
        assert proc.stdout is not None
        with _Output(proc.stdout) as output, _exit_watch(proc.pid) as exit_fd:
            try:
                timed_out = self._supervise(proc, output, exit_fd, time.monotonic() + timeout)
            finally:
                self._stop_group(proc, output)
        if timed_out:
            return False, f"timed out after {timeout:g}s"
        return _verdict(proc.returncode, output.last_line())

    @staticmethod
    def _supervise(
        proc: subprocess.Popen[bytes], output: _Output, exit_fd: int | None, deadline: float
    ) -> bool:
        """Reads the output until the command exits (and a moment more while the pipe
        has data) or the deadline passes; True for the latter."""
        if exit_fd is not None:
            output.watch_exit(exit_fd)
        while not _exited(proc.pid):
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            output.pump(min(left, _TICK) if exit_fd is None else left)
        settle = time.monotonic() + 0.1  # what the command wrote just before it exited
        while not output.eof and time.monotonic() < settle:
            output.pump(settle - time.monotonic())
        return False

    def _stop_group(self, proc: subprocess.Popen[bytes], output: _Output) -> None:
        """SIGTERM to the group, then SIGKILL once the leader has exited and the pipe is
        closed, or `kill_grace` has passed. The leader is not reaped before the SIGKILL,
        so its process group id cannot have been reused by then."""
        _signal_group(proc.pid, signal.SIGTERM)
        until = time.monotonic() + self._grace
        while not (output.eof and _exited(proc.pid)) and time.monotonic() < until:
            output.pump(min(_TICK, until - time.monotonic()))
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # only a process stuck in the kernel outlives SIGKILL


def _verdict(returncode: int | None, line: str) -> tuple[bool, str]:
    if returncode is None:
        return False, "did not exit after SIGKILL"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        detail = f"killed by {name}"
    else:
        detail = f"exit {returncode}"
    return returncode == 0, f"{detail}: {line}" if line and returncode else detail


class _Output:
    """The command's output pipe, read without blocking; the last TAIL bytes kept."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self._fd, selectors.EVENT_READ)
        self.tail = bytearray()
        self.eof = False
        self._exit_fd: int | None = None

    def watch_exit(self, fd: int) -> None:
        """Let `pump` also wake when this fd (a pidfd) becomes readable, once."""
        self._exit_fd = fd
        self.selector.register(fd, selectors.EVENT_READ)

    def __enter__(self) -> _Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.selector.close()
        self._pipe.close()

    def pump(self, wait: float) -> None:
        """Waits up to `wait` seconds for output (or the exit fd), then reads what is
        there, at most 16 chunks: a flood must not keep the caller from its deadline."""
        ready = {key.fd for key, _ in self.selector.select(max(wait, 0))}
        if self._exit_fd in ready:  # it stays readable: a second wake-up would be a spin
            self.selector.unregister(self._exit_fd)
            self._exit_fd = None
        if self.eof:
            return
        for _ in range(16):
            try:
                chunk = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                self.selector.unregister(self._fd)
                return
            self.tail += chunk
            del self.tail[:-TAIL]

    def last_line(self) -> str:
        lines = self.tail.decode("utf-8", "replace").splitlines()
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return printable(last[:LINE])


@contextlib.contextmanager
def _exit_watch(pid: int) -> Iterator[int | None]:
    """A pidfd (readable once the process has exited), or None where the kernel has none."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _exited(pid: int) -> bool:
    """Whether the process has exited, without reaping it (its group id stays taken)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
