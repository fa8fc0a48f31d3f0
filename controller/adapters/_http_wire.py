"""One HTTP/1.1 exchange on a fresh connection, bounded as a whole by one deadline: the
wire shared by the smoke-check client (http_client.py) and webhooks (_webhook.py).

http.client's timeout bounds each socket operation, so a server trickling a byte a second
holds a read for ever. Here the DNS lookup, the connect, the TLS handshake and every send
and receive get only what is left of one deadline; http.client still parses the answer
(status line, its 100-header and 64 KiB-line limits, chunked bodies).
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any, cast
from urllib.parse import quote

from controller.errors import printable

_Address = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        return left


class _Reader(io.RawIOBase):
    """The socket as http.client reads it, each receive bounded by what is left."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)


class _Wire:
    """The one method of a socket that http.client.HTTPResponse uses."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Reader(self._sock, self._deadline))


def connect(host: str, port: int, deadline: Deadline) -> socket.socket:
    """A TCP connection to the first address of `host` that accepts one."""
    error: OSError = ConnectionError(f"no address for {host}")
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def _resolve(host: str, port: int, deadline: Deadline) -> Sequence[_Address]:
    """getaddrinfo, which takes no timeout, in a thread of its own for a name (a hung
    resolver is left behind, not waited for); at once for an IP literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    future: Future[Sequence[_Address]] = Future()

    def work() -> None:
        try:
            future.set_result(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=work, name="berth-resolve", daemon=True).start()
    return future.result(timeout=deadline.left())


def tls(sock: socket.socket, host: str, deadline: Deadline) -> ssl.SSLSocket:
    """The connection wrapped in TLS verified by the system's CA store (SSL_CERT_FILE
    and SSL_CERT_DIR apply), the handshake bounded by the deadline as a whole."""
    wrapped = ssl.create_default_context().wrap_socket(
        sock, server_hostname=host, do_handshake_on_connect=False
    )
    wrapped.setblocking(False)
    while True:
        try:
            wrapped.do_handshake()
            return wrapped
        except ssl.SSLWantReadError:
            waiting = select.select([wrapped], [], [], deadline.left())[0]
        except ssl.SSLWantWriteError:
            waiting = select.select([], [wrapped], [], deadline.left())[1]
        if not waiting:
            raise TimeoutError("TLS handshake")


def request_target(path: str) -> str:
    """An absolute path (and query) as sent: non-ASCII characters percent-encoded as
    UTF-8; ValueError for whitespace or a control character (either would split the
    request line)."""
    if not path.startswith("/"):
        raise ValueError(f"invalid path {printable(path[:100])!r}: must start with /")
    if any(c <= " " or c == "\x7f" for c in path):
        raise ValueError(f"invalid path {printable(path[:100])!r}: whitespace or control")
    return quote(path, safe=_VISIBLE)


_VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))


def host_header(host: str, port: int, default: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


def send(
    sock: socket.socket,
    deadline: Deadline,
    head: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
) -> None:
    """`head` is the request line; the header values must be latin-1 (checked before)."""
    lines = [head, *(f"{name}: {value}" for name, value in headers), "", ""]
    sock.settimeout(deadline.left())  # sendall's timeout bounds the whole send
    sock.sendall("\r\n".join(lines).encode("latin-1") + (body or b""))


def begin(sock: socket.socket, deadline: Deadline, method: str) -> http.client.HTTPResponse:
    """The answer's status line and headers read."""
    answer = http.client.HTTPResponse(cast(socket.socket, _Wire(sock, deadline)), method=method)
    answer.begin()
    return answer


def receive(
    sock: socket.socket, deadline: Deadline, method: str, limit: int
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, at most `limit` bytes of the body); http.client's exceptions,
    OSError and TimeoutError pass through for `describe`."""
    answer = begin(sock, deadline, method)
    headers: dict[str, str] = {}
    for name, value in answer.getheaders():
        value = " ".join(value.split("\r\n"))  # an obsolete folded line is one value
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body = bytearray()
    while len(body) < limit:
        chunk = answer.read(min(1 << 16, limit - len(body)))
        if not chunk:
            if answer.length:  # read(amt) does not raise it, read() would
                raise http.client.IncompleteRead(bytes(body), answer.length)
            break
        body += chunk
    return answer.status, headers, bytes(body)


def describe(exc: BaseException, timeout: float) -> str:
    """What went wrong, in the words an operator reads in a rollout's reason."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"DNS: {exc.strerror}"
    if isinstance(exc, http.client.HTTPException | ValueError):
        text = str(exc).strip() or type(exc).__name__
        return f"malformed response: {printable(text[:200])}"
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{type(exc).__name__}: {exc}"


def checked_headers(headers: Mapping[str, str]) -> str | None:
    """Why these request headers cannot be sent (a name that is not a token, a value with
    CR, LF or NUL, or not latin-1), or None."""
    for name, value in headers.items():
        if not is_token(name):
            return f"invalid header name {printable(name[:100])!r}"
        if any(c in value for c in "\r\n\0"):
            return f"header {name} has a control character in its value"
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return f"header {name} has a value that is not latin-1"
    return None


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN for c in text)
