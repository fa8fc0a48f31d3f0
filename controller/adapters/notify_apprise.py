"""The NoticeSink port on Apprise (Slack, Teams, ntfy, email, webhooks, ... by URL).

Delivery must never block or stall a reconcile: `send` only appends to a bounded queue
(when it is full the oldest notice is dropped and counted) and one background thread
delivers, each request bounded by a socket timeout. A receiver that hangs delays the next
notices, never a rollout.

Notification URLs carry credentials (a Slack webhook token, a password, an ntfy token):
Berth never logs or reports one. Errors name the flag and the URL's position and scheme;
delivery failures name scheme and host only; Apprise's own logger (whose debug and
warning lines can contain URLs and response bodies) is cut off from Berth's log handlers.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import apprise

from controller.core.notify import Notice
from controller.errors import BerthError, Retry

log = logging.getLogger("berth.notify")

CAPACITY = 100  # notices waiting for delivery; beyond that the oldest is dropped
TIMEOUT = 10.0  # seconds: connect and read timeout of each request
OnResult = Callable[[str, str], None]  # (kind, sent | failed | dropped)

_quiet = logging.getLogger("apprise")  # see the module docstring
_quiet.propagate = False
_quiet.addHandler(logging.NullHandler())


class NotifyConfigError(BerthError):
    """A notification target that cannot be used: a start-up error, never retried."""

    retry = Retry.TERMINAL


def redacted(url: str) -> str:
    """scheme://host of a URL, without user, password, path or query (which may all hold
    a token): what a log line or an error may show of a notification target."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "?"
    scheme = parts.scheme if parts.scheme.isalnum() else "?"
    return f"{scheme}://{host}" if host else f"{scheme}://"


def targets(
    urls: Sequence[tuple[str, str]], config: str | None, *, timeout: float = TIMEOUT
) -> apprise.Apprise:
    """An Apprise object with every target loaded now (so a bad one fails at start, not at
    the first rollback). `urls` are (origin, url): origin is the flag or variable that gave
    the URL, for the error message. `config` is an Apprise config file (text or YAML)."""
    ap = apprise.Apprise(asset=apprise.AppriseAsset(plugin_paths=[]))
    for i, (origin, url) in enumerate(urls, 1):
        if not ap.add(url):
            raise NotifyConfigError(
                f"{origin}: notification URL #{i} ({redacted(url).split('://')[0]}://...) is "
                "not a URL Apprise can use (see docs/notifications.md); it is not shown "
                "because it may hold a secret"
            )
    if config is not None:
        if not os.path.isfile(config) or not os.access(config, os.R_OK):
            raise NotifyConfigError(f"--notify-config: {config} is not a readable file")
        cfg = apprise.AppriseConfig(asset=apprise.AppriseAsset(plugin_paths=[]))
        cfg.add(config)
        servers = cfg.servers()
        if not servers:
            raise NotifyConfigError(
                f"--notify-config: {config} holds no notification URL Apprise can use"
            )
        for server in servers:
            ap.add(server)
    for server in ap:
        server.socket_connect_timeout = timeout
        server.socket_read_timeout = timeout
    return ap


def _shown(server: object) -> str:
    """A loaded target as a log line may show it (its privacy URL, then only scheme://host)."""
    url = getattr(server, "url", None)
    return redacted(str(url(privacy=True))) if callable(url) else "?"


class AppriseSink:
    """NoticeSink: a bounded queue and one delivery thread (started on first use)."""

    def __init__(
        self,
        ap: apprise.Apprise,
        *,
        on_result: OnResult | None = None,
        capacity: int = CAPACITY,
    ) -> None:
        self._ap = ap
        self._where = ", ".join(sorted({_shown(s) for s in ap})) or "-"
        self._on_result: OnResult = on_result or (lambda kind, result: None)
        self._capacity = capacity
        self._queue: deque[Notice] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def send(self, notice: Notice) -> None:
        """Queue `notice` for delivery; returns at once. Full queue: the oldest goes."""
        dropped: Notice | None = None
        with self._cond:
            if self._closing:
                dropped = notice
            else:
                if len(self._queue) >= self._capacity:
                    dropped = self._queue.popleft()
                self._queue.append(notice)
                self._cond.notify()
                self._start_locked()
        if dropped is not None:
            log.warning("notification queue full: dropped a %s notice", dropped.kind)
            self._on_result(dropped.kind.value, "dropped")

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="berth-notify", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._busy = False
                    self._cond.notify_all()  # for flush()
                    self._cond.wait()
                if not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    return
                notice = self._queue.popleft()
                self._busy = True
            self._deliver(notice)

    def _deliver(self, n: Notice) -> None:
        try:
            ok = bool(
                self._ap.notify(
                    body=n.body, title=n.title, notify_type=apprise.NotifyType(n.severity.value)
                )
            )
        except Exception as exc:  # a plugin's bug must not kill the delivery thread
            log.warning("notification failed: %s", type(exc).__name__)
            ok = False
        if not ok:
            log.warning(
                "%s notification not delivered to every target (%s)",
                n.kind,
                self._where,
                extra={"kind": n.kind.value},
            )
        self._on_result(n.kind.value, "sent" if ok else "failed")

    def flush(self, timeout: float) -> bool:
        """Wait until every queued notice was tried (tests, `berth apply`); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float) -> None:
        """Deliver what is queued, for at most `timeout` seconds; later sends are dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        for n in left:
            self._on_result(n.kind.value, "dropped")
