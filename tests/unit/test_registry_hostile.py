"""A registry is somebody else's server: answers that page forever, are huge, trickle, or
send the login elsewhere in clear text are cut off with a clear error, in bounded time."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.adapters import registry as reg
from controller.adapters.registry import Registry, RegistryError

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture()
def serve() -> Iterator[Callable[[Handler], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handle: Handler) -> str:
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                handle(self)

            do_HEAD = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()


def client(**kw: Any) -> Registry:
    return Registry(auth=lambda h: {"username": "u", "password": "pw"}, insecure=lambda h: True,
                    timeout=2, **kw)  # fmt: skip


def answer(h: http.server.BaseHTTPRequestHandler, body: bytes, **headers: str) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()
    h.wfile.write(body)


def test_a_registry_that_pages_forever_is_cut_off(serve: Callable[[Handler], str]) -> None:
    calls = []

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        calls.append(h.path)
        link = f'</v2/team/api/tags/list?last=x{len(calls)}>; rel="next"'
        answer(h, b'{"tags": []}', Link=link)

    host = serve(handle)
    assert client().tags(f"{host}/team/api") == []
    assert len(calls) == 1  # an empty page ends the list

    def same(h: http.server.BaseHTTPRequestHandler) -> None:
        calls.append(h.path)
        answer(h, b'{"tags": ["a"]}', Link='</v2/team/api/tags/list?n=1000>; rel="next"')

    calls.clear()
    host = serve(same)
    assert client().tags(f"{host}/team/api") == ["a"]
    assert len(calls) == 1  # a link back to a page already read ends it


def test_a_huge_answer_is_refused(serve: Callable[[Handler], str]) -> None:
    host = serve(lambda h: answer(h, b'{"tags": ["' + b"a" * (reg.MAX_BODY + 10) + b'"]}'))
    with pytest.raises(RegistryError, match="larger than"):
        client().tags(f"{host}/team/api")


def test_a_trickling_answer_is_cut_off(
    serve: Callable[[Handler], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reg, "READ_DEADLINE", 1.0)

    def trickle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(100):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.3)  # within the 2 s socket timeout every time

    host = serve(trickle)
    t0 = time.monotonic()
    with pytest.raises(RegistryError, match="took more than"):
        client().tags(f"{host}/team/api")
    assert time.monotonic() - t0 < 10


def test_login_is_not_sent_in_clear_text_to_a_realm_of_a_secure_registry() -> None:
    secure = Registry(auth=lambda h: {"username": "u", "password": "pw"},
                      insecure=lambda h: False)  # fmt: skip
    name = reg.split_reference("r.example/team/api")[0]
    challenge = 'Bearer realm="http://evil.example/token",service="r"'
    assert secure._answer_challenge(name, challenge, "repository:team/api:pull") is None


def test_not_json_and_wrong_shapes_are_protocol_errors(serve: Callable[[Handler], str]) -> None:
    for body in (b"<html>", b'{"tags": "a"}', b"[1, 2]"):
        host = serve(lambda h, b=body: answer(h, b))
        with pytest.raises(RegistryError) as exc:
            client().tags(f"{host}/team/api")
        assert exc.value.kind == "protocol"


def test_a_redirect_elsewhere_does_not_carry_the_login(serve: Callable[[Handler], str]) -> None:
    """urllib copies every header onto a redirect: the registry's login (here Basic, the
    password itself) went to whatever host and scheme the registry named, clear text too."""
    seen: list[str | None] = []

    def other(h: http.server.BaseHTTPRequestHandler) -> None:
        seen.append(h.headers.get("Authorization"))
        answer(h, b'{"tags": ["1.0"]}')

    elsewhere = serve(other)

    def registry(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") is None:
            h.send_response(401)
            h.send_header("WWW-Authenticate", 'Basic realm="r"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(302)
        h.send_header("Location", f"http://{elsewhere}{h.path}")
        h.send_header("Content-Length", "0")
        h.end_headers()

    host = serve(registry)
    assert client().tags(f"{host}/team/api") == ["1.0"]
    assert seen == [None]


@pytest.mark.parametrize("status", [204, 206, 300, 304])
def test_a_manifest_answer_that_is_not_200_is_no_digest(
    serve: Callable[[Handler], str], status: int
) -> None:
    """A 2xx/3xx without a manifest was taken as one: the digest of its (empty) body was
    pinned, an image that exists nowhere."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.end_headers()

    host = serve(handle)
    with pytest.raises(RegistryError) as exc:
        client().digest(f"{host}/team/api:1.0")
    assert exc.value.kind == "protocol"


