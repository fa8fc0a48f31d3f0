"""The seam where traffic moves: the executor calls it at cut-over, switch-back and retire.

`NoProxy` is used for services that no proxy serves; the nginx implementation renders the
upstream file from the containers that should receive traffic, tests it, reloads nginx and
waits for the old workers to drain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from controller.core.plan import ServiceAction


class ProxySwitch(Protocol):
    def cut_over(
        self, action: ServiceAction, new_ids: Sequence[str], old_ids: Sequence[str]
    ) -> None:
        """Route the service's traffic to `new_ids` only; return once old requests drained."""
        ...

    def switch_back(
        self, action: ServiceAction, old_ids: Sequence[str], new_ids: Sequence[str]
    ) -> None:
        """Route traffic back to `old_ids` (bake failed); return once drained from new."""
        ...

    def retire(self, action: ServiceAction, ids: Sequence[str]) -> None:
        """Take `ids` out of the traffic before they are stopped."""
        ...

    def routed(self, action: ServiceAction) -> frozenset[str] | None:
        """12-character ids of the service's containers that receive traffic now, or None
        when no proxy serves the service."""
        ...


class NoProxy:
    def cut_over(
        self, action: ServiceAction, new_ids: Sequence[str], old_ids: Sequence[str]
    ) -> None:
        return None

    def switch_back(
        self, action: ServiceAction, old_ids: Sequence[str], new_ids: Sequence[str]
    ) -> None:
        return None

    def retire(self, action: ServiceAction, ids: Sequence[str]) -> None:
        return None

    def routed(self, action: ServiceAction) -> frozenset[str] | None:
        return None
