"""The registry client's HTTP opener (adapters/registry.py): a registry is somebody else's
server, so every exchange with it is bounded and a redirect cannot take the login along.

- A whole exchange (connect, TLS, status line, headers, body) ends at a deadline: the
  socket timeout bounds each read only, and a registry that sends a header byte every few
  seconds would otherwise hold the caller (the daemon's reconcile pass resolves digests)
  for as long as it liked. At the deadline the sockets are shut down, so a blocked read
  returns at once and the caller reports the registry unreachable.
- A redirect to another host, port or scheme does not carry the Authorization header
  (urllib copies every header onto the new request: the password of a Basic login, or a
  token, would go to wherever the registry pointed, clear text included). The engine's
  client (Go's net/http) drops it the same way.
- No proxies guessed from the environment, and no redirect to a scheme other than http(s)
  (urllib's default redirect handler ensures that).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO, Any


class Deadline:
    """Shuts down every socket opened under it once `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def check(self) -> None:
        """Raise if the deadline ended the exchange: a read cut off by the shutdown looks
        like the end of the headers or of the body, and must not pass for an answer."""
        if self.expired:
            raise TimeoutError(f"registry answer took more than {self.seconds:g} s")

    def why(self, exc: Exception) -> Exception:
        """The error to report: the deadline's, when it is what ended the exchange."""
        try:
            self.check()
        except TimeoutError as late:
            return late
        return exc

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                _shut(sock)

    def connection(self, cls: type[http.client.HTTPConnection]) -> Callable[..., Any]:
        """A factory of `cls` connections whose sockets this deadline watches (the plain
        socket while TLS is negotiated, the TLS socket after)."""
        deadline = self

        class Watched(cls):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                create: Callable[..., socket.socket] = self._create_connection  # type: ignore[has-type]

                def watched(*args: Any, **kw: Any) -> socket.socket:
                    sock: socket.socket = create(*args, **kw)
                    deadline.watch(sock)
                    return sock

                self._create_connection = watched
                super().connect()
                deadline.watch(self.sock)

        return Watched


def _shut(sock: socket.socket) -> None:
    # the base class's shutdown: on a TLS socket it acts on the descriptor without
    # touching the TLS state another thread may be reading with; on a socket already
    # closed (or handed over to TLS) it fails harmlessly, never reaching a reused number
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._deadline.connection(http.client.HTTPConnection), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, ctx: ssl.SSLContext, deadline: Deadline) -> None:
        super().__init__(context=ctx)
        self._ctx, self._deadline = ctx, deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn = self._deadline.connection(http.client.HTTPSConnection)
        return self.do_open(conn, req, context=self._ctx)


class _Redirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        old, to = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(new.full_url)
        if (old.scheme, old.netloc.lower()) != (to.scheme, to.netloc.lower()):
            for name in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def opener(ctx: ssl.SSLContext, deadline: Deadline) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_HTTP(deadline), _HTTPS(ctx, deadline), _Redirect())
