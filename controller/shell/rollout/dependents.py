"""compose `depends_on: {X: {restart: true}}`: when X was replaced, restart its dependents.

Compose restarts a service whose dependency it restarts or recreates, so that the service
reconnects (a client that cached X's address, or holds connections to it, starts over).
Berth does it after a rollout of X that succeeded and replaced running containers of X
(not a first create, a scale, a clean-up of stopped ones, or a no-op pass), for every
service of the same stack whose `depends_on` names X with `restart: true`, on their running
containers.

A restart is the runtime's stop (with the container's own grace period, as compose's
`docker restart` does) and start, so the start takes the Docker adapter's address lock as
every start does. Docker frees a container's address while it is stopped: a restarted
container can come back on another address if something else started on that network in
between. Both `berth apply` and the daemon reach this through Executor.execute.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable

from controller.core.model import StackSpec
from controller.core.outcome import Outcome
from controller.core.plan import ActionKind, ServiceAction
from controller.errors import BerthError, NotFound
from controller.shell.rollout.results import Event, Ports


def replaced(action: ServiceAction, outcome: Outcome) -> bool:
    """The rollout put new containers where running ones of another revision were."""
    return (
        outcome is Outcome.SUCCEEDED
        and action.kind is ActionKind.REPLACE
        and any(c.running for c in action.old)
    )


def dependents(stack: StackSpec, service: str) -> list[str]:
    """Services of `stack` that asked to be restarted when `service` is."""
    return sorted(
        name
        for name, spec in stack.services.items()
        if name != service and any(d.service == service and d.restart for d in spec.depends_on)
    )


def restart_dependents(
    ports: Ports,
    action: ServiceAction,
    outcome: Outcome,
    stack: StackSpec | None,
    emit: Callable[[Event], None],
) -> list[str]:
    """Restart the running containers of `action.service`'s restart-dependents once its
    rollout SUCCEEDED; returns the ids restarted. A failed restart is reported as an
    event and does not change the dependency's outcome (its rollout is done)."""
    if stack is None or not replaced(action, outcome):
        return []
    names = dependents(stack, action.service)
    if not names:
        return []
    rt = ports.runtime

    def say(service: str, phase: str, message: str) -> None:
        emit(Event(action.project, service, phase, message, ports.clock.now()))

    try:
        listed = rt.list_containers(project=action.project)
    except BerthError as exc:
        for name in names:
            say(name, "restart-failed", f"dependency {action.service} was replaced: {exc}")
        return []
    rows = [c for c in listed if c.service in names and c.running]

    for name in names:
        count = sum(1 for c in rows if c.service == name)
        if count:
            say(name, "restart", f"dependency {action.service} was replaced: {count} container(s)")

    def restart(cid: str) -> str | None:
        try:
            rt.stop(cid)  # its own grace period
            rt.start(cid)
        except NotFound:
            return None  # removed meanwhile (its own rollout): nothing to restart
        except BerthError as exc:  # the engine refused, or is unreachable
            return str(exc)
        return ""

    done: list[str] = []
    with cf.ThreadPoolExecutor(max_workers=max(1, min(8, len(rows)))) as pool:
        for c, error in zip(rows, pool.map(restart, [c.id for c in rows]), strict=True):
            if error:
                say(c.service, "restart-failed", f"{c.name}: {error}")
            elif error is not None:
                done.append(c.id)
    for name in names:
        restarted = [c for c in rows if c.service == name and c.id in done]
        if restarted:
            say(name, "restarted", f"{len(restarted)} container(s) after {action.service}")
    return done
