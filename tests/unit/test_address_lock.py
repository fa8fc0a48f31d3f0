"""AddressLock: starts share it, a swap holds it alone and re-entrantly."""

from __future__ import annotations

import threading
import time

from controller.adapters._address_lock import AddressLock


def test_shared_holders_run_together() -> None:
    lock = AddressLock()
    inside = threading.Barrier(3, timeout=2)

    def start() -> None:
        with lock.shared():
            inside.wait()  # all three inside at once, or BrokenBarrierError

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(3)
    assert not inside.broken


def test_exclusive_waits_for_shared_and_blocks_new_shared() -> None:
    lock = AddressLock()
    events: list[str] = []
    release = threading.Event()

    def start(name: str) -> None:
        with lock.shared():
            events.append(f"{name} in")
            release.wait(2)
        events.append(f"{name} out")

    def swap() -> None:
        with lock.exclusive():
            events.append("swap in")
            with lock.exclusive():  # re-entrant: a swap's reconnect connects
                pass
            time.sleep(0.05)
            events.append("swap out")

    first = threading.Thread(target=start, args=("a",))
    first.start()
    while "a in" not in events:
        time.sleep(0.001)
    swapper = threading.Thread(target=swap)
    swapper.start()
    time.sleep(0.05)
    assert "swap in" not in events  # a start is still inside
    release.set()
    first.join(2)
    swapper.join(2)
    later = threading.Thread(target=start, args=("b",))
    with lock.exclusive():
        later.start()
        time.sleep(0.05)
        assert "b in" not in events  # no start while a swap holds it
    later.join(2)
    assert events.index("a out") < events.index("swap in") < events.index("swap out")
    assert events.index("swap out") < events.index("b in")


def test_the_exclusive_holder_may_take_it_shared() -> None:
    lock = AddressLock()
    done = threading.Event()

    def run() -> None:
        with lock.exclusive(), lock.shared():
            done.set()

    t = threading.Thread(target=run)
    t.start()
    t.join(2)
    assert done.is_set()
