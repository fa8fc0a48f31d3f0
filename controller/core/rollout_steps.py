"""What the rollout machine asks for (`Step`) and what performing it reports (`Event`).

Kept apart from the machine itself (`controller.core.rollout`), which decides; these are
the vocabulary it shares with the executor, which acts.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.outcome import Outcome
from controller.core.task_options import ReleaseTask, SmokeCheck

# ---- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pull:
    image: str


@dataclass(frozen=True)
class Build:
    """Build the image on the host from the service's compose `build:` section."""

    image: str


@dataclass(frozen=True)
class RunRelease:
    """Run the revision's release tasks in order, each once per revision: one found done is
    skipped, one found running (a controller killed while it ran) is waited for."""

    tasks: tuple[ReleaseTask, ...]


@dataclass(frozen=True)
class Smoke:
    """Send the smoke checks to each of the new containers directly; `phase` is "before"
    (no traffic yet) or "bake" (after the cut-over)."""

    ids: tuple[str, ...]
    checks: tuple[SmokeCheck, ...]
    phase: str


@dataclass(frozen=True)
class StopOld:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class RemoveNew:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Create:
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class Start:
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Observe:
    wait: float
    probe: bool  # run the HTTP probe on the new containers in the next observation


@dataclass(frozen=True)
class Publish:
    """The gate passed: make the new containers resolvable under their service aliases.
    Docker can only add aliases by reconnecting the endpoint, which makes the container
    unreachable for a moment, so the gate runs again before any traffic moves."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class CutOver:
    """Give the new containers their service aliases and switch the proxy to them."""

    new_ids: tuple[str, ...]
    old_ids: tuple[str, ...]


@dataclass(frozen=True)
class SetWeight:
    """Canary: give the new containers `weight` % of the requests, the old ones the rest
    (0 takes the new ones out of the traffic again, and drains them)."""

    new_ids: tuple[str, ...]
    old_ids: tuple[str, ...]
    weight: int
    sticky: bool = False


@dataclass(frozen=True)
class SwitchBack:
    """Bake failed: point the proxy back at the old containers, which are still running."""

    old_ids: tuple[str, ...]
    new_ids: tuple[str, ...]


@dataclass(frozen=True)
class Retire:
    """Take containers out of the proxy, stop them gracefully, remove them."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Abort:
    remove: tuple[str, ...]
    keep: str | None  # newest failed container, stopped and kept for `docker logs`
    restore: tuple[str, ...]  # stop-first: old containers to start again
    quarantine: bool
    reason: str


@dataclass(frozen=True)
class Finish:
    outcome: Outcome  # succeeded | rolled_back | failed | superseded
    reason: str


Step = (
    Pull
    | Build
    | RunRelease
    | Smoke
    | StopOld
    | RemoveNew
    | Create
    | Start
    | Observe
    | Publish
    | CutOver
    | SetWeight
    | SwitchBack
    | Retire
    | Abort
    | Finish
)


# ---- events: what performing a step reported ---------------------------------------------


@dataclass(frozen=True)
class PullFailed:
    """The pull failed: nothing was touched, the rollout fails (a registry problem, retried
    by the caller's backoff, not quarantined)."""

    reason: str


@dataclass(frozen=True)
class BuildFailed:
    """The build failed (the reason ends with the build log's tail): nothing was touched;
    the revision cannot be built, so its tag is quarantined like a failed gate."""

    reason: str


@dataclass(frozen=True)
class ReleaseFailed:
    """A release task failed, timed out, or cannot be known to have run once: no new
    container was started and the old ones never stopped; the revision is quarantined."""

    reason: str


@dataclass(frozen=True)
class SmokeFailed:
    """A smoke check failed on a new container: before the cut-over a normal rollback; in
    the bake a switch back to the old containers."""

    reason: str


@dataclass(frozen=True)
class StartFailed:
    """Docker refused to create or start a new container (bad mount, port in use...): the
    revision cannot run, so it is rolled back and quarantined like a failed gate."""

    reason: str


@dataclass(frozen=True)
class Created:
    """New containers exist, with their service aliases (`resolvable`: no client shares
    their networks, so none can reach them early) or without; only the latter need the
    Publish step after the gate."""

    resolvable: bool


@dataclass(frozen=True)
class CutoverFailed:
    """The proxy could not be switched (nginx down, `nginx -t` failed): traffic never moved,
    so roll back; the revision is not to blame and is not quarantined."""

    reason: str


@dataclass(frozen=True)
class SwitchBackFailed:
    """nginx could not be pointed back at the old containers: the new ones keep serving
    (removing them would leave nginx without a backend); the revision is quarantined."""

    reason: str


@dataclass(frozen=True)
class WeightFailed:
    """nginx did not take a canary's weights (no dynamic switch, nginx down): the release
    is withdrawn, not blamed (no quarantine)."""

    reason: str


@dataclass(frozen=True)
class Cancelled:
    """A newer desired revision arrived while this rollout runs."""


Event = (
    PullFailed
    | BuildFailed
    | ReleaseFailed
    | SmokeFailed
    | StartFailed
    | Created
    | CutoverFailed
    | SwitchBackFailed
    | WeightFailed
    | Cancelled
)
