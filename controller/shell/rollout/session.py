"""A rollout session: the one way a reconcile pass acts, for `apply`, `run` and
`deploy --wait` alike (built by `wiring.Context.session`).

It holds the traffic switch, the ports and the executor of one pass, and the one
route-heal routine for services that are steady in that pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Event as Flag

from controller.core.model import Observed, StackSpec
from controller.core.plan import ServiceAction
from controller.errors import ProxyError
from controller.shell.rollout.executor import Emit, Executor
from controller.shell.rollout.proxy import NginxSwitch, probe_ready
from controller.shell.rollout.results import Ports, RolloutResult


@dataclass(frozen=True)
class Healed:
    """What healing a steady service's routes did: the changes, or why it could not."""

    reasons: tuple[str, ...] = ()
    error: str | None = None


class RolloutSession:
    def __init__(self, ports: Ports, proxy: NginxSwitch, *, emit: Emit, commit: str | None):
        self.ports = ports
        self.proxy = proxy
        self.executor = Executor(ports, emit=emit, commit=commit)

    def prepare(self, observed: Observed) -> None:
        """Before anything starts nginx, its upstream file holds every upstream block."""
        self.proxy.ensure_files(observed.containers)

    def execute(
        self, action: ServiceAction, stack: StackSpec | None, *, cancel: Flag | None = None
    ) -> RolloutResult:
        return self.executor.execute(action, stack, cancel=cancel)

    def heal_routes(self, action: ServiceAction, observed: Observed) -> Healed:
        """A steady service's nginx routes follow its containers between rollouts (a
        container Docker restarted may come back on another address; see
        core.upstream.healed_routes)."""
        try:
            reasons = self.proxy.heal(
                action, observed.containers, probe_ready(self.ports.prober, action)
            )
        except ProxyError as exc:
            return Healed(error=str(exc))
        return Healed(reasons=tuple(reasons))
