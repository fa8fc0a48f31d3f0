"""A keyed, rate-limited work queue and its worker pool (client-go's workqueue, in threads).

Reconciliation is level-triggered (DESIGN §8): a request carries only a key such as
"stack/service", and every pass re-reads the world. So the queue may coalesce freely — ten
file events for one key while it waits are one reconcile — but it must never lose the
last one: a key added while it is being processed runs once more afterwards. It also never
hands one key to two workers at once, because two rollouts of one service would fight
over its containers and its nginx upstream.

"Later" has one spelling: `add_after`. Delays are measured with an injected `now()` so that
tests move time instead of sleeping; blocking waits use real time (threading.Condition).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from controller.errors import BerthError, Retry

K = TypeVar("K", bound=Hashable)

log = logging.getLogger("berth.queue")


def _no_jitter(delay: float) -> float:
    return delay


class WorkQueue(Generic[K]):
    """Coalescing queue with delayed adds and per-key exponential backoff.

    A key is in at most one of: ready (`_queue`, also in `_dirty`), processing, or
    processing-and-dirty (re-queued by `done`). Delayed keys live in a heap until due.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        base_delay: float = 0.2,
        max_delay: float = 60.0,
        jitter: Callable[[float], float] = _no_jitter,
    ) -> None:
        """`jitter` maps a computed backoff to the one used (e.g. `d * uniform(0.5, 1)`),
        spreading retries of many keys after a shared outage; tests keep the default."""
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        self._now = now
        self._base = base_delay
        self._cap = max_delay
        self._jitter = jitter
        # One condition for every wait (get and wait_idle), so wake-ups use notify_all:
        # notify() could wake a wait_idle caller instead of a worker and lose the signal.
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._heap: list[tuple[float, int, K]] = []
        self._waiting: dict[K, float] = {}  # key -> earliest due time; heap entries may be stale
        self._seq = itertools.count()  # heap tie-breaker: keys need not be orderable
        self._failures: dict[K, int] = {}
        self._shutting_down = False

    def __len__(self) -> int:
        """Keys ready to be handed out (not the delayed ones, not those in flight)."""
        with self._cond:
            return len(self._queue)

    def add(self, key: K) -> None:
        """Ask for one more pass over `key`; coalesces with a pass not yet started."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # `done` re-queues it, so no second worker ever holds it
        self._queue.append(key)
        self._cond.notify_all()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` once `delay` seconds of now() have passed. Of several pending delays
        for one key the earliest wins: a level-triggered pass covers the later ones."""
        with self._cond:
            if self._shutting_down:
                return
            if delay <= 0:
                self._add_locked(key)
                return
            due = self._now() + delay
            if self._waiting.get(key, float("inf")) <= due:
                return
            self._waiting[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self._cond.notify_all()  # an earlier due time shortens the workers' waits

    def scheduled(self, key: K) -> float | None:
        """The now() at which a delayed `key` becomes ready, for status output and tests."""
        with self._cond:
            return self._waiting.get(key)

    def wake(self) -> None:
        """Make delayed keys that are due by now() ready at once. Only needed after an
        injected clock jumps (tests): waiters sleep in real time for the gap they computed
        before the jump."""
        with self._cond:
            self._promote_due_locked()
            self._cond.notify_all()

    def _promote_due_locked(self) -> None:
        now = self._now()
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) == due:  # else superseded by an earlier add_after
                del self._waiting[key]
                self._add_locked(key)

    def get(self, timeout: float | None = None) -> K | None:
        """The next ready key, now marked in flight (the caller must call `done`); None on
        timeout or once shut down. `timeout` is real seconds; None waits indefinitely."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._shutting_down:
                self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                waits = []
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    waits.append(remaining)
                if self._heap:
                    waits.append(max(self._heap[0][0] - self._now(), 0.0))
                self._cond.wait(min(waits) if waits else None)
            return None

    def done(self, key: K) -> None:
        """End the pass over `key`; a key added meanwhile becomes ready again now."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
            self._cond.notify_all()

    def backoff(self, key: K) -> float:
        """Record one more failure of `key` and return how long to wait before the next try:
        base * 2**(failures - 1), jittered, capped, so a broken daemon is not hammered."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
            delay = self._base * 2.0 ** min(n, 64)  # bounded exponent: no float overflow
        return min(self._jitter(min(delay, self._cap)), self._cap)

    def failures(self, key: K) -> int:
        """Consecutive failures since the last `forget` (for logs and metrics)."""
        with self._cond:
            return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """Reset the backoff of `key` after a success or a terminal outcome."""
        with self._cond:
            self._failures.pop(key, None)

    def shutdown(self) -> None:
        """Stop handing out keys and drop everything not yet started; in-flight passes
        finish (see `wait_idle`). Adds after this are ignored."""
        with self._cond:
            self._shutting_down = True
            self._queue.clear()
            self._dirty.clear()
            self._heap.clear()
            self._waiting.clear()
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no key is in flight and none is ready (delayed keys do not count);
        False on timeout. Lets `berth apply` and tests wait for the work they caused."""

        def idle() -> bool:
            self._promote_due_locked()  # a due key is ready work, even before a get sees it
            return not self._processing and (self._shutting_down or not self._queue)

        with self._cond:
            return self._cond.wait_for(idle, timeout)


@dataclass(frozen=True)
class Result:
    """What a handler wants next, as in controller-runtime: `requeue_after` seconds schedules
    another pass (polling a rollout); `requeue` alone retries with the key's backoff."""

    requeue: bool = False
    requeue_after: float | None = None


Handler = Callable[[K], "Result | None"]


class Runner(Generic[K]):
    """N worker threads draining one WorkQueue through one handler.

    Outcomes map to scheduling in one place: Result(requeue_after) -> add_after;
    a BerthError whose retry class is TRANSIENT -> backoff (or the error's own delay when
    longer); TERMINAL -> forget, wait for a change to add the key again; success -> forget.
    Any other exception is a bug or an untranslated transient: logged with its traceback
    and retried with backoff, because a level-triggered controller must not go quiet.
    """

    def __init__(
        self, queue: WorkQueue[K], handler: Handler[K], *, workers: int = 4, name: str = "berth"
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.queue = queue
        self._handler = handler
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Shut the queue down and join the workers (in-flight passes finish first);
        True when every worker has exited within `timeout` seconds in total."""
        self.queue.shutdown()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            if t.ident is None:
                continue  # never started
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self._process(key)
            except Exception:  # only if scheduling itself failed (a broken jitter, say)
                log.exception("scheduling after a pass over %s failed", key)
            finally:
                self.queue.done(key)

    def _process(self, key: K) -> None:
        q = self.queue
        try:
            result = self._handler(key)
        except BerthError as exc:
            if exc.retry is Retry.TERMINAL:
                log.error("%s: %s; waiting for a change", key, exc)
                q.forget(key)
            else:
                delay = max(q.backoff(key), exc.delay)
                log.warning("%s: temporary error, retry in %.2fs: %s", key, delay, exc)
                q.add_after(key, delay)
        except Exception:
            delay = q.backoff(key)
            log.exception("%s: handler failed, retry in %.2fs", key, delay)
            q.add_after(key, delay)
        else:
            if result is not None and result.requeue_after is not None:
                q.forget(key)
                q.add_after(key, result.requeue_after)
            elif result is not None and result.requeue:
                q.add_after(key, q.backoff(key))
            else:
                q.forget(key)
