"""Builds the real adapters from the global command-line options (the composition root)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from controller.adapters.clock import SystemClock
from controller.adapters.files import ConfigTree, default_root, load_config
from controller.adapters.sqlite_store import SqliteStateStore
from controller.core.config import Config
from controller.errors import BerthError

if TYPE_CHECKING:  # imported when first used: `berth validate` needs neither (~100 ms)
    from collections.abc import Callable

    from controller.adapters.docker_build import DockerBuilder
    from controller.adapters.docker_runtime import DockerRuntime
    from controller.adapters.hooks import HookRunner
    from controller.adapters.http_client import HttpClient
    from controller.adapters.registry import Registry
    from controller.adapters.swarm_runtime import SwarmRuntime
    from controller.ports import HealthProber
    from controller.shell.git_source import GitSource
    from controller.shell.rollout.digests import DigestResolver
    from controller.shell.rollout.executor import Emit
    from controller.shell.rollout.notify import Notifier
    from controller.shell.rollout.session import RolloutSession


@dataclass
class Context:
    desired: str
    state_dir: str
    docker_host: str | None
    compose_root: str | None = None  # the operator's tree; None: the parent of desired/
    adopt: frozenset[str] = frozenset()  # `berth adopt`: compose-started containers too
    digests: bool = True  # resolve tags to registry digests (x-berth.track); off: by tag
    digest_ttl: float = 60.0  # seconds a tag's digest is trusted before it is asked again
    # `berth run --git-url`: desired is then checkout/PATH and the compose root the checkout
    git: GitSource | None = None
    # notification targets: (origin, Apprise URL), origin = the flag or variable that gave it
    notify: tuple[tuple[str, str], ...] = ()
    notify_config: str | None = None  # an Apprise config file

    def config(self) -> Config:
        """The configuration as the files say now (the daemon calls this on every reload)."""
        cfg = load_config(self.desired, dict(os.environ), root=self.compose_root)
        self.__dict__["_last_config"] = cfg
        return cfg

    def _process_config(self) -> Config:
        """What the process-wide choices (backend, the Swarm runtime's pins, the edge
        prober's sockets), each read once at its first use, are read from: the configuration
        this process loaded last, not a fresh parse of every file for each (an apply parsed
        them four times before its first step, ~0.15 s)."""
        last = self.__dict__.get("_last_config")
        return last if isinstance(last, Config) else self.config()

    def config_files(self) -> ConfigTree:
        """The desired/ boundary as the file adapter enforces it (DESIGN §2)."""
        root = self.compose_root or default_root(self.desired)
        return ConfigTree(root=root, desired=self.desired)

    @cached_property
    def store(self) -> SqliteStateStore:
        os.makedirs(self.state_dir, exist_ok=True)
        return SqliteStateStore(os.path.join(self.state_dir, "state.db"))

    @cached_property
    def backend(self) -> str:
        """`local` or `swarm`: the compose files' `x-berth.backend` (one per process, checked
        at load), read once; a configuration that does not load yet counts as local."""
        try:
            stacks = self._process_config().stacks
        except BerthError:
            return "local"
        return next((s.backend for s in stacks.values()), "local")

    @cached_property
    def runtime(self) -> DockerRuntime | SwarmRuntime:
        if self.backend == "swarm":
            return self._swarm_runtime()
        from controller.adapters.docker_runtime import DockerRuntime

        return DockerRuntime(self.docker_host, adopt=self.adopt)

    def _swarm_runtime(self) -> SwarmRuntime:
        """On a manager (`--docker-host`, DOCKER_HOST, else the local engine: Berth on the
        edge node itself); each stack's nginx pinned to that node (Berth signals it there
        and shares its upstreams directory with it). Not a manager: an error at first use."""
        from controller.adapters.docker_runtime import DEFAULT_SOCKET
        from controller.adapters.swarm_runtime import SwarmRuntime

        url = self.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        pinned = [
            (s.project, s.proxy.service)
            for s in self._process_config().stacks.values()
            if s.proxy is not None and s.proxy.service
        ]
        return SwarmRuntime(url, pinned=pinned)

    @cached_property
    def builder(self) -> DockerBuilder:
        from controller.adapters.docker_build import DockerBuilder

        return DockerBuilder(lambda: self.runtime.client)

    @cached_property
    def registry(self) -> Registry:
        """A registry's API as the engine sees it: the docker config's credentials (and
        helpers), the engine's insecure-registry list, /etc/docker/certs.d."""
        from controller.adapters.registry import Registry, docker_auth, engine_insecure

        return Registry(
            auth=docker_auth(), insecure=engine_insecure(lambda: self.runtime.client.api.info())
        )

    @cached_property
    def resolver(self) -> DigestResolver | None:
        """One per process: the daemon's cache of what tags point at lives here."""
        from controller.shell.rollout.digests import DigestResolver

        if not self.digests:
            return None
        return DigestResolver(self.registry, self.runtime, ttl=self.digest_ttl)

    @cached_property
    def prober(self) -> HealthProber:
        """On the Swarm backend the tasks' overlay addresses are out of Berth's reach: the
        edge nginx probes them for Berth, asked through its control socket."""
        if self.backend == "swarm":
            from controller.adapters.edge_prober import EdgeProber
            from controller.core.peers import SOCKET_FILE

            sockets = [
                os.path.join(os.path.dirname(s.proxy.upstreams_file), SOCKET_FILE)
                for s in self._process_config().stacks.values()
                if s.proxy is not None
            ]
            return EdgeProber(sockets)
        from controller.adapters.http_prober import HttpProber

        return HttpProber()

    @cached_property
    def http(self) -> HttpClient:
        """Smoke checks' requests to new containers (x-berth.smoke)."""
        from controller.adapters.http_client import HttpClient

        return HttpClient()

    @cached_property
    def hooks(self) -> HookRunner:
        """x-berth.hooks: commands on this host, webhooks."""
        from controller.adapters.hooks import HookRunner

        return HookRunner()

    @cached_property
    def clock(self) -> SystemClock:
        return SystemClock()

    def notifier(self, on_result: Callable[[str, str], None] | None = None) -> Notifier:
        """The notifier of this process (one per `berth run` or `berth apply`): a disabled
        one without targets. Raises NotifyConfigError for a target Apprise cannot use."""
        from controller.shell.rollout.notify import Notifier

        if not self.notify and self.notify_config is None:
            return Notifier(None)
        from controller.adapters.notify_apprise import AppriseSink, targets

        return Notifier(AppriseSink(targets(self.notify, self.notify_config), on_result=on_result))

    def session(
        self,
        cfg: Config,
        *,
        emit: Emit,
        on_reload: Callable[[str], None] | None = None,
    ) -> RolloutSession:
        """The one composition of a rollout pass (traffic switch, ports, executor), for
        `apply`, `run` and `deploy --wait`."""
        from controller.adapters.git import head_commit
        from controller.adapters.prometheus import PrometheusQuery
        from controller.shell.rollout.proxy import NginxSwitch
        from controller.shell.rollout.results import Ports
        from controller.shell.rollout.session import RolloutSession

        proxy = NginxSwitch(
            self.runtime, cfg.stacks, on_reload=on_reload, probe_routed=self.backend == "swarm"
        )
        ports = Ports(
            self.runtime,
            self.prober,
            self.clock,
            self.store,
            proxy,
            PrometheusQuery(),
            self.builder,
            self.http,
            self.hooks,
        )
        return RolloutSession(ports, proxy, emit=emit, commit=head_commit(self.desired))
