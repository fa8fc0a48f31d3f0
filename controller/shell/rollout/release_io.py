"""Release tasks (x-berth.release): one-off containers of the new revision, run in order
before any of its containers starts, each once per revision.

Exactly once, also across a controller killed mid-task: the store records the attempt
before the container exists and the container's id once it does; the container's name is
fixed by revision and task. A controller that finds an attempt `running` adopts its
container (starts it if it never started, waits for it if it runs, reads its exit code if
it ended) and never creates a second one. Only a recorded container that has vanished is
an unknown outcome: the rollout fails (quarantine) rather than run a migration twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from controller.core import rollout as r
from controller.core.model import (
    LABEL_ONEOFF,
    LABEL_PROJECT,
    LABEL_SERVICE,
    ContainerState,
    NetworkAttachment,
)
from controller.core.plan import ServiceAction
from controller.core.task_options import ReleaseTask
from controller.errors import ContainerRuntimeError, NotFound, printable
from controller.ports import ContainerStatus
from controller.shell.rollout.naming import compose_labels
from controller.shell.rollout.peers import resolve_peers
from controller.shell.rollout.results import Event, Ports

LABEL_RELEASE = "berth.release"  # {revision}/{task}: never berth.managed (not a replica)
POLL = 0.25  # seconds between looks at a running task
TAIL = 20  # lines of a failed task's log in the reason and the history
_ENDED = (ContainerState.EXITED, ContainerState.DEAD)

Emit = Callable[[Event], None]


def release_name(project: str, service: str, revision: str, task: str) -> str:
    return f"{project}-{service}-release-{revision[:8]}-{task}"


def run_release(
    p: Ports, a: ServiceAction, tasks: tuple[ReleaseTask, ...], emit: Emit
) -> r.Event | None:
    """Each task in order; the first that fails ends the rollout (ReleaseFailed)."""
    for task in tasks:
        why = _Task(p, a, task, emit).run()
        if why is not None:
            return r.ReleaseFailed(why)
    return None


class _Task:
    def __init__(self, p: Ports, a: ServiceAction, task: ReleaseTask, emit: Emit) -> None:
        assert a.target is not None
        self.p, self.a, self.task, self._emit_fn = p, a, task, emit
        self.t = a.target
        self.key = (a.project, a.service, self.t.revision, task.name)
        self.name = release_name(a.project, a.service, self.t.revision, task.name)

    def run(self) -> str | None:
        """None when the task succeeded (now or before); else why it failed."""
        store, t0 = self.p.store, self.p.clock.now()
        rec = store.release_task(*self.key)
        if rec is not None and rec.state == "succeeded":
            self._emit("release-skipped", f"{self.task.name}: ran for this revision already")
            return None
        status: ContainerStatus | None = None
        if rec is None or rec.state == "running":
            # a controller stopped while it ran (or before it recorded it): adopt its
            # container, whatever state it is in; never a second one
            status = self._find(rec.container if rec and rec.container else self.name)
            if status is None and rec is not None and rec.container:
                why = (
                    f"{self.task.name}: its container {self.name} vanished while it ran; "
                    "its outcome is unknown, so it is not run again (check, then `berth retry`)"
                )
                return self._end("failed", None, why, "", t0)
            started_at = rec.started_at if rec is not None else self.p.clock.now()
            if rec is None:
                store.release_begin(*self.key, tag=self.t.tag, at=started_at)
            if status is not None:
                self._emit("release", f"{self.task.name}: found from an earlier run, adopted")
                store.release_container(*self.key, status.id)
        else:  # failed before, and the operator asked again (`berth retry`)
            self._clear_earlier()
            started_at = self.p.clock.now()
            store.release_begin(*self.key, tag=self.t.tag, at=started_at)
        try:
            if status is None:
                status = self._create()
            if status.state is ContainerState.CREATED:
                self._emit("release", f"{self.task.name}: running {_shown(self.task.command)}")
                self.p.runtime.start(status.id)
        except ContainerRuntimeError as exc:  # it could not run: the revision's fault
            return self._end("failed", None, f"{self.task.name}: {exc}", "", t0)
        # Docker failing while the task runs (an engine restart) is not the task's outcome:
        # the error ends this rollout, the record stays `running`, the next one adopts it.
        return self._wait(status.id, started_at + self.task.timeout, t0)

    def _find(self, ref: str) -> ContainerStatus | None:
        try:
            return self.p.runtime.inspect(ref)
        except NotFound:
            return None

    def _clear_earlier(self) -> None:
        """A failed earlier attempt's container (kept for `docker logs`) makes way."""
        old = self._find(self.name)
        if old is not None:
            self.p.runtime.remove(old.id)

    def _create(self) -> ContainerStatus:
        t, rt = self.t, self.p.runtime
        cid = rt.create(
            name=self.name,
            image=t.image,
            body=release_body(resolve_peers(rt, t.project, t.spec.create), self.task.command),
            labels=self._labels(),
            networks=release_networks(t.spec.networks),
            aliases=False,
            platform=t.spec.platform,
        )
        self.p.store.release_container(*self.key, cid)
        if t.spec.files:
            rt.put_files(cid, t.spec.files)
        return rt.inspect(cid)

    def _labels(self) -> dict[str, str]:
        return {
            **compose_labels(self.t),
            LABEL_PROJECT: self.a.project,
            LABEL_SERVICE: self.a.service,
            LABEL_ONEOFF: "True",  # what `docker compose run` marks its containers with
            LABEL_RELEASE: f"{self.t.revision}/{self.task.name}",
            "berth.tag": self.t.tag,
        }

    def _wait(self, cid: str, deadline: float, t0: float) -> str | None:
        rt, clock = self.p.runtime, self.p.clock
        while True:
            try:
                st = rt.inspect(cid)
            except NotFound:
                why = f"{self.task.name}: its container was removed while it ran (outcome unknown)"
                return self._end("failed", None, why, "", t0)
            if st.state in _ENDED:
                return self._ended(cid, st.exit_code, t0)
            if clock.now() >= deadline:
                with contextlib.suppress(NotFound):
                    rt.stop(cid, timeout=10.0)
                why = f"{self.task.name}: timed out after {self.task.timeout:g}s"
                return self._end("failed", None, why, self._tail(cid), t0)
            clock.sleep(min(POLL, max(0.0, deadline - clock.now())))

    def _ended(self, cid: str, code: int | None, t0: float) -> str | None:
        if code == 0:
            self._end("succeeded", 0, "", "", t0)
            with contextlib.suppress(NotFound):
                self.p.runtime.remove(cid)  # `docker compose run --rm`
            return None
        tail = self._tail(cid)
        last = tail.strip().splitlines()[-1:] or [""]
        why = f"{self.task.name}: exited with code {code}" + (f": {last[0]}" if last[0] else "")
        return self._end("failed", code, why, tail, t0)  # kept, stopped, for `docker logs`

    def _tail(self, cid: str) -> str:
        """Evidence only: logs that cannot be read (gone, or refused by a socket proxy)
        leave the reason without them, never change the outcome."""
        try:
            return printable_lines(self.p.runtime.logs(cid, tail=TAIL))
        except ContainerRuntimeError:
            return ""

    def _end(self, state: str, code: int | None, why: str, tail: str, t0: float) -> str | None:
        seconds = self.p.clock.now() - t0
        self.p.store.release_end(
            *self.key,
            state="succeeded" if state == "succeeded" else "failed",
            exit_code=code,
            reason=why,
            log_tail=tail,
            at=self.p.clock.now(),
        )
        if state == "succeeded":
            self._emit("release-succeeded", f"{self.task.name}: done", seconds)
            return None
        reason = why + (f"\n{tail}" if tail else "")
        self._emit("release-failed", why, seconds)
        return reason

    def _emit(self, phase: str, message: str, seconds: float | None = None) -> None:
        self._emit_fn(
            Event(
                self.a.project,
                self.a.service,
                phase,
                message,
                self.p.clock.now(),
                task_seconds=seconds,
                task=self.task.name,
            )
        )


