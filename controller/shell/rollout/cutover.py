"""The seam where traffic moves (the `ProxySwitch` port, in controller/ports.py): the executor
calls it at cut-over, switch-back and retire.

`NoProxy` is used for services that no proxy serves; the nginx implementation renders the
upstream file from the containers that should receive traffic, tests it, reloads nginx and
waits for the old workers to drain.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.core.plan import ServiceAction
from controller.ports import ProxySwitch as ProxySwitch


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
