"""A load generator that records every response: steady GETs, long GETs and slow POSTs.

Two kinds of client, as real ones are:
- connection per request (the default): the property under test is that Berth never drops
  a request that nginx accepted, which such a client observes exactly;
- `keep_alive=True`: every thread holds one HTTP/1.1 connection and sends its next request
  on it, as browsers, connection pools and API clients do. A request that fails is recorded
  and never retried (the thread reconnects for the next one). This is the client an nginx
  reload hurts: its idle connection can be closed just as it sends.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    kind: str  # get | long | post
    start: float
    end: float
    status: int | None
    body: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class Load:
    base_url: str
    get_threads: int = 6
    long_seconds: float = 4.0
    # Total GET requests per second across the GET threads; None = as fast as they can.
    # A paced load leaves CPU to the system under test on a small machine.
    get_rate: float | None = None
    keep_alive: bool = False
    get_path: str = "/version"
    extras: bool = True  # the long GETs and the slow POSTs beside the steady GETs
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, s: Sample) -> None:
        with self._lock:
            self.samples.append(s)

    def _one(
        self, kind: str, method: str, path: str, timeout: float, content: bytes | None = None
    ) -> None:
        # http.client, not httpx: a fresh connection per request must cost microseconds on
        # the client side, or the generator rather than the server sets the rate.
        t0 = time.time()
        conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request(method, path, body=content, headers={"Connection": "close"})
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            self._record(Sample(kind, t0, time.time(), r.status, body))
        except (OSError, http.client.HTTPException) as exc:
            self._record(Sample(kind, t0, time.time(), None, "", f"{type(exc).__name__}: {exc}"))
        finally:
            conn.close()

    def _reuse(
        self,
        conn: http.client.HTTPConnection | None,
        kind: str,
        method: str,
        path: str,
        timeout: float,
        content: bytes | None = None,
    ) -> http.client.HTTPConnection | None:
        """One request on the thread's persistent connection (opened when there is none).
        Returns the connection to reuse, or None after a failure (no retry)."""
        t0 = time.time()
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            conn.request(method, path, body=content)
            r = conn.getresponse()
            body = r.read().decode(errors="replace").strip()
            self._record(Sample(kind, t0, time.time(), r.status, body))
            if r.will_close:
                conn.close()
                return None
            return conn
        except (OSError, http.client.HTTPException) as exc:
            self._record(Sample(kind, t0, time.time(), None, "", f"{type(exc).__name__}: {exc}"))
            conn.close()
            return None

    def _loop(
        self,
        kind: str,
        method: str,
        path: str,
        timeout: float,
        content: bytes | None = None,
        period: float = 0.0,
    ) -> None:
        """One request at a time; with a `period`, starts are paced on a fixed grid (a slow
        response is not made up for by a burst afterwards)."""
        deadline = time.time() + 900  # bounded, whatever happens to the test
        nxt = time.monotonic()
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.time() < deadline:
            if self.keep_alive:
                conn = self._reuse(conn, kind, method, path, timeout, content)
            else:
                self._one(kind, method, path, timeout, content)
            if period:
                nxt = max(nxt + period, time.monotonic())
                self._stop.wait(max(0.0, nxt - time.monotonic()))

    @property
    def _host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).hostname or "127.0.0.1"

    @property
    def _port(self) -> int:
        return urllib.parse.urlsplit(self.base_url).port or 80

    def start(self) -> None:
        period = self.get_threads / self.get_rate if self.get_rate else 0.0
        specs: list[tuple[str, str, str, float, bytes | None, float]] = [
            ("get", "GET", self.get_path, 10.0, None, period)
        ] * self.get_threads
        if self.extras:
            specs += [("long", "GET", f"/cgi-bin/slow?{self.long_seconds:g}", 30.0, None, 0.0)] * 2
            specs += [("post", "POST", "/cgi-bin/slow?2", 30.0, b"x" * 20_000, 0.0)]
        for spec in specs:
            t = threading.Thread(target=self._loop, args=spec, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=40)

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)
