"""The seam where traffic moves (the `ProxySwitch` port, in controller/ports.py): the executor
calls it at cut-over, switch-back and retire.

`NoProxy` is used for services that no proxy serves; the nginx implementation renders the
upstream file from the containers that should receive traffic, tests it, reloads nginx and
waits for the old workers to drain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller.core.model import BuildSpec
from controller.core.plan import ServiceAction
from controller.core.task_options import HookSpec
from controller.errors import ImageBuildError, ProbeError, ProxyError
from controller.ports import BuildReport, HookResult, HttpAnswer
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

    def set_weight(
        self,
        action: ServiceAction,
        new_ids: Sequence[str],
        old_ids: Sequence[str],
        weight: int,
        *,
        sticky: bool = False,
    ) -> None:
        raise ProxyError("a canary needs the service served through nginx (x-berth.upstream)")

    def traffic(self, action: ServiceAction) -> Mapping[str, Any] | None:
        return None


class NoMetrics:
    """MetricsQuery where no Prometheus is configured: every query has no value."""

    def value(self, base_url: str, promql: str) -> float | None:
        return None


class NoBuilder:
    """ImageBuilder where none is wired (unit tests of services that only pull)."""

    def build(self, spec: BuildSpec, ref: str, *, on_line: Callable[[str], None]) -> BuildReport:
        raise ImageBuildError(f"no image builder is configured to build {ref}")


class NoHttp:
    """HttpClient where none is wired (unit tests of services without smoke checks)."""

    def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
        limit: int = 1 << 20,
    ) -> HttpAnswer:
        raise ProbeError("no HTTP client is wired for smoke checks")


class NoHooks:
    """HookRunner where none is wired (unit tests of services without hooks)."""

    def run(self, hook: HookSpec, payload: Mapping[str, str], *, cwd: str) -> HookResult:
        return HookResult(False, "no hook runner is wired", 0.0)
