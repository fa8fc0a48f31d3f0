"""The Swarm backend's route check: its period and its ticks (no Docker)."""

from __future__ import annotations

import threading

from controller.shell.daemon.triggers import RouteWatch, route_period


def test_the_period_is_the_shortest_probe_interval_within_bounds() -> None:
    assert route_period([1.0, 0.5, 2.0]) == 0.5
    assert route_period([0.01]) == 0.25
    assert route_period([60.0]) == 5.0
    assert route_period([]) == 1.0


def test_each_tick_enqueues_every_proxied_key_until_stopped() -> None:
    stopping = threading.Event()
    seen: list[str] = []

    def enqueue(key: str) -> None:
        seen.append(key)
        if len(seen) >= 4:
            stopping.set()

    watch = RouteWatch(0.01, lambda: ["p/a", "p/b"], enqueue, stopping)
    t = threading.Thread(target=watch.run)
    t.start()
    t.join(timeout=5)
    assert not t.is_alive()
    assert seen[:4] == ["p/a", "p/b", "p/a", "p/b"]


def test_a_failing_tick_does_not_end_the_watch() -> None:
    stopping = threading.Event()
    calls = []

    def keys() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("config not loaded")
        stopping.set()
        return []

    t = threading.Thread(target=RouteWatch(0.01, keys, lambda k: None, stopping).run)
    t.start()
    t.join(timeout=5)
    assert len(calls) == 2
