"""A webhook hook: one POST of the rollout as JSON, bounded as a whole by the hook's timeout.

Unlike a smoke check (which goes to a container's bridge IP), a webhook goes to the outside
world, so it goes the way the host's other outbound clients go: HTTPS_PROXY / HTTP_PROXY
(either case) name the proxy, NO_PROXY the hosts reached directly — the same variables
Apprise's notifications and the Docker engine's pulls honour. Loopback (localhost,
127.0.0.0/8, ::1) is always reached directly: no proxy can reach Berth's own loopback.
https goes through a proxy as a CONNECT tunnel, so TLS is still verified end to end (with
the system CA store, SSL_CERT_FILE and SSL_CERT_DIR apply). Redirects are not followed.

A hook URL may carry a token (Slack-style webhooks do): no detail ever quotes it, nor the
proxy's address or credentials.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import socket
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from controller.adapters import _http_wire as wire

USER_AGENT = "berth-hook"
_ANSWER_LIMIT = 1 << 16  # bytes of the receiver's body read (it is not used)


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # a Proxy-Authorization value


class _ProxyRefused(Exception):
    pass


def post(url: str, payload: Mapping[str, str], timeout: float) -> tuple[bool, str]:
    """(ok, detail): ok for a 2xx answer. Never raises."""
    parts = urlsplit(url)
    try:
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return False, "invalid URL (port)"
    if scheme not in ("http", "https") or not host:
        return False, "invalid URL: an http:// or https:// URL with a host is needed"
    try:
        proxy = _proxy_for(scheme, host)
    except ValueError as exc:
        return False, f"proxy: {exc}"
    try:
        path = wire.request_target((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    except ValueError:
        return False, "invalid URL: whitespace or a control character in its path"
    body = json.dumps(dict(payload), sort_keys=True).encode()
    fields = [
        ("Host", wire.host_header(host, port, 443 if scheme == "https" else 80)),
        ("User-Agent", USER_AGENT),
        ("Content-Type", "application/json"),
        ("Accept", "*/*"),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
    ]
    if proxy and scheme == "http":  # an absolute-form request to the proxy itself
        path = f"http://{fields[0][1]}{path}"
        if proxy.authorization:
            fields.append(("Proxy-Authorization", proxy.authorization))
    try:
        status = _exchange(
            scheme, host, port, proxy, f"POST {path} HTTP/1.1", fields, body, timeout
        )
    except _ProxyRefused as exc:
        return False, str(exc)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        where = "proxy: " if proxy and isinstance(exc, ConnectionRefusedError) else ""
        return False, where + wire.describe(exc, timeout)
    if 200 <= status < 300:
        return True, f"HTTP {status}"
    if 300 <= status < 400:
        return False, f"HTTP {status} (a redirect, not followed)"
    return False, f"HTTP {status}"


def _exchange(
    scheme: str,
    host: str,
    port: int,
    proxy: _Proxy | None,
    head: str,
    fields: list[tuple[str, str]],
    body: bytes,
    timeout: float,
) -> int:
    deadline = wire.Deadline(timeout)
    sock = wire.connect(proxy.host, proxy.port, deadline) if proxy else None
    try:
        if sock is None:
            sock = wire.connect(host, port, deadline)
        elif scheme == "https":
            _tunnel(sock, deadline, wire.host_header(host, port, -1), proxy)
        if scheme == "https":
            sock = wire.tls(sock, host, deadline)
        wire.send(sock, deadline, head, fields, body)
        return wire.receive(sock, deadline, "POST", _ANSWER_LIMIT)[0]
    finally:
        if sock is not None:
            sock.close()


def _tunnel(
    sock: socket.socket, deadline: wire.Deadline, target: str, proxy: _Proxy | None
) -> None:
    fields = [("Host", target)]
    if proxy and proxy.authorization:
        fields.append(("Proxy-Authorization", proxy.authorization))
    wire.send(sock, deadline, f"CONNECT {target} HTTP/1.1", fields, None)
    status = wire.begin(sock, deadline, "CONNECT").status
    if status != 200:
        raise _ProxyRefused(f"proxy: CONNECT answered HTTP {status}")


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    """The proxy the environment names for this URL, or None to go directly. ValueError
    for a proxy setting that cannot be used."""
    if host == "localhost" or _is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    if not proxies.get(scheme) or urllib.request.proxy_bypass(host):
        return None
    value = proxies[scheme]
    parts = urlsplit(value if "://" in value else f"http://{value}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("only an http:// proxy URL with a host is supported")
    authorization = None
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(secret.encode()).decode()
    return _Proxy(parts.hostname, parts.port or 80, authorization)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
