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

from controller.core.options import AnalysisSpec as AnalysisSpec
from controller.core.options import BerthOptions as BerthOptions
from controller.core.options import CanarySpec as CanarySpec
from controller.core.options import ProbeSpec as ProbeSpec
from controller.core.options import ProxySpec as ProxySpec
from controller.core.options import QuerySpec as QuerySpec
from controller.core.options import Strategy as Strategy
from controller.core.options import UpstreamSpec as UpstreamSpec

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_MANAGED = "berth.managed"
LABEL_REVISION = "berth.revision"
LABEL_TAG = "berth.tag"
LABEL_DIGEST = "berth.digest"  # the registry digest the container runs (digest pinning)
LABEL_COMMIT = "berth.source-commit"
MAX_REPLICAS = 256  # per service: a documented bound, so no count can exhaust memory
NAME_RE = re.compile(r"[a-zA-Z0-9._-]{1,255}")  # compose-spec's service/network/volume keys


@dataclass(frozen=True)
class NetworkAttachment:
    """One network a service's containers join (full Docker network name). A service's
    attachments are ordered as compose orders them: highest `priority` first, then by
    compose network key; the first is the primary network (HostConfig.NetworkMode)."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    link_local_ips: tuple[str, ...] = ()
    driver_opts: tuple[tuple[str, str], ...] = ()
    priority: int = 0
    gw_priority: int = 0  # EndpointSettings.GwPriority: needs Engine API 1.48

    def endpoint_settings(self, *, aliases: bool) -> dict[str, Any]:
        """The EndpointSettings body for create (NetworkingConfig) or connect; the service
        aliases only when `aliases` (Berth adds them once a container passed its gate)."""
        ep: dict[str, Any] = {}
        if aliases and self.aliases:
            ep["Aliases"] = list(self.aliases)
        ipam: dict[str, Any] = {}
        if self.ipv4_address:
            ipam["IPv4Address"] = self.ipv4_address
        if self.ipv6_address:
            ipam["IPv6Address"] = self.ipv6_address
        if self.link_local_ips:
            ipam["LinkLocalIPs"] = list(self.link_local_ips)
        if ipam:
            ep["IPAMConfig"] = ipam
        if self.driver_opts:
            ep["DriverOpts"] = dict(self.driver_opts)
        if self.gw_priority:
            ep["GwPriority"] = self.gw_priority
        return ep

    def revision_key(self) -> list[Any]:
        """What of the attachment makes a new revision; fields added later count only when
        set, so the revisions of stacks that do not use them stay what they were."""
        key: list[Any] = [self.network, list(self.aliases), self.ipv4_address]
        extra = {
            "ipv6": self.ipv6_address,
            "link_local": list(self.link_local_ips),
            "driver_opts": dict(self.driver_opts),
            "gw_priority": self.gw_priority,
        }
        extra = {k: v for k, v in extra.items() if v}
        return [*key, extra] if extra else key


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
    enable_ipv6: bool = False  # compose `enable_ipv6`: IPv6 pools allowed in `ipam`


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
    restart: bool = False  # compose: restart this service when `service` is restarted
    required: bool = True  # compose: false = a dependency only when `service` is enabled


@dataclass(frozen=True)
class InjectedFile:
    """A secret or config whose value is not a host file (`environment:`, `content:`): as
    compose does, the shell writes it into the created container before starting it
    (PUT /containers/{id}/archive, a one-file tar at `target`). `content` is never shown."""

    target: str  # absolute path in the container
    content: str = field(repr=False)
    uid: int = 0
    gid: int = 0
    mode: int = 0o444  # compose writes 0444 unless `mode` says otherwise


@dataclass(frozen=True)
class BuildSpec:
    """A compose `build:` section: how Berth builds the service's image on the host
    (Engine API `POST /build`) before the health-gated replacement.

    `context` is absolute and inside the compose root; `dockerfile` is relative to it (or
    absolute when compose points outside the context); `exclude` holds context-relative
    directories never sent to the engine, on top of `.dockerignore` (desired/, when the
    context holds it: a desired/ commit must not choose what goes into an image).
    """

    context: str
    dockerfile: str = "Dockerfile"
    dockerfile_inline: str | None = None
    args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    cache_from: tuple[str, ...] = ()
    network: str | None = None
    shm_size: int | None = None
    extra_hosts: tuple[tuple[str, str], ...] = ()
    no_cache: bool = False
    pull: bool = False
    exclude: tuple[str, ...] = ()
    pull_first: bool = False  # compose `image:` is given too: pull it, build when that fails


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
    build: BuildSpec | None = None  # compose `build:`: Berth builds the image when absent
    container_name: str | None = None  # compose `container_name`: one replica, stop-first
    one_per_host: bool = False  # compose `deploy.mode: global`: one replica, not scalable
    # services whose running container this one joins (network_mode service:X) or mounts
    # (volumes_from X), and their revisions (set by the config): replacing X replaces this
    peers: tuple[str, ...] = ()
    peer_revisions: tuple[str, ...] = ()
    platform: str | None = None  # `platform`: os[/arch[/variant]] for pull and create
    pull_policy: str | None = None  # `pull_policy` as written (compose/image_opts.py)
    files: tuple[InjectedFile, ...] = ()  # secrets/configs to write before start
    # swarm backend: `deploy.placement.constraints` as written (compose/swarm_check.py)
    constraints: tuple[str, ...] = ()

    @property
    def fixed_address(self) -> bool:
        """A fixed IPv4, IPv6 or MAC address: one container at a time can hold it, so the
        service is replaced stop-first and runs one replica."""
        return bool(self.create.get("MacAddress")) or any(
            n.ipv4_address or n.ipv6_address for n in self.networks
        )


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
    disabled: Mapping[str, str] = field(default_factory=dict)  # service -> why (profiles)
    # top-level `x-berth.backend`: "local" (Engine API containers) or "swarm" (services);
    # where it is written (None: left out), for the one-backend-per-process check
    backend: str = "local"
    backend_at: Location | None = field(default=None, compare=False)
    # what compose accepts and Berth follows, but the operator should hear of (errors.Problem)
    warnings: tuple[Any, ...] = field(default=(), compare=False)


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
    digest: str | None = None  # pinned by the registry (core/digests.py); also in `image`

    @property
    def key(self) -> str:
        return f"{self.project}/{self.service}"

    @property
    def shown_tag(self) -> str:
        """What history records: the tag, and the digest it was pinned to."""
        return f"{self.tag}@{self.digest}" if self.digest and "@" not in self.tag else self.tag

    @cached_property
    def revision(self) -> str:
        """Computed once per Target (a JSON dump and a SHA-256): the daemon asks for it in
        every pass of every service."""
        return revision_of(self.image, self.spec)


def revision_of(image: str, spec: ServiceSpec) -> str:
    """Hash of the effective container spec: a changed env or limit is a new revision too."""
    doc: dict[str, Any] = {
        "image": image,
        "create": spec.create,
        "networks": [n.revision_key() for n in spec.networks],
    }
    # Added later: hashed only when set, so existing revisions keep their hash.
    if spec.platform:
        doc["platform"] = spec.platform
    if spec.container_name:
        doc["container_name"] = spec.container_name
    if spec.peer_revisions:
        doc["peers"] = list(spec.peer_revisions)
    if spec.files:
        doc["files"] = [
            [f.target, hashlib.sha256(f.content.encode()).hexdigest(), f.uid, f.gid, f.mode]
            for f in spec.files
        ]
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
    digest: str | None = None  # berth.digest: the registry digest it was created from

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
