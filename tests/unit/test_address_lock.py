"""NetworkLocks: per network, allocations run together and an exclusive holder (a swap)
runs alone; networks are independent; no starvation, no deadlock."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from controller.adapters._address_lock import NetworkLocks


def _together(n: int, enter: Callable[[], AbstractContextManager[None]]) -> bool:
    inside = threading.Barrier(n, timeout=2)

    def run() -> None:
        with enter():
            inside.wait()  # all n inside at once, or BrokenBarrierError

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(3)
    return not inside.broken


def test_allocations_on_one_network_run_together() -> None:
    locks = NetworkLocks()
    assert _together(3, lambda: locks.allocating(["n1", "n2"]))


def _blocked(enter: Callable[[], AbstractContextManager[None]], seconds: float = 0.1) -> bool:
    """Whether `enter` cannot get in within `seconds` (it gets in later, in the background)."""
    got = threading.Event()

    def run() -> None:
        with enter():
            got.set()

    threading.Thread(target=run, daemon=True).start()
    return not got.wait(seconds)


def test_a_swap_waits_for_allocations_on_its_network_and_blocks_new_ones() -> None:
    locks = NetworkLocks()
    with locks.allocating(["n1"]):
        assert _blocked(lambda: locks.exclusive("n1"))
    with locks.exclusive("n1"):
        assert _blocked(lambda: locks.allocating(["n1"]))
        assert _blocked(lambda: locks.allocating(["n0", "n1"]))


def test_networks_are_independent() -> None:
    locks = NetworkLocks()
    with locks.allocating(["a"]):
        assert not _blocked(lambda: locks.exclusive("b"))
    with locks.exclusive("a"):
        assert not _blocked(lambda: locks.exclusive("b"))


def test_exclusive_runs_alone() -> None:
    locks = NetworkLocks()
    with locks.exclusive("n1"):
        assert _blocked(lambda: locks.allocating(["n1"]))
        assert _blocked(lambda: locks.exclusive("n1"))


def test_a_waiting_swap_stops_new_allocations_joining() -> None:
    """No starvation: once a swap waits, allocations that arrive later queue behind it."""
    locks = NetworkLocks()
    order: list[str] = []
    release = threading.Event()

    def first_alloc() -> None:
        with locks.allocating(["n"]):
            order.append("alloc1")
            release.wait(2)

    def swap() -> None:
        with locks.exclusive("n"):
            order.append("swap")

    def late_alloc() -> None:
        with locks.allocating(["n"]):
            order.append("alloc2")

    t1 = threading.Thread(target=first_alloc)
    t1.start()
    while "alloc1" not in order:
        time.sleep(0.001)
    t2 = threading.Thread(target=swap)
    t2.start()
    time.sleep(0.05)  # the swap now waits
    t3 = threading.Thread(target=late_alloc)
    t3.start()
    time.sleep(0.05)
    assert order == ["alloc1"]  # the late allocation did not slip in beside the first
    release.set()
    for t in (t1, t2, t3):
        t.join(2)
    assert order.index("swap") < order.index("alloc2")


def test_mixed_load_over_shared_networks_never_deadlocks() -> None:
    locks = NetworkLocks()
    nets = ["a", "b", "c"]
    done = []
    rng = random.Random(7)
    plans = [[rng.randrange(3) for _ in range(200)] for _ in range(8)]

    def worker(plan: list[int]) -> None:
        r = random.Random(len(plan))
        ctx: AbstractContextManager[None]
        for kind in plan:
            if kind == 0:
                ctx = locks.allocating(r.sample(nets, r.randint(1, 3)))
            else:
                ctx = locks.exclusive(r.choice(nets))
            with ctx:
                time.sleep(0.0002)
        done.append(1)

    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(done) == len(plans), "a worker never finished: the locks deadlocked"
    assert locks._nets == {}, "state left behind for networks nobody holds"
