"""In-memory fakes of the ports, for unit tests of the core, executor and reconciler.

FakeRuntime follows DockerRuntime's observable semantics (names, labels, states, health only
with a healthcheck, exit codes only once exited, IPs only while running, NotFound/conflict
errors); tests/integration/test_contract_runtime.py runs the same suite against both, so a
drift shows up as a failing contract test rather than as a passing unit test that lies.

Behaviour is scripted per image reference, because in the real world the image decides
whether a container becomes healthy, crashes or cannot be pulled.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from controller.core.model import (
    LABEL_MANAGED,
    LABEL_NUMBER,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_TAG,
    BuildSpec,
    ContainerState,
    InjectedFile,
    NetworkAttachment,
    NetworkDef,
    ObservedContainer,
    ProbeSpec,
    VolumeDef,
)
from controller.errors import ContainerRuntimeError, ImageBuildError, ImagePullError, NotFound
from controller.ports import BuildReport, ContainerStatus, ProbeResult, PullProgress

Health = Literal["starting", "healthy", "unhealthy"]
_SIGNALS = {
    "SIGHUP": 1,
    "SIGINT": 2,
    "SIGQUIT": 3,
    "SIGKILL": 9,
    "SIGUSR1": 10,
    "SIGUSR2": 12,
    "SIGTERM": 15,
}
_FATAL = {2, 3, 9, 15}


@dataclass(frozen=True)
class Behaviour:
    """What containers of one image do. Inspect calls are the fake's unit of time: a test
    drives a container through its life by inspecting it, as the gate does.

    health / health_after: with a healthcheck (in the create body), health is "starting"
      for the first `health_after` inspects after start, then `health` ("healthy", or
      "unhealthy" for an image that never becomes healthy).
    exit_after / exit_code: the process exits by itself after that many inspects.
    stop_exit_code: exit code when stopped with its stop signal (0 for an image that traps
      SIGTERM, 143 for one that dies of it); `ignores_stop` makes stop end in SIGKILL (137).
    present / pullable / pull_error: image absent locally; pull then succeeds or fails.
    log: lines the process writes when it starts (what `logs` reads back).
    """

    health: Health = "healthy"
    health_after: int = 1
    exit_after: int | None = None
    exit_code: int = 1
    stop_exit_code: int = 0
    ignores_stop: bool = False
    present: bool = True
    pullable: bool = True
    pull_error: str = "manifest unknown"
    log: tuple[str, ...] = ()


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    labels: dict[str, str]
    body: dict[str, Any]
    created: float
    endpoints: dict[str, dict[str, Any]]  # network -> {"aliases": tuple, "ip": str | None}
    state: ContainerState = ContainerState.CREATED
    exit_code: int | None = None
    started_at: float | None = None
    restart_count: int = 0
    ticks: int = 0  # inspects since start
    files: dict[str, InjectedFile] = field(default_factory=dict)  # put_files: target -> file
    log: list[str] = field(default_factory=list)  # what `logs` reads back

    @property
    def has_healthcheck(self) -> bool:
        test = (self.body.get("Healthcheck") or {}).get("Test") or []
        return bool(test) and test[0] != "NONE"


@dataclass
class FakeRuntime:
    """In-memory ContainerRuntime. `calls` records (method, args...) for assertions."""

    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    networks: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)
    images: set[str] = field(default_factory=set)
    repo_digests: dict[str, tuple[str, ...]] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    exec_handler: Callable[[str, Sequence[str]], tuple[int, str]] | None = None
    process_table: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _ips: itertools.count[int] = field(default_factory=lambda: itertools.count(2))

    def behaviour(self, image: str) -> Behaviour:
        return self.behaviours.get(image, Behaviour())

    def _of(self, c: FakeContainer) -> Behaviour:
        """A container's behaviour: its image's, or that of `"{image} {command}"` when the
        test gave one (a one-off container of the image, like a release task)."""
        cmd = " ".join(c.body.get("Cmd") or ())
        return self.behaviours.get(f"{c.image} {cmd}") or self.behaviour(c.image)

    def _find(self, ref: str) -> FakeContainer:
        """Docker resolves full id, name, or a unique id prefix; so does the fake."""
        if ref in self.containers:
            return self.containers[ref]
        by_name = [c for c in self.containers.values() if c.name == ref.lstrip("/")]
        hits = by_name or [c for c in self.containers.values() if c.id.startswith(ref)]
        if len(hits) != 1:
            raise NotFound(f"No such container: {ref}")
        return hits[0]

    # -- observation ------------------------------------------------------------------

    def list_containers(self, *, project: str | None = None) -> list[ObservedContainer]:
        self.calls.append(("list_containers", project))
        out = []
        for c in sorted(self.containers.values(), key=lambda c: -c.created):
            if c.labels.get(LABEL_MANAGED) != "true":
                continue
            if project is not None and c.labels.get(LABEL_PROJECT) != project:
                continue
            out.append(self._observed(c))
        return out

    def _observed(self, c: FakeContainer) -> ObservedContainer:
        try:
            number = int(c.labels.get(LABEL_NUMBER, "0"))
        except ValueError:
            number = 0
        return ObservedContainer(
            id=c.id,
            name=c.name,
            project=c.labels.get(LABEL_PROJECT, ""),
            service=c.labels.get(LABEL_SERVICE, ""),
            number=number,
            revision=c.labels.get(LABEL_REVISION, ""),
            tag=c.labels.get(LABEL_TAG, ""),
            image=c.image,
            state=c.state,
            health=self._health(c),
            created=float(int(c.created)),
            managed=True,
            exit_code=c.exit_code,
            ips=self._ips_of(c),
        )

    def _health(self, c: FakeContainer) -> Health | None:
        if not c.has_healthcheck or c.state is not ContainerState.RUNNING:
            return None
        b = self._of(c)
        return "starting" if c.ticks < b.health_after else b.health

    def _ips_of(self, c: FakeContainer) -> dict[str, str]:
        if c.state is not ContainerState.RUNNING:
            return {}
        return {n: str(ep["ip"]) for n, ep in c.endpoints.items() if ep.get("ip")}

    def inspect(self, cid: str) -> ContainerStatus:
        self.calls.append(("inspect", cid))
        c = self._find(cid)
        if c.state is ContainerState.RUNNING:
            c.ticks += 1
            b = self._of(c)
            if b.exit_after is not None and c.ticks > b.exit_after:
                self._exit(c, b.exit_code)
        return ContainerStatus(
            id=c.id,
            state=c.state,
            health=self._health(c),
            exit_code=c.exit_code,
            restart_count=c.restart_count,
            ips=self._ips_of(c),
            started_at=c.started_at,
        )

    def aliases_of(self, cid: str) -> dict[str, tuple[str, ...]]:
        c = self._find(cid)
        return {n: tuple(ep["aliases"]) for n, ep in c.endpoints.items()}

    def image_present(self, ref: str) -> bool:
        self.calls.append(("image_present", ref))
        return ref in self.images or (ref in self.behaviours and self.behaviour(ref).present)

    # -- images, networks, volumes --------------------------------------------------------

    def image_digests(self, ref: str) -> tuple[str, ...] | None:
        """Pulled images carry the digest the fake registry gave them; others none."""
        if not self.image_present(ref):
            return None
        return tuple(d for d in self.repo_digests.get(ref, ()))

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> None:
        self.calls.append(("pull", ref) if platform is None else ("pull", ref, platform))
        b = self.behaviours.get(ref)
        if b is None or not b.pullable:
            reason = b.pull_error if b else "repository does not exist"
            raise ImagePullError(f"pull {ref}: {reason}")
        if progress is not None:
            progress(PullProgress(layers_done=1, layers=1, downloaded=100, total=100))
        self.images.add(ref)

    def ensure_network(self, net: NetworkDef, *, project: str) -> None:
        self.calls.append(("ensure_network", net.name, project))
        if net.name in self.networks:
            return
        if net.external:
            raise ContainerRuntimeError(f"external network {net.name!r} does not exist")
        self.networks[net.name] = {
            **dict(net.labels),
            "com.docker.compose.project": project,
            "com.docker.compose.network": net.key,
            LABEL_MANAGED: "true",
        }

    def ensure_volume(self, vol: VolumeDef, *, project: str) -> None:
        self.calls.append(("ensure_volume", vol.name, project))
        if vol.name in self.volumes:
            return
        if vol.external:
            raise ContainerRuntimeError(f"external volume {vol.name!r} does not exist")
        self.volumes[vol.name] = {
            **dict(vol.labels),
            "com.docker.compose.project": project,
            "com.docker.compose.volume": vol.key,
            LABEL_MANAGED: "true",
        }

    # -- lifecycle ----------------------------------------------------------------------------

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
        self.calls.append(("create", name, image, aliases))
        if any(c.name == name for c in self.containers.values()):
            raise ContainerRuntimeError(f"create {name}: Conflict. The name is already in use")
        if not self.image_present(image):
            raise NotFound(f"create {name}: No such image: {image}")
        cid = secrets.token_hex(32)
        self.containers[cid] = FakeContainer(
            id=cid,
            name=name,
            image=image,
            labels={**dict(body.get("Labels") or {}), **dict(labels)},
            body=dict(body),
            created=time.time(),
            endpoints={
                a.network: {"aliases": a.aliases if aliases else (), "ip": a.ipv4_address}
                for a in networks
            },
        )
        return cid

    def put_files(self, cid: str, files: Sequence[InjectedFile]) -> None:
        """Recorded on the container (read back with `file_of`); `calls` gets the targets
        only, as the real adapter's messages do: content is a secret."""
        self.calls.append(("put_files", cid, tuple(f.target for f in files)))
        c = self._find(cid)
        if (c.body.get("HostConfig") or {}).get("ReadonlyRootfs"):
            targets = ", ".join(f.target for f in files)
            raise ContainerRuntimeError(
                f"write {targets} into {cid[:12]}: container rootfs is marked read-only"
            )
        for f in files:
            if not f.target.startswith("/"):
                raise ContainerRuntimeError(f"injected file target {f.target!r} is not absolute")
        c.files.update({f.target: f for f in files})

    def file_of(self, cid: str, target: str) -> InjectedFile:
        """What put_files wrote at `target` (NotFound when nothing was)."""
        c = self._find(cid)
        if target not in c.files:
            raise NotFound(f"Could not find the file {target} in container {cid}")
        return c.files[target]

    def rename(self, cid: str, name: str) -> None:
        self.calls.append(("rename", cid, name))
        c = self._find(cid)
        if any(o.name == name and o is not c for o in self.containers.values()):
            raise ContainerRuntimeError(f'Conflict. The container name "/{name}" is in use')
        c.name = name

    def start(self, cid: str) -> None:
        self.calls.append(("start", cid))
        c = self._find(cid)
        if c.state is ContainerState.RUNNING:
            return
        for net in c.endpoints:  # Docker 20.10 checks networks at start, not at create
            if net not in self.networks and net not in ("bridge", "host", "none"):
                raise NotFound(f"start {cid[:12]}: network {net} not found")
        for ep in c.endpoints.values():
            if not ep["ip"]:
                n = next(self._ips)
                ep["ip"] = f"172.30.{n // 250}.{n % 250 + 2}"
        c.state, c.exit_code, c.ticks, c.started_at = ContainerState.RUNNING, None, 0, time.time()
        c.log.extend(self._of(c).log)

    def _exit(self, c: FakeContainer, code: int) -> None:
        c.state, c.exit_code = ContainerState.EXITED, code

    def stop(self, cid: str, *, timeout: float | None = None) -> None:
        c = self._find(cid)
        if timeout is None:
            timeout = float(c.body.get("StopTimeout", 10))
        self.calls.append(("stop", cid, timeout))
        if c.state is ContainerState.RUNNING:
            b = self._of(c)
            self._exit(c, 137 if b.ignores_stop else b.stop_exit_code)

    def remove(self, cid: str) -> None:
        self.calls.append(("remove", cid))
        try:
            c = self._find(cid)
        except NotFound:
            return
        del self.containers[c.id]

    def retire(self, cid: str) -> None:
        try:
            self.stop(cid)
        except NotFound:
            return
        self.remove(cid)

    def kill(self, cid: str, signal: str) -> None:
        self.calls.append(("kill", cid, signal))
        c = self._find(cid)
        if c.state is not ContainerState.RUNNING:
            raise ContainerRuntimeError(f"kill {cid[:12]}: Container {cid} is not running")
        sig = signal.upper()
        num = (
            int(sig)
            if sig.isdigit()
            else _SIGNALS.get(sig if sig.startswith("SIG") else "SIG" + sig, 0)
        )
        if num in _FATAL:
            self._exit(c, 128 + num)

    def processes(self, cid: str) -> list[tuple[int, str]]:
        """`process_table[cid]` when a test scripted it, else one process: the command."""
        self.calls.append(("processes", cid))
        c = self._find(cid)
        if c.state is not ContainerState.RUNNING:
            raise ContainerRuntimeError(f"top {cid[:12]}: container is not running")
        if c.id in self.process_table:
            return list(self.process_table[c.id])
        return [(4242, " ".join(c.body.get("Cmd") or [c.image]))]

    def logs(self, cid: str, *, tail: int) -> list[str]:
        self.calls.append(("logs", cid, tail))
        c = self._find(cid)
        return list(c.log[-tail:]) if tail > 0 else []

    def exec(self, cid: str, cmd: Sequence[str]) -> tuple[int, str]:
        self.calls.append(("exec", cid, tuple(cmd)))
        c = self._find(cid)
        if c.state is not ContainerState.RUNNING:
            raise ContainerRuntimeError(f"exec in {cid[:12]}: container is not running")
        return self.exec_handler(cid, cmd) if self.exec_handler else (0, "")

    def add_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        self.calls.append(("add_aliases", cid, tuple(n.network for n in networks)))
        c = self._find(cid)
        for att in networks:
            if att.aliases and att.network in c.endpoints:
                c.endpoints[att.network]["aliases"] = att.aliases

    def network_members(self, network: str) -> list[str]:
        self.calls.append(("network_members", network))
        return sorted(
            c.id
            for c in self.containers.values()
            if network in c.endpoints and c.state is ContainerState.RUNNING
        )

    def drop_aliases(self, cid: str, networks: Sequence[NetworkAttachment]) -> None:
        self.calls.append(("drop_aliases", cid, tuple(n.network for n in networks)))
        c = self._find(cid)
        for att in networks:
            if att.network in c.endpoints:
                c.endpoints[att.network]["aliases"] = ()

    # -- test controls (the outside world acting on containers) -------------------------

    def write_log(self, cid: str, *lines: str) -> None:
        """The process wrote these lines (stdout or stderr, as `logs` interleaves them)."""
        self._find(cid).log.extend(lines)

    def crash(self, cid: str, exit_code: int = 1) -> None:
        self._exit(self._find(cid), exit_code)

    def restart(self, cid: str) -> None:
        """Docker's restart policy brought it back: counted, as the gate must notice."""
        c = self._find(cid)
        c.restart_count += 1
        c.state, c.exit_code, c.ticks = ContainerState.RUNNING, None, 0

    def close(self) -> None:
        self.calls.append(("close",))


