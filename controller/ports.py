"""Narrow ports between the shell and the world. Adapters implement them; unit tests fake them.

Every port has a contract test against the real thing (tests/integration/test_contract_*.py),
so the fakes in tests/fakes.py cannot drift from reality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from controller.core.model import (
    BuildSpec,
    ContainerState,
    InjectedFile,
    NetworkAttachment,
    NetworkDef,
    ObservedContainer,
    ProbeSpec,
    VolumeDef,
)
from controller.core.notify import Notice
from controller.core.outcome import Outcome as Outcome
from controller.core.plan import ServiceAction

# The ports of a rollout's own work (release tasks, smoke checks, hooks): task_ports.py
from controller.task_ports import HookResult as HookResult
from controller.task_ports import HookRunner as HookRunner
from controller.task_ports import HttpAnswer as HttpAnswer
from controller.task_ports import HttpClient as HttpClient
from controller.task_ports import ReleaseLog
from controller.task_ports import ReleaseRecord as ReleaseRecord


@dataclass(frozen=True)
class ContainerStatus:
    """The part of `docker inspect` the gate needs."""

    id: str
    state: ContainerState
    health: Literal["starting", "healthy", "unhealthy"] | None
    exit_code: int | None
    restart_count: int
    ips: Mapping[str, str]  # network name -> IPv4
    started_at: float | None = None
    error: str = ""


@dataclass(frozen=True)
class PullProgress:
    """How far a pull is: layers done of those seen, and bytes of the layers downloading."""

    layers_done: int
    layers: int
    downloaded: int  # bytes
    total: int  # bytes, of the layers whose size the registry announced so far


class ContainerRuntime(Protocol):
    def list_containers(self, *, project: str | None = None) -> list[ObservedContainer]:
        """All Berth-managed containers (of one project when given), in one list call."""
        ...

    def image_present(self, ref: str) -> bool: ...

    def image_digests(self, ref: str) -> tuple[str, ...] | None:
        """The registry digests (`repository@sha256:...`) of the local image `ref`: empty
        for one built or imported here; None when it is not present."""
        ...

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        """Raises ImagePullError when the image cannot be had (for `platform`, compose's
        os/arch[/variant], when given). `progress` hears how far it got, now and then."""
        ...

    def ensure_network(self, net: NetworkDef, *, project: str) -> None: ...

    def ensure_volume(self, vol: VolumeDef, *, project: str) -> None: ...

    def create(
        self,
        *,
        name: str,
        image: str,
        body: Mapping[str, Any],
        labels: Mapping[str, str],
        networks: Sequence[NetworkAttachment],
        aliases: bool,
        platform: str | None = None,
        constraints: Sequence[str] = (),
    ) -> str:
        """Create (not start) a container; returns its id. Without `aliases` the container
        joins its networks under no service alias (it is not reachable by service name).
        `constraints`: Swarm placement constraints (the swarm backend only; the local
        backend refuses them at load)."""
        ...

    def put_files(self, cid: str, files: Sequence[InjectedFile]) -> None:
        """Write compose secrets/configs that have no host file into a created container,
        before it starts: each at its absolute target with its mode, uid and gid (missing
        parent directories are made root-owned 0755). Content never appears in an error."""
        ...

    def start(self, cid: str) -> None: ...

    def rename(self, cid: str, name: str) -> None:
        """Give a container a new name (compose `container_name`, once the old holder is
        gone). Raises ContainerRuntimeError when another container holds the name."""
        ...

    def stop(self, cid: str, *, timeout: float | None = None) -> None:
        """Stop with the container's own stop signal, then SIGKILL after `timeout` seconds;
        None: after the container's own grace period (its `StopTimeout`, 10 s if unset)."""
        ...

    def remove(self, cid: str) -> None:
        """Force-remove; a container that is already gone is not an error."""
        ...

    def retire(self, cid: str) -> None:
        """A drained container leaves for good: stopped with its own signal and grace period,
        then removed; gone already is done. Returns once the runtime took it over (on one
        host, once it is removed; Swarm stops the task of a removed service gracefully)."""
        ...

    def inspect(self, cid: str) -> ContainerStatus:
        """Raises NotFound when the container is gone."""
        ...

    def add_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        """Make a container reachable under its service aliases (after it passed its gate)."""
        ...

    def drop_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        """Stop a container being resolvable under its service aliases (before retiring)."""
        ...

    def network_members(self, network: str) -> list[str]:
        """Ids of the containers attached to a network (any container, managed or not)."""
        ...

    def logs(self, cid: str, *, tail: int) -> list[str]:
        """The last `tail` lines of a container's stdout and stderr, oldest first, running
        or stopped; bytes that are not UTF-8 are replaced, never raised on. Raises NotFound
        when the container is gone."""
        ...

    def exec(self, cid: str, cmd: Sequence[str]) -> tuple[int, str]:
        """Run a command in a running container; exit code and combined output."""
        ...

    def kill(self, cid: str, signal: str) -> None: ...

    def processes(self, cid: str) -> list[tuple[int, str]]:
        """(pid, command line) of every process in a running container (`docker top`)."""
        ...


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class BuildReport:
    image_id: str
    context_hash: str  # of what was sent: the files (after .dockerignore), Dockerfile, options
    cached: bool  # an image built from the same context hash was tagged instead of a build
    seconds: float


class ImageBuilder(Protocol):
    def build(self, spec: BuildSpec, ref: str, *, on_line: Callable[[str], None]) -> BuildReport:
        """Build `ref` (repository:tag) from `spec`, or tag the image an earlier build made
        from the same context hash. `on_line` gets the build's progress lines. Raises
        ImageBuildError (the log's tail in the message) when the build fails."""
        ...


