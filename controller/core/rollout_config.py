"""The parameters of one rollout, derived from a service action (x-berth options, defaults,
and what the service's container body forces, like stop-first for published host ports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.compose.namespaces import shares_a_namespace
from controller.core.model import CanarySpec, Strategy
from controller.core.plan import NEW_REVISION, ActionKind, ServiceAction
from controller.core.task_options import ReleaseTask, SmokeCheck


@dataclass(frozen=True)
class RolloutConfig:
    kind: ActionKind
    strategy: Strategy
    replicas: int
    image: str
    progress_deadline: float
    probe_interval: float
    threshold: int
    docker_health: bool
    http_probe: bool
    bake: float
    from_revision: str | None  # the revision that served before (restored by stop-first)
    # Containers of the target revision that already serve when the rollout starts (routed
    # by nginx, or the running replicas a scale-up adds to): never re-gated, never removed.
    serving: frozenset[str] = frozenset()
    canary: CanarySpec | None = None  # progressive delivery through the dynamic switch
    build: bool = False  # the image is built on the host when absent (compose `build:`)
    pull_first: bool = False  # ... after a pull of it failed (compose `image:` given too)
    # compose pull_policy: missing (default), always, never, build; daily, weekly and
    # every_<duration> pull at every rollout (Berth keeps no record of the last pull)
    pull_policy: str = "missing"
    # the rollout's own work (x-berth.release, x-berth.smoke): once per revision before any
    # new container starts; HTTP checks of each new container before (and in) the bake
    release: tuple[ReleaseTask, ...] = ()
    smoke: tuple[SmokeCheck, ...] = ()


def config_for(
    action: ServiceAction, from_rev: str | None, *, serving: frozenset[str] = frozenset()
) -> RolloutConfig:
    """The rollout parameters of one service action (x-berth options and defaults)."""
    t = action.target
    if t is None:
        return RolloutConfig(
            action.kind, "start-first", 0, "", 0, 0.25, 1, False, False, 0, from_rev
        )
    b = t.spec.berth
    # Two containers cannot bind one host port, nor hold one fixed address or one
    # container_name: such a service
    # is replaced stop-first whatever its x-berth.strategy says.
    fixed = t.spec.fixed_address
    exclusive = (
        fixed
        or bool(t.spec.container_name)
        or publishes_host_ports(t.spec.create)
        or shares_a_namespace(t.spec.create)
    )
    strategy: Strategy = "stop-first" if exclusive else b.strategy
    return RolloutConfig(
        kind=action.kind,
        strategy=strategy,
        replicas=t.replicas,
        image=t.image,
        progress_deadline=b.progress_deadline,
        probe_interval=b.health.interval if b.health else 0.25,
        threshold=b.health.healthy_threshold if b.health else 2,
        docker_health=t.spec.has_healthcheck,
        http_probe=b.health is not None,
        bake=b.bake,
        from_revision=from_rev,
        serving=serving,
        canary=b.canary if b.upstream is not None and strategy == "start-first" else None,
        build=t.spec.build is not None,
        pull_first=t.spec.build is not None and t.spec.build.pull_first,
        pull_policy=t.spec.pull_policy or "missing",
        release=b.release if action.kind in NEW_REVISION else (),
        smoke=b.smoke,
    )


def publishes_host_ports(create: Mapping[str, Any]) -> bool:
    bindings = (create.get("HostConfig") or {}).get("PortBindings") or {}
    return any(b.get("HostPort") for lst in bindings.values() for b in (lst or []))
