"""What `berth status` and the daemon's `/status` show: per service, desired vs running,
what serves and what is up to date, the last outcome, and where nginx routes."""

from __future__ import annotations

from typing import Any

from controller.core.config import Config
from controller.core.model import Observed, Target
from controller.ports import CanaryRecord, ContainerRuntime, StateStore
from controller.shell.rollout.digests import DigestResolver, pin_targets
from controller.shell.rollout.reconcile import observe
from controller.shell.rollout.upstream_file import read_upstreams


def _ready(t: Target, observed: Observed) -> tuple[int, int, list[str]]:
    """(ready containers of the desired revision, ready containers of any revision, tags
    that run): a rolled-back service still serves on its old revision, and says so."""
    cs = observed.of_service(t.project, t.service)
    running_tags = sorted({c.tag for c in cs if c.running})
    up_to_date = sum(1 for c in cs if c.revision == t.revision and c.ready)
    serving = sum(1 for c in cs if c.ready)
    return up_to_date, serving, running_tags


def _routes(cfg: Config) -> dict[str, list[str]]:
    """upstream name -> container names it routes to, read back from each upstream file."""
    out: dict[str, list[str]] = {}
    for stack in cfg.stacks.values():
        if stack.proxy is not None:
            for name, backends in read_upstreams(stack.proxy.upstreams_file).items():
                out[f"{stack.project}/{name}"] = [b.container_name for b in backends]
    return out


def _canary(c: CanaryRecord | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "tag": c.tag,
        "step": c.step,
        "steps": c.steps,
        "weight": c.weight,
        "stable_weight": 100 - c.weight,
        "paused": c.paused,
    }


def status_rows(
    runtime: ContainerRuntime,
    store: StateStore,
    cfg: Config,
    resolver: DigestResolver | None = None,
) -> list[dict[str, Any]]:
    """The rows of `berth status` and the daemon's /status (one definition for both)."""
    observed = observe(runtime, store)
    routes = _routes(cfg)
    canaries = {(c.project, c.service): c for c in store.canaries()}
    rows: list[dict[str, Any]] = []
    pinning = pin_targets(cfg.targets, observed, resolver)
    for t in pinning.targets:
        note = pinning.notes.get(t.key)
        up = t.spec.berth.upstream
        ready, serving, running = _ready(t, observed)
        last = store.last(t.project, t.service)
        quarantined = observed.is_quarantined(t.key, t.revision)
        rows.append(
            {
                "project": t.project,
                "service": t.service,
                "desired_tag": t.tag,
                "digest": t.digest,
                "digest_drift": note.drift if note else None,
                "running_tags": running,
                "ready": ready,
                "serving": serving,
                "desired_replicas": t.replicas,
                "quarantined": quarantined,
                "last_outcome": last.outcome if last else None,
                "last_reason": last.reason if last else None,
                "upstream": up.name if up else None,
                "routes": routes.get(f"{t.project}/{up.name}", []) if up else None,
                "canary": _canary(canaries.get((t.project, t.service))),
                "release": _release(store, t),
                "last_notes": last.notes.split("\n") if last and last.notes else [],
            }
        )
    return rows


def _release(store: StateStore, t: Target) -> list[dict[str, Any]]:
    """The desired revision's release tasks as the store has them (None: not run yet)."""
    out = []
    for task in t.spec.berth.release:
        rec = store.release_task(t.project, t.service, t.revision, task.name)
        took = rec.finished_at - rec.started_at if rec and rec.finished_at else None
        out.append(
            {
                "name": task.name,
                "state": rec.state if rec else None,
                "exit_code": rec.exit_code if rec else None,
                "seconds": round(took, 3) if took is not None else None,
                "reason": rec.reason if rec else "",
            }
        )
    return out
