"""A registry is somebody else's server: answers that page forever, are huge, trickle, or
send the login elsewhere in clear text are cut off with a clear error, in bounded time."""

from __future__ import annotations

import http.server
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