def release_body(create: Mapping[str, Any], command: tuple[str, ...]) -> dict[str, Any]:
    """The service's container body as a one-off (`docker compose run SERVICE COMMAND`):
    its image, env, mounts and networks, the task's command, no restart policy (a failed
    migration must not loop), no published ports, no healthcheck."""
    body = dict(create)
    body["Cmd"] = list(command)
    body["Healthcheck"] = {"Test": ["NONE"]}
    host = dict(body.get("HostConfig") or {})
    host["RestartPolicy"] = {"Name": "no"}
    host.pop("PortBindings", None)
    host["PublishAllPorts"] = False
    host["AutoRemove"] = False  # Berth reads the exit code, then removes it
    body["HostConfig"] = host
    body.pop("ExposedPorts", None)
    body.pop("MacAddress", None)  # held by the running replica (a fixed-address service)
    return body


def release_networks(nets: tuple[NetworkAttachment, ...]) -> tuple[NetworkAttachment, ...]:
    """The service's networks without its fixed addresses: a one-off runs next to the
    replica that holds them (a stop-first service with ipv4_address), as `compose run`
    does it takes an address of the pool."""
    return tuple(dataclasses.replace(n, ipv4_address=None, ipv6_address=None) for n in nets)


def printable_lines(lines: list[str]) -> str:
    return "\n".join(printable(line)[:500] for line in lines)


def _shown(command: tuple[str, ...]) -> str:
    text = " ".join(command)
    return printable(text if len(text) <= 120 else text[:117] + "...")
