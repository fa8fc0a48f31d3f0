"""`--listen`: parsing, binding and the image's HEALTHCHECK probe.

Kept apart from the HTTP server (httpd.py): a bad value must be refused before the daemon
does anything else, and the probe runs alone in the container's HEALTHCHECK.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import re
import socket
import sys
from collections.abc import Callable

from controller.errors import BerthError

_LABEL = r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")
_EXAMPLE = "expected HOST:PORT, e.g. 127.0.0.1:9180 or [::1]:9180"


class ListenError(BerthError):
    """`--listen` is malformed or cannot be bound. A BerthError, so the command line prints
    one line and exits 1 instead of a traceback."""


# -- --listen ---------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port), or ListenError naming --listen and the value.

    Pure: resolving and binding happen in `serve`, so a typo is refused in milliseconds
    before the daemon does anything else. An IPv6 host goes in brackets (`[::1]:9180`),
    because its own colons make `::1:9180` ambiguous. An empty host (`:9180`) means
    127.0.0.1, never all interfaces: listening publicly must be asked for by name. Port 0
    (a random port) is refused: nobody could find the endpoints.
    """

    def bad(why: str) -> ListenError:
        return ListenError(f"--listen {text!r}: {why}")

    if text.startswith("["):
        inner, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise bad(f"an IPv6 address needs ']:PORT' after it ({_EXAMPLE})")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise bad(f"{inner!r} is not an IPv6 address") from None
        host = inner
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise bad(_EXAMPLE)
        if ":" in host:
            raise bad(f"an IPv6 address goes in brackets: [{host}]:{port_text}")
        _check_host(host, bad)
    return host or "127.0.0.1", _port(port_text, bad)


def _check_host(host: str, bad: Callable[[str], ListenError]) -> None:
    if not host:
        return
    if re.fullmatch(r"[0-9.]+", host):  # looks like IPv4: must be one, not a "hostname"
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv4 address") from None
    elif len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise bad(f"{host!r} is not a host name or address")


def _port(text: str, bad: Callable[[str], ListenError]) -> int:
    if not (text.isascii() and text.isdigit()):  # refuses '', '-1', '+80', ' 80', 'abc'
        raise bad(f"port {text!r} is not a number ({_EXAMPLE})")
    port = int(text)
    if not 1 <= port <= 65535:
        raise bad(f"port {port} is out of range 1-65535")
    return port


def show(address: tuple[str, int]) -> str:
    """(host, port) as an operator writes it for --listen (IPv6 in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe(listen: str, *, timeout: float = 2.0) -> int:
    """The image's HEALTHCHECK: 0 when /healthz answers 200 at `listen`, else 1.

    It parses the same value the daemon does (BERTH_LISTEN), so the check follows the
    address the operator chose instead of assuming one; a wildcard address is probed on
    the loopback of its family."""
    try:
        host, port = parse_listen(listen)
    except ListenError as exc:
        print(f"berth: {exc}", file=sys.stderr)
        return 1
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return 0 if conn.getresponse().status == 200 else 1
    except (OSError, http.client.HTTPException):
        return 1
    finally:
        conn.close()


def bind(address: tuple[str, int]) -> socket.socket:
    """A listening socket, or ListenError with one line saying why (name, address or port).

    Every address the host resolves to is tried in order (`localhost` may give ::1 first
    on a host without IPv6); the first error is the one reported."""
    host, port = address
    where = f"--listen {show(address)!r}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ListenError(f"{where}: cannot resolve {host!r} ({exc.strerror})") from None
    first: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            first = first or exc
            continue
        sock.setblocking(False)
        return sock
    raise ListenError(f"{where}: {_bind_reason(first)}") from None


def _bind_reason(exc: OSError | None) -> str:
    if exc is None:
        return "the name resolves to no address"
    reasons = {
        errno.EADDRINUSE: "address already in use (another berth run, or another program?)",
        errno.EADDRNOTAVAIL: "cannot assign that address: it is not an address of this host",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    return reasons.get(exc.errno or 0, f"cannot listen: {exc.strerror or exc}")
