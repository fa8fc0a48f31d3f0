"""nginx cut-over: keeps each stack's upstream file equal to the containers that should
receive traffic, and moves the traffic in nginx.

Two ways to move it (x-berth.proxy.switch): the dynamic switch sets the peers in the
running nginx through its Lua module, with no reload (dynamic.py, core/peers.py); the
reload switch rewrites the file, tests it, reloads nginx and waits for the old workers
(core/upstream.py). `auto` takes the dynamic one where nginx loads the Lua module.

The upstream file is the record of who is routed in both (upstream_file.py changes it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controller.adapters.nginx import ContainerNginx, HostNginx
from controller.adapters.nginx_control import NginxControl
from controller.core.model import ObservedContainer, ServiceSpec, StackSpec
from controller.core.peers import (
    SOCKET_FILE,
    PeerSet,
    by_revision,
    canary_set,
    is_dynamic,
)
from controller.core.plan import ServiceAction
from controller.core.upstream import (
    Backend,
    Candidate,
    healed_routes,
    steady_revisions,
)
from controller.errors import ProxyError
from controller.ports import ContainerRuntime, HealthProber
from controller.shell.rollout import dynamic
from controller.shell.rollout.switch_mode import decide_mode
from controller.shell.rollout.upstream_file import (
    ensure_dynamic_file,
    ensure_reload_file,
    publish_dynamic,
    publish_reload,
    read_upstreams,
    recorded_text,
)


class NginxSwitch:
    def __init__(
        self,
        runtime: ContainerRuntime,
        stacks: Mapping[str, StackSpec],
        *,
        on_reload: Callable[[str], None] | None = None,
        probe_routed: bool = False,
    ) -> None:
        """`probe_routed`: heal probes routed containers too (the Swarm backend)."""
        self.runtime = runtime
        self.stacks = stacks
        self.probe_routed = probe_routed
        self.reloads: dict[str, int] = {"success": 0, "error": 0}
        self._on_reload = on_reload or (lambda result: None)

    # -- ProxySwitch ---------------------------------------------------------------------

    def cut_over(
        self, action: ServiceAction, new_ids: Sequence[str], old_ids: Sequence[str]
    ) -> None:
        self._route(action, list(new_ids))

    def switch_back(
        self, action: ServiceAction, old_ids: Sequence[str], new_ids: Sequence[str]
    ) -> None:
        self._route(action, list(old_ids))

    def retire(self, action: ServiceAction, ids: Sequence[str]) -> None:
        stack, spec = self._proxied(action)
        if stack is None or spec is None or spec.berth.upstream is None:
            return
        assert stack.proxy is not None
        current = read_upstreams(stack.proxy.upstreams_file).get(spec.berth.upstream.name, [])
        drop = {i[:12] for i in ids}
        keep = [b.container_id for b in current if b.container_id[:12] not in drop]
        if len(keep) != len(current):
            self._route(action, keep, always=False)

    # -- between rollouts ----------------------------------------------------------------

    def heal(
        self,
        action: ServiceAction,
        containers: Sequence[ObservedContainer],
        ready: Callable[[str], bool],
    ) -> list[str]:
        """For a steady service (no rollout of it in flight): bring its upstream back in
        line with its containers, e.g. after Docker restarted one on a new address (see
        core.upstream.healed_routes). `ready(ip)` probes a container before it is routed.
        Returns one reason per changed route; [] when nothing changed."""
        stack, spec = self._proxied(action)
        if stack is None or spec is None or action.target is None:
            return []
        assert stack.proxy is not None and spec.berth.upstream is not None
        net = _shared_network(stack, spec)
        mine = [c for c in containers if (c.project, c.service) == (stack.project, spec.name)]
        routed = read_upstreams(stack.proxy.upstreams_file).get(spec.berth.upstream.name, [])
        ids = {b.container_id[:12] for b in routed}
        revs = steady_revisions(
            action.kind, action.target.revision, {c.revision for c in mine if c.id[:12] in ids}
        )
        candidates = [
            Candidate(c.id, c.name, c.ips.get(net) if net else None, c.ready and c.revision in revs)
            for c in mine
        ]
        if self.probe_routed:  # every address at once: a lost node's probe waits its timeout
            addresses = sorted({c.address for c in candidates if c.serving and c.address})
            with ThreadPoolExecutor(max_workers=max(1, min(16, len(addresses)))) as pool:
                verdicts = dict(zip(addresses, pool.map(ready, addresses), strict=True))
            healed = healed_routes(
                routed,
                candidates,
                lambda c: verdicts.get(c.address or "", False),
                probe_routed=True,
            )
        else:
            healed = healed_routes(routed, candidates, lambda c: ready(c.address or ""))
        if healed is None:
            return []
        keep, reasons = healed
        self._route(action, [c.container_id for c in keep], always=False)
        return reasons

    # -- first start ---------------------------------------------------------------------

    def ensure_files(self, containers: Sequence[ObservedContainer]) -> None:
        """Before anything starts nginx, its upstream file must exist with every upstream
        block (routing to the healthy containers of the service, or to none). With the
        dynamic switch, a running nginx is also brought onto the file's structure here,
        between rollouts (the one reload when a stack moves to the dynamic switch or gains
        an upstream), so no cut-over has to reload."""
        for stack in self.stacks.values():
            if stack.proxy is not None:
                self._ensure(stack, [c for c in containers if c.project == stack.project])

    def _ensure(self, stack: StackSpec, mine: Sequence[ObservedContainer]) -> None:
        assert stack.proxy is not None
        try:
            nginx = self._nginx(stack, mine)
        except ProxyError:
            nginx = None
        path = stack.proxy.upstreams_file
        try:
            layout = decide_mode(stack, nginx, _running(stack, mine), recorded_text(path))
        except ProxyError:
            layout = None  # the cut-over says why; the file must let nginx start
        ups = self._upstream_services(stack)

        def healthy(name: str) -> list[tuple[Backend, str]]:
            return self._healthy_backends(stack, ups[name], mine)

        if layout is None:
            ensure_reload_file(path, list(ups), healthy)
            return
        target = dynamic.Target(path, layout, nginx, self._counted)
        drain = max((s.berth.drain_timeout for s in ups.values()), default=30.0)
        with contextlib.suppress(ProxyError):  # the next cut-over reports it
            ensure_dynamic_file(target, list(ups), healthy, drain_timeout=drain)

    # -- internals -----------------------------------------------------------------------

    def _proxied(self, action: ServiceAction) -> tuple[StackSpec | None, ServiceSpec | None]:
        stack = self.stacks.get(action.project)
        if stack is None or stack.proxy is None:
            return None, None
        spec = stack.services.get(action.service)
        if spec is None and action.target is not None:
            spec = action.target.spec
        if spec is None or spec.berth.upstream is None:
            return None, None
        return stack, spec

    def routed(self, action: ServiceAction) -> frozenset[str] | None:
        stack, spec = self._proxied(action)
        if stack is None or spec is None or spec.berth.upstream is None:
            return None
        assert stack.proxy is not None
        current = read_upstreams(stack.proxy.upstreams_file).get(spec.berth.upstream.name, [])
        return frozenset(b.container_id[:12] for b in current)

    def _route(self, action: ServiceAction, ids: list[str], *, always: bool = True) -> None:
        """Make the upstream route to `ids` and return once the peers it no longer routes to
        have drained. With `always` the change reaches nginx even when the file already
        says so: a controller killed between writing the file and telling nginx left nginx
        on the old peers."""
        stack, spec = self._proxied(action)
        if stack is None or spec is None:
            return
        proxy, up = stack.proxy, spec.berth.upstream
        assert proxy is not None and up is not None
        listed = {c.id: c for c in self.runtime.list_containers(project=stack.project)}
        backends = self._backends(stack, spec, ids, listed)
        nginx = self._nginx(stack, listed.values())
        text = recorded_text(proxy.upstreams_file) if nginx is None else ""
        layout = decide_mode(stack, nginx, _running(stack, listed.values()), text)
        if layout is None:
            publish_reload(
                proxy.upstreams_file,
                list(self._upstream_services(stack)),
                up.name,
                [b for b, _ in backends],
                nginx,
                self._counted,
                always=always,
                drain_timeout=spec.berth.drain_timeout,
            )
            return

        def build(gen: int) -> PeerSet:
            return by_revision(backends, gen=gen)

        self._publish(
            stack,
            spec,
            dynamic.Target(proxy.upstreams_file, layout, nginx, self._counted),
            build,
            always,
        )

    def set_weight(
        self,
        action: ServiceAction,
        new_ids: Sequence[str],
        old_ids: Sequence[str],
        weight: int,
        *,
        sticky: bool = False,
    ) -> None:
        """Canary weights, through the dynamic switch only (a reload per step would drop
        keep-alive requests at every step)."""
        if weight <= 0:
            self._route(action, list(old_ids))
            return
        stack, spec = self._proxied(action)
        if stack is None or spec is None:
            raise ProxyError("a canary needs the service served through nginx")
        listed = {c.id: c for c in self.runtime.list_containers(project=stack.project)}
        nginx = self._nginx(stack, listed.values())
        text = recorded_text(stack.proxy.upstreams_file) if stack.proxy and nginx is None else ""
        layout = decide_mode(stack, nginx, _running(stack, listed.values()), text)
        if layout is None:
            raise ProxyError(
                "a canary needs the dynamic switch: nginx with its Lua module, and "
                "x-berth.proxy.switch auto or dynamic (see docs/x-berth.md)"
            )
        new = self._backends(stack, spec, list(new_ids), listed)
        old = self._backends(stack, spec, list(old_ids), listed)

        def build(gen: int) -> PeerSet:
            return canary_set(new, old, weight, gen=gen, sticky=sticky)

        assert stack.proxy is not None
        target = dynamic.Target(stack.proxy.upstreams_file, layout, nginx, self._counted)
        self._publish(stack, spec, target, build, True)

    def traffic(self, action: ServiceAction) -> Mapping[str, Any] | None:
        stack, spec = self._proxied(action)
        if stack is None or stack.proxy is None or spec is None:
            return None
        path = stack.proxy.upstreams_file
        if not is_dynamic(recorded_text(path)):
            return None
        try:
            return NginxControl(os.path.join(os.path.dirname(path), SOCKET_FILE)).stats()
        except ProxyError:
            return None  # nginx restarting: no counters to judge this time

    def _publish(
        self,
        stack: StackSpec,
        spec: ServiceSpec,
        target: dynamic.Target,
        build: Callable[[int], PeerSet],
        always: bool,
    ) -> None:
        assert spec.berth.upstream is not None
        publish_dynamic(
            target,
            list(self._upstream_services(stack)),
            spec.berth.upstream.name,
            build,
            always=always,
            drain_timeout=spec.berth.drain_timeout,
        )

    def _backends(
        self,
        stack: StackSpec,
        spec: ServiceSpec,
        ids: list[str],
        listed: Mapping[str, ObservedContainer],
    ) -> list[tuple[Backend, str]]:
        """(backend, revision) of each container to route to, at its current address."""
        assert spec.berth.upstream is not None
        network = _shared_network(stack, spec)
        out = []
        for cid in ids:
            c = listed.get(cid) or next((x for x in listed.values() if x.id.startswith(cid)), None)
            if c is None:
                raise ProxyError(f"container {cid[:12]} vanished before it could be routed")
            ip = self.runtime.inspect(c.id).ips.get(network) if network else None
            if not ip:
                raise ProxyError(f"{c.name} has no address on network {network}")
            out.append((Backend(c.id, c.name, ip, spec.berth.upstream.port), c.revision or ""))
        return out

    def _counted(self, result: str) -> None:
        self.reloads[result] += 1
        self._on_reload(result)

    def _nginx(
        self, stack: StackSpec, containers: Iterable[ObservedContainer]
    ) -> ContainerNginx | HostNginx | None:
        proxy = stack.proxy
        assert proxy is not None
        if proxy.service is None:
            if proxy.test_command and proxy.reload_command:
                return HostNginx(proxy.test_command, proxy.reload_command)
            raise ProxyError("x-berth.proxy needs a service or test_command and reload_command")
        mine = [c for c in containers if c.service == proxy.service]
        if not mine:
            return None
        running = [c.id for c in mine if c.running]
        if not running:
            raise ProxyError(f"nginx service {proxy.service!r} is not running")
        return ContainerNginx(self.runtime, running)

    def _upstream_services(self, stack: StackSpec) -> dict[str, ServiceSpec]:
        return {
            s.berth.upstream.name: s
            for s in stack.services.values()
            if s.berth.upstream is not None
        }

    def _healthy_backends(
        self, stack: StackSpec, spec: ServiceSpec, containers: Sequence[ObservedContainer]
    ) -> list[tuple[Backend, str]]:
        assert spec.berth.upstream is not None
        net = _shared_network(stack, spec)
        out = []
        for c in containers:
            if (
                (c.project, c.service) == (stack.project, spec.name)
                and c.ready
                and net
                and c.ips.get(net)
            ):
                backend = Backend(c.id, c.name, c.ips[net], spec.berth.upstream.port)
                out.append((backend, c.revision))
        return out


def probe_ready(prober: HealthProber, action: ServiceAction) -> Callable[[str], bool]:
    """`heal`'s readiness check: the service's x-berth probe against an address (services
    without one rely on their Docker health, which `heal` already requires)."""
    health = action.target.spec.berth.health if action.target else None
    return lambda ip: health is None or prober.probe(ip, health).ok


def _shared_network(stack: StackSpec, spec: ServiceSpec) -> str | None:
    proxy = stack.proxy
    nginx = stack.services.get(proxy.service) if proxy and proxy.service else None
    if nginx is None:
        return spec.networks[0].network if spec.networks else None
    theirs = {n.network for n in nginx.networks}
    for att in spec.networks:
        if att.network in theirs:
            return att.network
    return None


def _running(stack: StackSpec, containers: Iterable[ObservedContainer]) -> tuple[str, ...]:
    proxy = stack.proxy
    name = proxy.service if proxy else None
    return tuple(sorted(c.id for c in containers if c.service == name and c.running))
