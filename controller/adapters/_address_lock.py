"""Shared/exclusive lock for the Docker adapter's address-allocating calls.

Container starts (which allocate the containers' addresses) share it, so they still run in
parallel; an endpoint swap (disconnect, then reconnect asking for the same address) or a
connect holds it alone. So no container started by this process takes the address a swap
has just freed, and connects never run concurrently (dockerd 20.10's libnetwork deadlocks
under concurrent disconnect/connect on one network). Re-entrant for the exclusive holder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class AddressLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._owner: int | None = None
        self._depth = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            while self._owner is not None and self._owner != me:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                while self._owner is not None or self._shared:
                    self._cond.wait()
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._owner = None
                    self._cond.notify_all()
