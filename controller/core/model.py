"""The value types that flow between the pure core, the ports and the shell.

Everything here is frozen and free of I/O, so the planner and the rollout state machine can
be tested with plain values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

Strategy = Literal["start-first", "stop-first"]

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_MANAGED = "berth.managed"
LABEL_REVISION = "berth.revision"
LABEL_TAG = "berth.tag"
LABEL_COMMIT = "berth.source-commit"
MAX_REPLICAS = 256  # per service: a documented bound, so no count can exhaust memory
NAME_RE = re.compile(r"[a-zA-Z0-9._-]{1,255}")  # compose-spec's service/network/volume keys


@dataclass(frozen=True)
class ProbeSpec:
    """Berth's own HTTP health probe (`x-berth.health`)."""

    path: str = "/health"
    port: int = 80
    interval: float = 0.25
    timeout: float = 2.0
    healthy_threshold: int = 2


@dataclass(frozen=True)
class UpstreamSpec:
    """`x-berth.upstream`: the service is served through nginx under this upstream name."""

    name: str
    port: int


@dataclass(frozen=True)
class QuerySpec:
    """A PromQL check of the canary analysis: the query's value must stay within bounds.
    `{{revision}}`, `{{service}}` and `{{project}}` in the query are filled in."""

    query: str
    max: float | None = None
    min: float | None = None


@dataclass(frozen=True)
class AnalysisSpec:
    """How a canary step (and the bake after it) is judged on the new revision's traffic."""

    min_requests: int = 50  # per measurement; fewer = inconclusive
    success_rate: float | None = 99.0  # % of responses that are not 5xx or errors
    max_latency_p99: float | None = None  # seconds
    failure_limit: int = 1  # failed measurements that abort the release
    # against the stable revision in the same window (optional):
    max_success_rate_drop: float | None = None  # percentage points below stable
    max_latency_ratio: float | None = None  # new p99 / stable p99
    prometheus: str | None = None  # base URL for `queries`
    queries: tuple[QuerySpec, ...] = ()


@dataclass(frozen=True)
class CanarySpec:
    """`x-berth.canary`: the new revision gets `steps` % of requests in turn, each held at
    least `interval`, then 100 %."""

    steps: tuple[int, ...] = (10, 50)
    interval: float = 30.0
    sticky: bool = False
    analysis: AnalysisSpec | None = None


@dataclass(frozen=True)
class BerthOptions:
    """Per-service `x-berth` options, with the defaults of DESIGN §3."""

    strategy: Strategy = "start-first"
    upstream: UpstreamSpec | None = None
    health: ProbeSpec | None = None
    progress_deadline: float = 120.0
    drain_timeout: float = 30.0
    bake: float = 0.0
    allowed_tags: str | None = None
    canary: CanarySpec | None = None


@dataclass(frozen=True)
class ProxySpec:
    """Top-level `x-berth.proxy`: which service is nginx and which file Berth owns."""

    service: str | None
    upstreams_file: str  # absolute path
    test_command: tuple[str, ...] | None = None  # host nginx: e.g. ("nginx", "-t")
    reload_command: tuple[str, ...] | None = None  # host nginx: e.g. ("nginx", "-s", "reload")
    # How traffic moves: "dynamic" (peers set in the running nginx through its Lua module,
    # no reload), "reload" (rewrite the file and reload), "auto" (dynamic where nginx has
    # the Lua module and can reach Berth's directory, else reload).
    switch: str = "auto"


