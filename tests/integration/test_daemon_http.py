"""`berth run`'s HTTP side as a real process: a bad --listen is one line and exit 1 before
any other work, idle connections cost no threads, vanishing clients leave no traceback,
and /healthz is 200 from its very first answer."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.berth import berth_cmd
from tests.support.daemon import Running, berth_run, free_port

NOWHERE = "tcp://127.0.0.1:1"  # any Docker call would fail: proves none is made first


@pytest.fixture()
def desired(tmp_path: Path) -> Path:
    d = tmp_path / "desired"
    d.mkdir()
    return d


@pytest.fixture()
def port_in_use() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


BAD_LISTEN = [
    "nohost",
    "1.2.3.4:99999",
    ":abc",
    "[::1",
    "host:-1",
    "",
    "::1:9180",
    "berth-no-such-host.invalid:9180",  # .invalid never resolves
    "192.0.2.1:9180",  # TEST-NET-1: an address of no host
    "IN_USE",  # replaced by 127.0.0.1:<a port the test holds>
]


@pytest.mark.parametrize("value", BAD_LISTEN)
def test_bad_listen_is_one_line_and_exit_1(
    value: str, desired: Path, tmp_path: Path, port_in_use: int
) -> None:
    listen = f"127.0.0.1:{port_in_use}" if value == "IN_USE" else value
    state = tmp_path / "state"
    env = {**os.environ, "DOCKER_HOST": NOWHERE, "PYTHONUNBUFFERED": "1"}
    p = subprocess.run(
        berth_cmd(desired, state, "run", "--listen", listen, "--log-format", "json"),
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"berth: --listen {listen!r}: "), p.stderr
    assert p.stdout == ""
    assert not state.exists(), "work was done before --listen was checked"


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def port_of(d: Running) -> int:
    return int(d.url.rsplit(":", 1)[1])


@pytest.mark.docker
def test_300_idle_connections_do_not_take_threads(desired: Path, tmp_path: Path) -> None:
    with berth_run(desired, tmp_path / "state", log=tmp_path / "berth.log") as d:
        port = port_of(d)
        assert get(port, "/healthz") == 200
        before = threads(d.proc.pid)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
        try:
            for _ in range(20):  # each answered within the 5 s client timeout
                assert get(port, "/healthz") == 200
            during = threads(d.proc.pid)
        finally:
            for s in idle:
                s.close()
        assert get(port, "/metrics") == 200
    assert during - before <= 8, (before, during)  # at most the worker pool, not 300


def reset_on_close(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.docker
def test_clients_gone_mid_request_or_response_leave_no_traceback(
    desired: Path, tmp_path: Path
) -> None:
    log = tmp_path / "berth.log"
    with berth_run(desired, tmp_path / "state", log=log) as d:
        port = port_of(d)
        for partial in (b"", b"GET /met", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
            for reset in (False, True):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(partial)
                if reset:
                    reset_on_close(s)
                s.close()
        for path in ("/metrics", "/status"):  # request sent, gone before reading
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            reset_on_close(s)
            s.close()
        assert get(port, "/healthz") == 200
        time.sleep(0.5)  # let the workers finish with the vanished clients
        text = log.read_text()
    assert "Traceback" not in text, text
    assert '"level": "error"' not in text, text


@pytest.mark.docker
def test_healthz_never_503_from_its_first_answer(desired: Path, tmp_path: Path) -> None:
    """Polled in a tight loop from process start until 2 s after the first answer."""
    port = free_port()
    log = tmp_path / "berth.log"
    cmd = berth_cmd(desired, tmp_path / "state", "run", "--listen", f"127.0.0.1:{port}")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*cmd, "--resync", "0.2", "--log-format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    codes: list[int] = []
    try:
        first = None
        deadline = time.monotonic() + 60
        while (first is None or time.monotonic() < first + 2.0) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                codes.append(get(port, "/healthz"))
            except OSError:  # not listening yet (refused) is fine; a 503 is not
                assert first is None, f"/healthz stopped answering; log:\n{log.read_text()}"
                continue
            first = first or time.monotonic()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert codes, f"/healthz never answered; log:\n{log.read_text()}"
    assert set(codes) == {200}, f"{codes.count(503)} of {len(codes)} answers were not 200"
