"""Fakes of the task ports (controller/task_ports.py) for the executor's unit tests, pinned
to the adapters by tests/integration/test_contract_tasks.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.core.task_options import HookSpec
from controller.errors import ProbeError
from controller.task_ports import HookResult, HttpAnswer


@dataclass
class FakeHttp:
    """Answers by path (`answers[path]`); a path it has no answer for is refused, as a
    closed port is. Records every request."""

    answers: dict[str, HttpAnswer] = field(default_factory=dict)
    requests: list[tuple[str, int, str, str, dict[str, str], bytes | None]] = field(
        default_factory=list
    )

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
        self.requests.append((host, port, method, path, dict(headers), body))
        answer = self.answers.get(path)
        if answer is None:
            raise ProbeError("connection refused")
        return HttpAnswer(answer.status, dict(answer.headers), answer.body[:limit])


@dataclass
class FakeHooks:
    """Every hook succeeds unless its label is in `fail`; records (hook, payload, cwd)."""

    fail: set[str] = field(default_factory=set)
    runs: list[tuple[HookSpec, dict[str, str], str]] = field(default_factory=list)

    def run(self, hook: HookSpec, payload: Mapping[str, str], *, cwd: str) -> HookResult:
        self.runs.append((hook, dict(payload), cwd))
        if hook.label in self.fail:
            return HookResult(False, "exit 1: refused", 0.01)
        return HookResult(True, "exit 0", 0.01)
