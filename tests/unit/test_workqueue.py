"""The work queue's promises (coalescing, one worker per key, delays, backoff, shutdown)
and the Runner's mapping of handler outcomes to scheduling.

Delays run on a FakeClock; real waits appear only where threads must meet, bounded by
short timeouts so that a bug fails fast instead of hanging.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from controller.errors import (
    ConfigError,
    ContainerRuntimeError,
    PermanentError,
    Retry,
    TemporaryError,
)
from controller.shell.daemon.workqueue import Result, Runner, WorkQueue
from tests.fakes import FakeClock

T = 2.0  # upper bound for any real wait; tests pass in milliseconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue(now=clock.now)


def drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while (key := q.get(timeout=0)) is not None:
        out.append(key)
        q.done(key)
    return out


# --- the queue -----------------------------------------------------------------------------


def test_add_coalesces_waiting_keys_and_keeps_order(q: WorkQueue[str]) -> None:
    for key in ("a", "b", "a", "c", "b", "a"):
        q.add(key)
    assert len(q) == 3
    assert drain(q) == ["a", "b", "c"]


def test_key_added_while_processing_runs_once_more_after_done(q: WorkQueue[str]) -> None:
    q.add("a")
    assert q.get(timeout=0) == "a"
    for _ in range(3):
        q.add("a")
    assert len(q) == 0  # not handed out while in flight...
    assert q.get(timeout=0) is None  # ...so no second worker can take it
    q.done("a")
    assert len(q) == 1
    assert drain(q) == ["a"]  # exactly once


def test_done_without_new_add_does_not_requeue(q: WorkQueue[str]) -> None:
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert q.get(timeout=0) is None


def test_add_after_orders_by_due_time(q: WorkQueue[str], clock: FakeClock) -> None:
    q.add_after("c", 3)
    q.add_after("a", 1)
    q.add_after("b", 2)
    assert len(q) == 0 and q.get(timeout=0) is None
    clock.advance(2)
    assert drain(q) == ["a", "b"]
    clock.advance(1)
    assert drain(q) == ["c"]


def test_add_after_keeps_the_earliest_due_time(q: WorkQueue[str], clock: FakeClock) -> None:
    q.add_after("a", 10)
    q.add_after("a", 1)
    q.add_after("a", 5)  # later than the pending 1 s: covered by it
    assert q.scheduled("a") == clock.t + 1
    clock.advance(1)
    assert drain(q) == ["a"]
    assert q.scheduled("a") is None
    clock.advance(20)
    assert drain(q) == []  # the superseded heap entries are not run


def test_add_after_zero_or_negative_is_add(q: WorkQueue[str]) -> None:
    q.add_after("a", 0)
    q.add_after("b", -1)
    assert drain(q) == ["a", "b"]


def test_blocked_get_wakes_when_a_real_delay_is_due() -> None:
    q: WorkQueue[str] = WorkQueue()  # real monotonic clock: the timed wait itself is tested
    start = time.monotonic()
    q.add_after("a", 0.03)
    assert q.get(timeout=T) == "a"
    assert 0.03 <= time.monotonic() - start < T


def test_wake_after_a_fake_clock_jump_unblocks_get(q: WorkQueue[str], clock: FakeClock) -> None:
    q.add_after("a", 3600)  # a waiter sleeps ~an hour of real time for this unless woken
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=T)))
    t.start()
    time.sleep(0.02)  # let it block
    clock.advance(3600)
    q.wake()
    t.join(T)
    assert got == ["a"]


def test_get_times_out(q: WorkQueue[str]) -> None:
    start = time.monotonic()
    assert q.get(timeout=0.02) is None
    assert 0.02 <= time.monotonic() - start < T


def test_backoff_doubles_to_the_cap_and_forget_resets(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(now=clock.now, base_delay=0.2, max_delay=60)
    delays = [q.backoff("a") for _ in range(12)]
    assert delays[:5] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2])
    assert delays[-3:] == [60, 60, 60]
    assert all(x <= y for x, y in itertools.pairwise(delays))
    assert q.failures("a") == 12
    assert q.backoff("b") == pytest.approx(0.2)  # per key
    q.forget("a")
    assert q.failures("a") == 0
    assert q.backoff("a") == pytest.approx(0.2)
    for _ in range(2000):  # no float overflow far past the cap
        q.backoff("c")
    assert q.backoff("c") == 60


def test_backoff_applies_injected_jitter_within_the_cap(clock: FakeClock) -> None:
    q: WorkQueue[str] = WorkQueue(now=clock.now, max_delay=1.0, jitter=lambda d: d * 1.5)
    assert [q.backoff("a") for _ in range(4)] == pytest.approx([0.3, 0.6, 1.0, 1.0])


def test_bad_backoff_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        WorkQueue(base_delay=0)
    with pytest.raises(ValueError):
        WorkQueue(base_delay=2, max_delay=1)


def test_shutdown_unblocks_get_and_stops_handing_out(q: WorkQueue[str]) -> None:
    got: list[str | None] = ["sentinel"]
    t = threading.Thread(target=lambda: got.__setitem__(0, q.get()))  # no timeout
    t.start()
    time.sleep(0.02)
    q.shutdown()
    t.join(T)
    assert not t.is_alive() and got == [None]
    q.add("a")
    q.add_after("b", 0)
    assert len(q) == 0 and q.get(timeout=0) is None
    assert q.shutting_down


def test_shutdown_drops_waiting_keys_and_wait_idle_tracks_in_flight(q: WorkQueue[str]) -> None:
    q.add("a")
    q.add("b")
    assert q.get(timeout=0) == "a"
    q.add("a")  # dirty while in flight
    assert not q.wait_idle(timeout=0.01)
    q.shutdown()
    assert q.get(timeout=0) is None  # b is not handed out after shutdown
    assert not q.wait_idle(timeout=0.01)  # a is still in flight
    q.done("a")
    assert q.wait_idle(timeout=0)
    assert len(q) == 0  # a's pending re-run was dropped


def test_wait_idle_ignores_delayed_keys(q: WorkQueue[str]) -> None:
    q.add_after("a", 60)
    assert q.wait_idle(timeout=0)
    q.add("b")
    assert not q.wait_idle(timeout=0)


# --- the runner ----------------------------------------------------------------------------


@pytest.fixture
def running(q: WorkQueue[str]) -> Iterator[Callable[..., Runner[str]]]:
    """Start a Runner over `q` and always stop it, so a failed test leaks no threads."""
    runners: list[Runner[str]] = []

    def start(handler: Callable[[str], Result | None], workers: int = 2) -> Runner[str]:
        r = Runner(q, handler, workers=workers)
        runners.append(r)
        r.start()
        return r

    yield start
    for r in runners:
        assert r.stop(timeout=T)


def run_once(q: WorkQueue[str], key: str = "a") -> None:
    q.add(key)
    assert q.wait_idle(timeout=T)


def test_hammer_no_overlap_and_no_lost_update(
    q: WorkQueue[str], running: Callable[..., Runner[str]]
) -> None:
    """4 workers, 1000 adds over 3 keys: never two passes of one key at once, and every
    key's last pass starts after its last add (the level-triggered promise)."""
    lock = threading.Lock()
    active: set[str] = set()
    overlaps: list[str] = []
    version = {"a": 0, "b": 0, "c": 0}
    seen: dict[str, int] = {}
    passes = 0

    def handler(key: str) -> None:
        nonlocal passes
        with lock:
            if key in active:
                overlaps.append(key)
            active.add(key)
            seen[key] = version[key]
            passes += 1
        time.sleep(0.0001)
        with lock:
            active.discard(key)

    running(handler, workers=4)
    for i in range(1000):
        key = "abc"[i % 3]
        with lock:
            version[key] += 1
        q.add(key)
    assert q.wait_idle(timeout=T)
    assert overlaps == []
    assert seen == version
    assert 3 <= passes <= 1000


