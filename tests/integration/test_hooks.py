"""Contract of the HookRunner port on controller/adapters/hooks.py: real subprocesses for
command hooks, real HTTP(S) servers and proxies on loopback for webhooks.

What a fake HookRunner must mirror: run() never raises; ok only for exit 0 or a 2xx;
detail "exit 0", "exit 3: <last output line>", "killed by SIGKILL", "timed out after 0.3s",
"could not start: <errno message>: <path>", "HTTP 204", "HTTP 500",
"HTTP 302 (a redirect, not followed)", "connection refused"; seconds measured.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters import _webhook
from controller.adapters.hooks import HookRunner
from controller.core.task_options import HookSpec
from tests.support.daemon import free_port
from tests.support.registry import make_ca_and_cert
from tests.support.wire import HOLD, RawServer, raw_server, read_head, recorder

PAYLOAD = {"event": "start", "project": "shop", "service": "web", "from_tag": "1.0",
           "to_tag": "2.0", "revision": "abc123", "outcome": "", "reason": ""}  # fmt: skip
runner = HookRunner(kill_grace=0.3)


def sh(script: str, tmp_path: Path, timeout: float = 5.0) -> tuple[bool, str, float]:
    result = runner.run(
        HookSpec(command=("sh", "-c", script), timeout=timeout), PAYLOAD, cwd=str(tmp_path)
    )
    return result.ok, result.detail, result.seconds


def gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie waiting for init)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def test_exit_0_in_the_project_dir_with_the_payload_as_berth_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_BERTH", "inherited")
    ok, detail, seconds = sh('env | grep -E "^(BERTH_|FROM_BERTH)" | sort > env.txt', tmp_path)
    assert (ok, detail) == (True, "exit 0")
    assert 0 < seconds < 1
    assert (tmp_path / "env.txt").read_text().splitlines() == [
        "BERTH_EVENT=start", "BERTH_FROM_TAG=1.0", "BERTH_OUTCOME=", "BERTH_PROJECT=shop",
        "BERTH_REASON=", "BERTH_REVISION=abc123", "BERTH_SERVICE=web", "BERTH_TO_TAG=2.0",
        "FROM_BERTH=inherited",
    ]  # fmt: skip


def test_a_failure_quotes_the_last_output_line_of_stdout_or_stderr(tmp_path: Path) -> None:
    script = 'echo "deploying $BERTH_TO_TAG"; echo "db locked" >&2; echo; echo "  "; exit 3'
    assert sh(script, tmp_path)[:2] == (False, "exit 3: db locked")
    assert sh("exit 4", tmp_path)[:2] == (False, "exit 4")
    assert sh("kill -9 $$", tmp_path)[:2] == (False, "killed by SIGKILL")


def test_the_quoted_line_is_trimmed_and_escaped(tmp_path: Path) -> None:
    script = r"printf '\033[31mred\033[0m%0300d\n' 0; exit 1"
    detail = sh(script, tmp_path)[1]
    assert detail.startswith("exit 1: \\x1b[31mred\\x1b[0m000")
    assert "\x1b" not in detail and len(detail) < 250


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    assert sh("cat; exit 5", tmp_path, timeout=2)[:2] == (False, "exit 5")


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    ok, detail, seconds = sh("sleep 30 & echo $! > child; sleep 30", tmp_path, timeout=0.3)
    assert (ok, detail) == (False, "timed out after 0.3s")
    assert 0.3 <= seconds < 0.8
    assert gone(int((tmp_path / "child").read_text()))


def test_a_group_ignoring_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    script = "trap '' TERM; sleep 30 & echo $! > child; sleep 30"
    ok, detail, seconds = sh(script, tmp_path, timeout=0.3)
    assert (ok, detail) == (False, "timed out after 0.3s")
    assert 0.6 <= seconds < 1.2  # timeout + kill_grace (0.3)
    assert gone(int((tmp_path / "child").read_text()))


def test_an_orphan_holding_the_pipe_does_not_hold_the_hook(tmp_path: Path) -> None:
    ok, detail, seconds = sh("sleep 30 & echo $! > child; echo started", tmp_path, timeout=10)
    assert (ok, detail) == (True, "exit 0")
    assert seconds < 0.8
    assert gone(int((tmp_path / "child").read_text()))  # a hook does not outlive its run


def test_a_flood_of_output_costs_no_memory(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        script = "head -c 50000000 /dev/zero | tr '\\0' y; echo; echo last words; exit 2"
        ok, detail, _ = sh(script, tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (ok, detail) == (False, "exit 2: last words")
    assert peak < 1_000_000  # 50 MB went through; a few chunks were held at once


def test_an_endless_flood_still_times_out(tmp_path: Path) -> None:
    ok, detail, seconds = sh("yes flood", tmp_path, timeout=0.3)
    assert (ok, detail) == (False, "timed out after 0.3s")
    assert seconds < 0.8


@pytest.mark.parametrize(
    ("command", "cwd", "expected"),
    [
        (("./missing.sh",), ".", "could not start: No such file or directory: ./missing.sh"),
        (("./plain.txt",), ".", "could not start: Permission denied: ./plain.txt"),
        (("true",), "nowhere", "could not start: No such file or directory: "),
        (("echo", "nul\0byte"), ".", "could not start: embedded null byte"),
    ],
)
def test_a_command_that_cannot_start(
    tmp_path: Path, command: tuple[str, ...], cwd: str, expected: str
) -> None:
    (tmp_path / "plain.txt").write_text("echo hi\n")
    hook = HookSpec(command=command, timeout=2)
    result = runner.run(hook, PAYLOAD, cwd=str(tmp_path / cwd))
    assert not result.ok
    assert result.detail.startswith(expected)


# --- webhooks -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def post(url: str, timeout: float = 2.0) -> tuple[bool, str, float]:
    result = runner.run(HookSpec(url=url, timeout=timeout), PAYLOAD, cwd="/")
    return result.ok, result.detail, result.seconds


def test_webhook_posts_the_payload_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # loopback: direct
    with recorder() as rec:
        rec.routes["/deploy?key=1"] = (204, [], b"")
        rec.routes["/fail"] = (500, [], b"")
        rec.routes["/moved"] = (302, [("Location", "/deploy?key=1")], b"")
        url = f"http://127.0.0.1:{rec.port}"
        assert post(f"{url}/deploy?key=1")[:2] == (True, "HTTP 204")
        assert post(f"{url}/fail")[:2] == (False, "HTTP 500")
        assert post(f"{url}/moved")[:2] == (False, "HTTP 302 (a redirect, not followed)")
    seen = rec.seen[0]
    assert (seen.method, seen.path) == ("POST", "/deploy?key=1")
    assert json.loads(seen.body) == PAYLOAD
    assert seen.header("Content-Type") == "application/json"
    assert seen.header("User-Agent") == "berth-hook"
    assert len(rec.seen) == 3  # the redirect was not followed


def test_webhook_refused_and_timed_out() -> None:
    assert post(f"http://127.0.0.1:{free_port()}/")[:2] == (False, "connection refused")

    def trickle(conn: socket.socket, stop: threading.Event) -> None:
        read_head(conn)
        for byte in b"HTTP/1.1 204 No Content\r\n\r\n":
            if stop.wait(0.05):
                return
            conn.sendall(bytes([byte]))

    with raw_server(trickle) as server:
        ok, detail, seconds = post(f"http://127.0.0.1:{server.port}/", timeout=0.3)
    assert (ok, detail) == (False, "timed out after 0.3s")
    assert seconds < 0.8


def test_webhook_url_that_is_not_http() -> None:
    assert post("ftp://example.com/x")[1].startswith("invalid URL")
    assert post("http://127.0.0.1:99999/")[1].startswith("invalid URL")
    assert post("http://127.0.0.1:1/a b")[1].startswith("invalid URL: whitespace")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RawServer]]:
    d = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_ca_and_cert(d, "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            read_head(tls)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    with raw_server(answer) as server:
        yield ca, server


def test_https_is_verified_with_the_system_store(
    tls_server: tuple[Path, RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, server = tls_server
    url = f"https://127.0.0.1:{server.port}/hook"
    ok, detail, _ = post(url)
    assert not ok and detail.startswith("TLS: certificate verify failed")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert post(url)[:2] == (True, "HTTP 200")


def test_https_through_a_connect_proxy(
    tls_server: tuple[Path, RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, server = tls_server
    asked: list[bytes] = []

    def proxy(conn: socket.socket, stop: threading.Event) -> None:
        asked.append(read_head(conn))
        with socket.create_connection(("127.0.0.1", server.port)) as up:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pump = threading.Thread(target=_copy, args=(up, conn), daemon=True)
            pump.start()
            _copy(conn, up)
            pump.join(HOLD)

    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with raw_server(proxy) as proxy_server:
        monkeypatch.setenv("HTTPS_PROXY", f"http://u%40x:p%3A@127.0.0.1:{proxy_server.port}")
        monkeypatch.setenv("NO_PROXY", "")
        # the name only the proxy resolves: the hook never looks it up itself
        monkeypatch.setattr(_webhook, "_is_loopback", lambda host: False)
        assert post(f"https://127.0.0.1:{server.port}/hook")[:2] == (True, "HTTP 200")
    head = asked[0].decode()
    assert head.startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n")
    assert "Proxy-Authorization: Basic dUB4OnA6\r\n" in head  # u@x:p:


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def test_http_through_a_proxy_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bytes] = []

    def proxy(conn: socket.socket, stop: threading.Event) -> None:
        asked.append(read_head(conn))
        conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    with raw_server(proxy) as server:
        monkeypatch.setenv("http_proxy", f"127.0.0.1:{server.port}")
        monkeypatch.setenv("no_proxy", "internal.example")
        assert post("http://hooks.example:8080/x?y=1")[:2] == (True, "HTTP 202")
        assert _webhook._proxy_for("http", "api.internal.example") is None
        assert _webhook._proxy_for("http", "localhost") is None
        assert _webhook._proxy_for("http", "::1") is None
        assert _webhook._proxy_for("https", "hooks.example") is None  # only http_proxy set
        monkeypatch.setenv("http_proxy", f"127.0.0.1:{free_port()}")
        assert post("http://hooks.example/")[:2] == (False, "proxy: connection refused")
    assert asked[0].startswith(b"POST http://hooks.example:8080/x?y=1 HTTP/1.1\r\n")
    assert b"Host: hooks.example:8080\r\n" in asked[0]


def test_without_pidfd_the_exit_is_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd, raising=False)
    assert sh("echo hi; exit 0", tmp_path)[:2] == (True, "exit 0")
    ok, detail, seconds = sh("sleep 30 & echo started", tmp_path)
    assert (ok, detail, seconds < 0.8) == (True, "exit 0", True)
    assert sh("sleep 30", tmp_path, timeout=0.2)[1:] < ("timed out after 0.2s", 0.7)


def test_run_never_raises_even_on_an_unexpected_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("surprise")

    monkeypatch.setattr("controller.adapters.hooks.post", broken)
    result = runner.run(HookSpec(url="http://127.0.0.1:1/"), PAYLOAD, cwd="/")
    assert (result.ok, result.detail) == (False, "RuntimeError: surprise")
    assert runner.run(HookSpec(), PAYLOAD, cwd="/").detail == "neither a command nor a url"