@dataclass
class FakeBuilder:
    """In-memory ImageBuilder over a FakeRuntime's image set. A context listed in `failing`
    fails with that log line; the same spec built twice is tagged, not built (the real
    builder hashes the files; the fake's "hash" is the spec itself)."""

    runtime: FakeRuntime
    failing: dict[str, str] = field(default_factory=dict)  # context -> last log line
    built: list[str] = field(default_factory=list)
    _hashes: dict[str, str] = field(default_factory=dict)  # spec hash -> image id

    def build(self, spec: BuildSpec, ref: str, *, on_line: Callable[[str], None]) -> BuildReport:
        digest = f"{abs(hash(spec)):016x}"
        if spec.context in self.failing:
            line = self.failing[spec.context]
            on_line(line)
            raise ImageBuildError(f"The command returned a non-zero code: 1\n{line}")
        on_line(f"Step 1/1 : FROM scratch ({ref})")
        cached = digest in self._hashes and not spec.no_cache
        if not cached:
            self.built.append(ref)
            self._hashes[digest] = f"sha256:{secrets.token_hex(32)}"
        self.runtime.images.add(ref)
        return BuildReport(self._hashes[digest], digest, cached, 0.0)


@dataclass
class FakeClock:
    """now() is whatever the test says; sleep() advances it instantly and is recorded."""

    t: float = 1_700_000_000.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeProber:
    """Scripted per host: a fixed ProbeResult/bool, or a sequence consumed one per probe
    (its last element repeats). Unknown hosts get `default`."""

    script: dict[str, Any] = field(default_factory=dict)
    default: ProbeResult = field(default_factory=lambda: ProbeResult(ok=True, detail="HTTP 200"))
    calls: list[tuple[str, ProbeSpec]] = field(default_factory=list)

    def set(self, host: str, *results: bool | ProbeResult) -> None:
        self.script[host] = list(results)

    def probe(self, host: str, spec: ProbeSpec) -> ProbeResult:
        self.calls.append((host, spec))
        entry = self.script.get(host, self.default)
        if isinstance(entry, list):
            entry = entry.pop(0) if len(entry) > 1 else (entry[0] if entry else self.default)
        if isinstance(entry, bool):
            return ProbeResult(ok=entry, detail="HTTP 200" if entry else "HTTP 503")
        assert isinstance(entry, ProbeResult)
        return entry