def test_different_keys_run_in_parallel(
    q: WorkQueue[str], running: Callable[..., Runner[str]]
) -> None:
    barrier = threading.Barrier(2, timeout=T)  # breaks unless both keys are in flight at once
    broken: list[str] = []

    def handler(key: str) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            broken.append(key)

    running(handler, workers=2)
    q.add("a")
    q.add("b")
    assert q.wait_idle(timeout=T)
    assert broken == []


def test_temporary_error_backs_off_and_honours_a_longer_delay(
    q: WorkQueue[str], clock: FakeClock, running: Callable[..., Runner[str]]
) -> None:
    delays = iter([0.01, 0.01, 5.0])

    def handler(key: str) -> None:
        raise TemporaryError("docker unreachable", delay=next(delays))

    running(handler)
    run_once(q)
    assert q.scheduled("a") == pytest.approx(clock.t + 0.2)  # backoff beats 0.01
    clock.advance(0.2)
    q.wake()
    assert q.wait_idle(timeout=T) and q.scheduled("a") == pytest.approx(clock.t + 0.4)
    clock.advance(0.4)
    q.wake()
    assert q.wait_idle(timeout=T) and q.scheduled("a") == pytest.approx(clock.t + 5.0)
    assert q.failures("a") == 3


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("state database corrupt"),
        ConfigError.one("d.yaml", 3, "tag", "bad"),
        ContainerRuntimeError("create: invalid mount config", retry=Retry.TERMINAL),  # a 400
    ],
)
def test_terminal_errors_forget_and_wait_for_a_change(
    q: WorkQueue[str],
    running: Callable[..., Runner[str]],
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    def handler(key: str) -> None:
        raise error

    q.backoff("a")  # earlier failures are forgotten
    running(handler)
    with caplog.at_level(logging.ERROR, logger="berth.queue"):
        run_once(q)
    assert q.scheduled("a") is None and len(q) == 0
    assert q.failures("a") == 0
    assert any("a" in r.getMessage() and r.name == "berth.queue" for r in caplog.records)


def test_unexpected_exception_is_logged_and_the_worker_survives(
    q: WorkQueue[str],
    clock: FakeClock,
    running: Callable[..., Runner[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[str] = []

    def handler(key: str) -> None:
        handled.append(key)
        if key == "boom":
            raise RuntimeError("bug")

    running(handler, workers=1)
    with caplog.at_level(logging.ERROR, logger="berth.queue"):
        run_once(q, "boom")
        run_once(q, "ok")  # the single worker is still alive
    assert handled == ["boom", "ok"]
    assert q.scheduled("boom") == pytest.approx(clock.t + 0.2)  # retried with backoff
    [record] = [r for r in caplog.records if r.name == "berth.queue"]
    assert "boom" in record.getMessage() and record.exc_info is not None


def test_result_requeue_after_schedules_and_resets_backoff(
    q: WorkQueue[str], clock: FakeClock, running: Callable[..., Runner[str]]
) -> None:
    q.backoff("a")
    running(lambda key: Result(requeue_after=7.0))
    run_once(q)
    assert q.scheduled("a") == pytest.approx(clock.t + 7.0)
    assert q.failures("a") == 0


def test_result_requeue_uses_backoff_and_success_forgets(
    q: WorkQueue[str], clock: FakeClock, running: Callable[..., Runner[str]]
) -> None:
    results = iter([Result(requeue=True), Result(requeue=True), None])
    running(lambda key: next(results), workers=1)
    run_once(q)
    assert q.scheduled("a") == pytest.approx(clock.t + 0.2)
    clock.advance(0.2)
    q.wake()
    assert q.wait_idle(timeout=T) and q.scheduled("a") == pytest.approx(clock.t + 0.4)
    clock.advance(0.4)
    q.wake()
    assert q.wait_idle(timeout=T)
    assert q.scheduled("a") is None and q.failures("a") == 0


def test_stop_waits_for_in_flight_work_and_joins(q: WorkQueue[str]) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def handler(key: str) -> None:
        started.set()
        release.wait(T)
        finished.append(key)

    r = Runner(q, handler, workers=3)
    r.start()
    q.add("a")
    assert started.wait(T)
    assert not r.stop(timeout=0.02)  # the pass is still running
    release.set()
    assert r.stop(timeout=T)
    assert finished == ["a"]


def test_stop_of_a_runner_never_started_returns() -> None:
    r: Runner[str] = Runner(WorkQueue(), lambda key: None, workers=2)
    assert r.stop(timeout=0)
    with pytest.raises(ValueError):
        Runner(WorkQueue(), lambda key: None, workers=0)