def test_a_registry_that_trickles_its_headers_is_cut_off(
    serve: Callable[[Handler], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket timeout bounds each read and READ_DEADLINE only the body: a header byte
    every second held the daemon's reconcile pass (digests are resolved at plan time)
    for as long as the registry liked."""
    monkeypatch.setattr(reg, "READ_DEADLINE", 1.0)
    stop = threading.Event()

    def trickle(h: http.server.BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(600):
            if stop.is_set():
                return
            try:
                h.wfile.write(b"X-Slow: a\r\n")
                h.wfile.flush()
            except OSError:
                return
            time.sleep(0.3)  # within the 2 s socket timeout every time

    host = serve(trickle)
    t0 = time.monotonic()
    try:
        with pytest.raises(RegistryError) as exc:
            client().digest(f"{host}/team/api:1.0")
    finally:
        stop.set()
    assert exc.value.kind == "unreachable"
    assert time.monotonic() - t0 < 30  # a bound on a hang: unbounded before


@pytest.fixture()
def raw() -> Iterator[Callable[[bytes], str]]:
    """A server that answers every connection with the same bytes, HTTP or not."""
    socks: list[socket.socket] = []

    def start(payload: bytes) -> str:
        srv = socket.create_server(("127.0.0.1", 0))
        socks.append(srv)

        def loop() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(payload)

        threading.Thread(target=loop, daemon=True).start()
        return f"127.0.0.1:{srv.getsockname()[1]}"

    yield start
    for s in socks:
        s.close()


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage\r\n\r\n",  # not a status line
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",  # a header line too long
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a broken chunk
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"{}" * 4,  # cut short
        b"HTTP/1.1 401 No\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # an error's, too
    ],
)
def test_an_answer_that_is_not_http_is_a_registry_error(
    raw: Callable[[bytes], str], payload: bytes
) -> None:
    """http.client's own errors went past the callers (they catch RegistryError): a pass's
    pinning failed as a bug, and a manifest cut short was hashed and pinned."""
    host = raw(payload)
    for call in (lambda: client().tags(f"{host}/team/api"),
                 lambda: client().digest(f"{host}/team/api:1.0")):  # fmt: skip
        with pytest.raises(RegistryError) as exc:
            call()
        assert exc.value.kind in ("protocol", "unreachable", "unauthorized")


@pytest.mark.parametrize("ttl", [b"1" + b"0" * 400, b"1e400", b"-1", b'"x"', b"true", b"NaN"])
def test_an_absurd_token_lifetime_is_no_crash(serve: Callable[[Handler], str], ttl: bytes) -> None:
    """`expires_in` as a 400-digit integer raised OverflowError (not a RegistryError)."""

    def handle(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path.startswith("/token"):
            answer(h, b'{"token": "t", "expires_in": ' + ttl + b"}")
        elif h.headers.get("Authorization") == "Bearer t":
            answer(h, b'{"tags": ["1.0"]}')
        else:
            h.send_response(401)
            realm = f"http://{h.headers['Host']}/token"
            h.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="r"')
            h.send_header("Content-Length", "0")
            h.end_headers()

    host = serve(handle)
    assert client().tags(f"{host}/team/api") == ["1.0"]
