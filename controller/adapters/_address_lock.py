"""Per-network locks for the Docker adapter's address-allocating calls.

Two kinds of call touch a network's addresses:

- allocating: a container start, or a connect that takes whatever address is free;
- swapping: a disconnect + reconnect of one endpoint that asks for its own address back
  (how Berth moves a DNS alias; Engine API 1.41 has no other way).

An allocation that runs while a swap has its address freed may take that address, and the
swapped container comes back elsewhere (connections in flight to it are cut). So on one
network allocations run together, and a swap runs alone (`exclusive`). Networks are
independent of each other: rollouts on different networks swap in parallel.

Why not swaps together on one network: measured with bench/swap_concurrency.py (creates,
starts, swaps, stops and removes of ten rollouts at once on one network, against the real
engine), dockerd 20.10 did not hang under concurrent swaps (an earlier build saw it, and
serialised every swap in the process), but it does one network's endpoint changes one at a
time anyway, and ten concurrent swaps took longer than ten in a row (bench/RESULTS.md).

Deadlock-free by construction: an exclusive holder holds one network at a time, and an
allocation takes its networks in sorted order, so no cycle of waits can form.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["alloc", "excl"]


@dataclass
class _Net:
    mode: Mode | None = None
    holders: int = 0
    waiting: dict[str, int] = field(default_factory=lambda: {"alloc": 0, "excl": 0})
    turn: Mode | None = None  # the kind that goes next when the running phase ends
    admit: int = 0  # waiters of the running phase's kind that may still join it

    def may_enter(self, mode: Mode) -> bool:
        if self.holders == 0:
            return self.turn in (None, mode) or not self.waiting[self.turn]
        if mode == "excl" or self.mode != mode:
            return False
        # join a running phase of the same kind if it was waiting when the phase began, or
        # while no other kind waits: neither kind can starve the other
        return self.admit > 0 or not any(n for k, n in self.waiting.items() if k != mode)

    def enter(self, mode: Mode) -> None:
        if self.holders == 0:
            self.mode, self.turn, self.admit = mode, None, self.waiting[mode]
        elif self.admit > 0:
            self.admit -= 1
        self.holders += 1

    def leave(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            others = [k for k, n in self.waiting.items() if n and k != self.mode]
            self.mode, self.admit = None, 0
            self.turn = others[0] if others else None  # type: ignore[assignment]


class NetworkLocks:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._nets: dict[str, _Net] = {}

    @contextmanager
    def _hold(self, network: str, mode: Mode) -> Iterator[None]:
        with self._cond:
            st = self._nets.setdefault(network, _Net())
            st.waiting[mode] += 1
            try:
                while not st.may_enter(mode):
                    self._cond.wait()
            finally:
                st.waiting[mode] -= 1
            st.enter(mode)
        try:
            yield
        finally:
            with self._cond:
                st.leave()
                if st.holders == 0 and not any(st.waiting.values()):
                    del self._nets[network]
                self._cond.notify_all()

    @contextmanager
    def allocating(self, networks: Iterable[str]) -> Iterator[None]:
        with ExitStack() as stack:
            for net in sorted(set(networks)):
                stack.enter_context(self._hold(net, "alloc"))
            yield

    def exclusive(self, network: str) -> AbstractContextManager[None]:
        return self._hold(network, "excl")