class RegistryPort(Protocol):
    """A registry's HTTP API, asked directly (adapters/registry.py); errors are BerthErrors
    (RegistryError) whose message says whether it was the credentials, the tag or the
    network."""

    def digest(self, ref: str) -> str:
        """The digest `repository:tag` points at now (an index's, for a multi-arch image)."""
        ...

    def tags(self, repository: str) -> list[str]:
        """Every tag of `repository` (bounded)."""
        ...


class HealthProber(Protocol):
    def probe(self, host: str, spec: ProbeSpec) -> ProbeResult: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds, monotonic enough for deadlines (wall clock for records)."""
        ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class RolloutRecord:
    id: int
    project: str
    service: str
    from_tag: str | None
    to_tag: str
    from_revision: str | None
    to_revision: str
    started_at: float
    finished_at: float | None
    outcome: Outcome
    reason: str
    commit: str | None
    attempts: int = 1  # a failure repeated by retries is one record (StateStore.absorb_retry)
    to_digest: str | None = None  # the registry digest the new revision was pinned to
    # what the rollout's own work did (release tasks, smoke checks, hooks), one per line
    notes: str = ""


@dataclass(frozen=True)
class Quarantine:
    project: str
    service: str
    revision: str
    tag: str
    reason: str
    since: float


@dataclass(frozen=True)
class CanaryRecord:
    """A canary in progress: where it stands, and an operator's command not yet taken."""

    project: str
    service: str
    revision: str
    tag: str
    step: int  # 1-based
    steps: int
    weight: int  # % of requests to the new revision
    paused: bool
    updated_at: float
    command: str | None = None  # promote | abort | pause | resume


class StateStore(ReleaseLog, Protocol):
    def begin_rollout(
        self,
        *,
        project: str,
        service: str,
        from_tag: str | None,
        to_tag: str,
        from_revision: str | None,
        to_revision: str,
        commit: str | None,
        at: float,
        to_digest: str | None = None,
    ) -> int: ...

    def finish_rollout(
        self, rollout_id: int, *, outcome: Outcome, reason: str, at: float, notes: str = ""
    ) -> None: ...

    def note_rollout(self, rollout_id: int, notes: str) -> None:
        """Replace a rollout's notes (its hooks ran after its outcome was recorded)."""
        ...

    def absorb_retry(self, rollout_id: int) -> bool:
        """Fold a failed rollout into the previous record when it repeats that failure."""
        ...

    def history(
        self, project: str | None, service: str, *, limit: int = 50
    ) -> list[RolloutRecord]: ...

    def last(self, project: str, service: str) -> RolloutRecord | None: ...

    def last_good(self, project: str, service: str) -> RolloutRecord | None:
        """The most recent rollout that succeeded (for `berth rollback`)."""
        ...

    def abandon_in_progress(self, project: str, service: str, *, at: float) -> int:
        """Close rollouts a killed controller left `in_progress`; returns how many."""
        ...

    def quarantine(
        self, *, project: str, service: str, revision: str, tag: str, reason: str, at: float
    ) -> None: ...

    def lift_quarantine(self, project: str | None, service: str) -> int:
        """Returns how many revisions were lifted."""
        ...

    def quarantined(self) -> list[Quarantine]: ...

    def canary_progress(self, record: CanaryRecord) -> None:
        """Record where a canary stands (an operator's pending command stays)."""
        ...

    def canary_command(
        self, project: str | None, service: str, command: str
    ) -> CanaryRecord | None:
        """Leave a command for the canary in progress; None when there is none."""
        ...

    def take_canary_command(self, project: str, service: str, revision: str) -> str | None:
        """The pending command for this revision's canary, taken (it is acted on once)."""
        ...

    def canary_end(self, project: str, service: str) -> None: ...

    def canaries(self) -> list[CanaryRecord]: ...


class ProxySwitch(Protocol):
    def cut_over(
        self, action: ServiceAction, new_ids: Sequence[str], old_ids: Sequence[str]
    ) -> None:
        """Route the service's traffic to `new_ids` only; return once old requests drained."""
        ...

    def switch_back(
        self, action: ServiceAction, old_ids: Sequence[str], new_ids: Sequence[str]
    ) -> None:
        """Route traffic back to `old_ids` (bake failed); return once drained from new."""
        ...

    def retire(self, action: ServiceAction, ids: Sequence[str]) -> None:
        """Take `ids` out of the traffic before they are stopped."""
        ...

    def routed(self, action: ServiceAction) -> frozenset[str] | None:
        """12-character ids of the service's containers that receive traffic now, or None
        when no proxy serves the service."""
        ...

    def set_weight(
        self,
        action: ServiceAction,
        new_ids: Sequence[str],
        old_ids: Sequence[str],
        weight: int,
        *,
        sticky: bool = False,
    ) -> None:
        """Canary: `weight` % of the requests to `new_ids`, the rest to `old_ids` (0: the
        new ones out, drained). ProxyError where traffic cannot be split."""
        ...

    def traffic(self, action: ServiceAction) -> Mapping[str, Any] | None:
        """nginx's request counters for the service's upstream (see core/analysis.py), or
        None where none are kept."""
        ...


class MetricsQuery(Protocol):
    def value(self, base_url: str, promql: str) -> float | None:
        """The query's value now (a scalar or the first sample), None when it has none."""
        ...


class NoticeSink(Protocol):
    """Where notifications go (Apprise: controller/adapters/notify_apprise.py)."""

    def send(self, notice: Notice) -> None:
        """Queue for delivery and return at once: a reconcile never waits on a receiver."""
        ...

    def close(self, timeout: float) -> None:
        """Deliver what is queued, for at most `timeout` seconds."""
        ...