@dataclass(frozen=True)
class NetworkAttachment:
    """One network a service's containers join (full Docker network name)."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


@dataclass(frozen=True)
class IpamPool:
    """One `ipam.config` entry of a compose network (validated CIDRs and addresses)."""

    subnet: str
    ip_range: str | None = None
    gateway: str | None = None


@dataclass(frozen=True)
class NetworkDef:
    name: str  # full Docker name, e.g. "gesalps_default"
    key: str  # compose key, e.g. "default"
    driver: str | None = None
    internal: bool = False
    external: bool = False
    attachable: bool = False
    driver_opts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    ipam_driver: str | None = None
    ipam: tuple[IpamPool, ...] = ()  # empty: the engine picks the subnet


@dataclass(frozen=True)
class VolumeDef:
    name: str  # full Docker name, e.g. "gesalps_data"
    key: str
    driver: str | None = None
    external: bool = False
    driver_opts: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DependsOn:
    service: str
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"] = (
        "service_started"
    )


@dataclass(frozen=True)
class ServiceSpec:
    """One compose service translated to Docker Engine API terms, before the tag is applied.

    `create` is the body of `POST /containers/create` without `Image`, the per-container
    labels and `NetworkingConfig`; networks are listed separately because the Engine API
    before 1.44 accepts one endpoint at create time and because service aliases are only
    connected once a container passed its gate.
    """

    project: str
    name: str
    image: str  # as the compose file writes it (repository, maybe with a tag)
    replicas: int
    create: Mapping[str, Any]
    networks: tuple[NetworkAttachment, ...]
    depends_on: tuple[DependsOn, ...] = ()
    berth: BerthOptions = field(default_factory=BerthOptions)
    has_healthcheck: bool = False
    stop_grace_period: float = 10.0
    source_file: str = ""
    source_line: int | None = None


@dataclass(frozen=True)
class StackSpec:
    """A compose project as Berth will run it."""

    project: str
    compose_files: tuple[str, ...]
    services: Mapping[str, ServiceSpec]
    networks: Mapping[str, NetworkDef]
    volumes: Mapping[str, VolumeDef]
    proxy: ProxySpec | None = None
    env_files: tuple[str, ...] = ()  # .env and env_file paths read, for the watcher


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None


@dataclass(frozen=True)
class DesiredService:
    name: str
    tag: str
    replicas: int | None
    where: Location


@dataclass(frozen=True)
class DesiredStack:
    """One `desired/*.yaml` file, validated."""

    project: str
    file: str
    compose_files: tuple[str, ...]  # absolute paths
    services: Mapping[str, DesiredService]


def image_ref(image: str, tag: str) -> str:
    """Combine a compose image (repository, maybe already tagged) with a desired tag or digest."""
    repo = strip_tag(image)
    if tag.startswith("sha256:"):
        return f"{repo}@{tag}"
    return f"{repo}:{tag}"


def strip_tag(image: str) -> str:
    """Repository part of a reference: drops `:tag` and `@digest`, keeps a registry port."""
    repo = image.split("@", 1)[0]
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    if colon > slash:
        repo = repo[:colon]
    return repo


def tag_of(image: str) -> str:
    """The tag (or digest) a compose image reference pins, `latest` when none."""
    if "@" in image:
        return image.split("@", 1)[1]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[colon + 1 :] if colon > slash else "latest"


@dataclass(frozen=True)
class Target:
    """What should run for one service: spec + tag + replicas, and the revision hash."""

    project: str
    service: str
    image: str  # full reference to create containers from
    tag: str
    replicas: int
    spec: ServiceSpec

    @property
    def key(self) -> str:
        return f"{self.project}/{self.service}"

    @cached_property
    def revision(self) -> str:
        """Computed once per Target (a JSON dump and a SHA-256): the daemon asks for it in
        every pass of every service."""
        return revision_of(self.image, self.spec)


def revision_of(image: str, spec: ServiceSpec) -> str:
    """Hash of the effective container spec: a changed env or limit is a new revision too."""
    doc = {
        "image": image,
        "create": spec.create,
        "networks": [[n.network, list(n.aliases), n.ipv4_address] for n in spec.networks],
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class ContainerState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    PAUSED = "paused"
    EXITED = "exited"
    DEAD = "dead"
    REMOVING = "removing"


@dataclass(frozen=True)
class ObservedContainer:
    """What one `containers.list` row tells about a container (no inspect needed)."""

    id: str
    name: str
    project: str
    service: str
    number: int
    revision: str
    tag: str
    image: str
    state: ContainerState
    health: Literal["starting", "healthy", "unhealthy"] | None
    created: float  # unix time
    managed: bool = True
    exit_code: int | None = None
    ips: Mapping[str, str] = field(default_factory=dict)  # network name -> IPv4

    @property
    def running(self) -> bool:
        return self.state is ContainerState.RUNNING

    @property
    def ready(self) -> bool:
        """Serving-ready as far as a list row tells: running, and healthy when it has a
        healthcheck. The one definition that status, metrics and route healing count by."""
        return self.running and self.health in (None, "healthy")


@dataclass(frozen=True)
class Observed:
    """Everything observed of the world in one pass."""

    containers: tuple[ObservedContainer, ...]
    quarantined: frozenset[tuple[str, str]] = frozenset()  # (key "project/service", revision)

    def is_quarantined(self, key: str, revision: str) -> bool:
        """`key` ("project/service") must not be rolled out to `revision` again until
        desired/ changes or `berth retry` lifts it."""
        return (key, revision) in self.quarantined

    def of_service(self, project: str, service: str) -> tuple[ObservedContainer, ...]:
        return tuple(c for c in self.containers if c.project == project and c.service == service)
