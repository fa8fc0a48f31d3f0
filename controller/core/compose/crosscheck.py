"""Checks across the services of a stack: upstreams, dependencies and their cycles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from controller.core.compose.context import StackCtx
from controller.core.compose.profiles import Selection
from controller.core.model import ServiceSpec
from controller.core.yamlsrc import Located, Path
from controller.errors import brief


def check_depends(
    ctx: StackCtx, services: Mapping[str, ServiceSpec], selection: Selection
) -> dict[str, ServiceSpec]:
    """Each dependency must be another enabled service. One that failed its own
    translation was reported already, and is not reported again here. An optional one
    (`required: false`) on a service that is not enabled (its profile is off, or it is not
    in the file) is dropped, as compose starts the dependent without it; returns the
    services so."""
    out: dict[str, ServiceSpec] = {}
    for name, spec in services.items():
        kept = []
        for dep in spec.depends_on:
            path = ("services", name, "depends_on", dep.service)
            absent = dep.service in selection.disabled or dep.service not in selection.enabled
            if not dep.required and absent and dep.service != name:
                continue
            kept.append(dep)
            if dep.service in selection.disabled:
                ctx.loc.error(path, selection.why_disabled(dep.service, ctx.env))
            elif dep.service == name or dep.service not in selection.enabled:
                ctx.loc.error(path, f"{brief(dep.service)} is not another service of this stack")
        out[name] = (
            spec if len(kept) == len(spec.depends_on) else replace(spec, depends_on=tuple(kept))
        )
    return out


def cross_check(
    loc: Located, services: Mapping[str, ServiceSpec], ports: Mapping[str, set[int]]
) -> None:
    upstreams: dict[str, str] = {}
    for name, spec in services.items():
        up = spec.berth.upstream
        if up is not None:
            path: Path = ("services", name, "x-berth", "upstream")
            if up.port not in ports.get(name, set()):
                loc.error(
                    (*path, "port"),
                    f"port {up.port} is not a container port in 'expose' or 'ports' of {name}",
                )
            key = up.name.lower()  # nginx compares upstream names case-insensitively
            if key in upstreams:
                loc.error(
                    (*path, "name"),
                    f"upstream {brief(up.name)} is also used by service "
                    f"{brief(upstreams[key])} (nginx ignores case in upstream names)",
                )
            upstreams.setdefault(key, name)
    names: dict[str, str] = {}
    for name, spec in services.items():  # compose-go refuses a container_name used twice
        fixed = spec.container_name
        if fixed is not None and names.setdefault(fixed, name) != name:
            loc.error(
                ("services", name, "container_name"),
                f"{brief(fixed)} is already the container_name of service {brief(names[fixed])}",
            )
    cycle = _find_cycle(services)
    if cycle:
        key = _cycle_key(services, cycle)
        why = "" if key == "depends_on" else f" ({key} starts service {cycle[1]!r} first)"
        loc.error(("services", cycle[0], key), "dependency cycle: " + " -> ".join(cycle) + why)


def _cycle_key(services: Mapping[str, ServiceSpec], cycle: list[str]) -> str:
    """The key that makes the cycle's first link: a `service:` peer of network_mode or
    volumes_from is a dependency as depends_on is (it must start first)."""
    spec, peer = services[cycle[0]], cycle[1]
    host = spec.create.get("HostConfig") or {}
    if peer in spec.peers and host.get("NetworkMode") == f"service:{peer}":
        return "network_mode"
    if peer in spec.peers and any(
        str(v).split(":")[:2] == ["service", peer] for v in host.get("VolumesFrom") or []
    ):
        return "volumes_from"
    return "depends_on"


def _find_cycle(services: Mapping[str, ServiceSpec]) -> list[str] | None:
    """A depends_on cycle as [a, b, ..., a], or None. Iterative depth-first search: a chain
    of a thousand services must not exhaust Python's recursion limit."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in services:
        if state.get(root):
            continue
        path: list[str] = [root]
        pending = [iter(_deps_of(services, root))]
        state[root] = 1
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt in services and not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                pending.append(iter(_deps_of(services, nxt)))
    return None


def _deps_of(services: Mapping[str, ServiceSpec], name: str) -> list[str]:
    return [d.service for d in services[name].depends_on if d.service != name]