@dataclass
class FakeRegistry:
    """RegistryPort in memory: `digests` maps `repository:tag` to a digest, `down` makes
    every call fail as an unreachable registry would. Pinned against the real registry by
    tests/integration/test_registry.py::test_registry_port_contract."""

    digests: dict[str, str] = field(default_factory=dict)
    down: bool = False
    denied: bool = False
    calls: list[str] = field(default_factory=list)

    def digest(self, ref: str) -> str:
        from controller.adapters.registry import RegistryError, split_reference

        self.calls.append(ref)
        name, _, _ = split_reference(ref)
        if self.down:
            raise RegistryError(f"registry {name.registry} unreachable", kind="unreachable")
        if self.denied:
            raise RegistryError(f"{ref}: registry refused the credentials", kind="unauthorized")
        found = self.digests.get(ref)
        if found is None:
            raise RegistryError(f"{ref}: not found in registry {name.registry}", kind="not_found")
        return found

    def tags(self, repository: str) -> list[str]:
        from controller.adapters.registry import RegistryError

        self.calls.append(f"tags {repository}")
        if self.down:
            raise RegistryError("registry unreachable", kind="unreachable")
        prefix = f"{repository}:"
        return sorted(r[len(prefix) :] for r in self.digests if r.startswith(prefix))
