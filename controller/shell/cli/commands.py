"""The command implementations behind `berth ...`; each returns the process exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from controller.core.config import Config
from controller.core.digests import Pinned
from controller.core.model import Observed
from controller.core.outcome import Outcome
from controller.core.plan import STEADY_KINDS, ActionKind, Plan, plan
from controller.errors import printable
from controller.ports import RolloutRecord
from controller.shell.cli.progress import progress_for
from controller.shell.rollout.digests import Pinning, pin_targets
from controller.shell.rollout.executor import RolloutResult
from controller.shell.rollout.reconcile import observe, run_plan
from controller.shell.rollout.status import status_rows
from controller.shell.wiring import Context

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_FAILED = 0, 1, 2, 3
NOTIFY_FLUSH = 30.0  # seconds `berth apply` waits for its notices to be delivered


def out_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def cmd_validate(ctx: Context, *, as_json: bool) -> int:
    cfg = ctx.config()
    n = sum(len(s.services) for s in cfg.stacks.values())
    if as_json:
        warnings = [str(w) for w in cfg.warnings]
        out_json({"valid": True, "stacks": sorted(cfg.stacks), "services": n, "warnings": warnings})
    else:
        for w in cfg.warnings:
            print(f"warning: {w}")
        print(f"ok: {len(cfg.stacks)} stack(s), {n} service(s) in {ctx.desired}")
    return EXIT_OK


def pinned_plan(ctx: Context, cfg: Config, observed: Observed) -> tuple[Plan, Pinning]:
    """The plan over the targets with their registry digests pinned (x-berth.track)."""
    pinning = pin_targets(cfg.targets, observed, ctx.resolver)
    return plan(pinning.targets, observed), pinning


def warn_on_stderr(cfg: Config) -> None:
    """The configuration's warnings (what compose accepts and Berth follows, but says)."""
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)


def cmd_plan(ctx: Context, *, as_json: bool) -> int:
    cfg = ctx.config()
    warn_on_stderr(cfg)
    p, pinning = pinned_plan(ctx, cfg, observe(ctx.runtime, ctx.store))
    if as_json:
        out_json(
            [
                {
                    "project": a.project,
                    "service": a.service,
                    "action": a.kind.value,
                    "reason": a.reason,
                    "tag": a.target.tag if a.target else None,
                    "digest": a.target.digest if a.target else None,
                    "revision": a.target.revision if a.target else None,
                    **_pin_note(pinning.notes.get(a.key)),
                }
                for a in p.actions
            ]
        )
    else:
        for a in p.actions:
            mark = "~" if a.changes else ("!" if a.kind is ActionKind.QUARANTINED else "=")
            print(f"{mark} {a.key:<32} {a.kind.value:<12} {a.reason}")
            note = pinning.notes.get(a.key)
            if note is not None and note.drift:
                print(
                    f"  {'':<32} tag {note.target.tag} moved to {note.drift}; pinned to "
                    f"{note.target.digest} (x-berth.track: digest follows it)"
                )
            elif note is not None and note.note:
                print(f"  {'':<32} by tag, no digest: {note.note}")
        print("changes pending" if p.changes else "nothing to do")
    return EXIT_CHANGES if p.changes else EXIT_OK


def _pin_note(note: Pinned | None) -> dict[str, str | None]:
    if note is None:
        return {}
    return {"drift": note.drift, "digest_note": note.note}


def cmd_apply(ctx: Context, *, as_json: bool) -> int:
    notifier = ctx.notifier()  # before any work: a bad --notify URL is a start-up error
    cfg = ctx.config()
    warn_on_stderr(cfg)
    results = apply_once(ctx, cfg, as_json=as_json)
    if notifier.enabled:  # rollouts only: a quarantined pass was notified when it failed
        for r in results:
            if r.outcome.is_rollout:
                notifier.rollout(r)
        notifier.close(timeout=NOTIFY_FLUSH)
    if as_json:
        out_json([asdict(r) for r in results])
    else:
        for r in results:
            if r.outcome is not Outcome.UNCHANGED:
                print(f"{r.project}/{r.service}: {r.outcome} ({r.reason}) in {r.duration:.1f}s")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _nginx_services(cfg: Config) -> set[tuple[str, str]]:
    """(project, service) of the nginx services of stacks with a proxy in container mode."""
    return {
        (s.project, s.proxy.service)
        for s in cfg.stacks.values()
        if s.proxy is not None and s.proxy.service
    }


def apply_once(ctx: Context, cfg: Config, *, as_json: bool) -> tuple[RolloutResult, ...]:
    observed = observe(ctx.runtime, ctx.store)
    p, _ = pinned_plan(ctx, cfg, observed)
    with progress_for(as_json) as progress:
        session = ctx.session(cfg, emit=progress)
        session.prepare(observed)
        results = run_plan(p, cfg.stacks, session.executor)
        started = [r for r in results if r.outcome is Outcome.SUCCEEDED]
        if any((r.project, r.service) in _nginx_services(cfg) for r in started):
            # nginx started (or changed) in this pass: with `switch: auto` it can only now
            # be asked for its Lua module; move it to the dynamic switch before traffic does
            session.prepare(observe(ctx.runtime, ctx.store))
    for a in p.actions:  # steady services: nginx routes still in line with the containers?
        if a.kind in STEADY_KINDS:
            healed = session.heal_routes(a, observed)
            if healed.error:
                print(f"{a.key}: routes not healed: {healed.error}", file=sys.stderr)
            elif healed.reasons:
                print(f"{a.key}: routes healed: {'; '.join(healed.reasons)}", file=sys.stderr)
    return results


def cmd_status(ctx: Context, *, as_json: bool) -> int:
    rows = status_rows(ctx.runtime, ctx.store, ctx.config(), ctx.resolver)
    if as_json:
        out_json(rows)
        return EXIT_OK
    head = f"{'SERVICE':<32} {'DESIRED':<14} {'DIGEST':<20} {'RUNNING':<20} {'READY':<7} "
    print(f"{head}{'UP-TO-DATE':<11}LAST")
    for r in rows:
        last = r["last_outcome"] or "-"
        if r["quarantined"]:
            last = f"quarantined: {r['last_reason']}"
        print(
            f"{r['project'] + '/' + r['service']:<32} {r['desired_tag']:<14} "
            f"{_short(r['digest']):<20} {','.join(r['running_tags']) or '-':<20} "
            f"{str(r['serving']) + '/' + str(r['desired_replicas']):<7} {r['ready']:<11} {last}"
        )
    drifted = [r for r in rows if r["digest_drift"]]
    if drifted:
        print(f"\n{'PINNED, TAG MOVED':<32} {'RUNS':<20} TAG NOW AT")
        for r in drifted:
            print(
                f"{r['project'] + '/' + r['service']:<32} {_short(r['digest']):<20} "
                f"{_short(r['digest_drift'])}"
            )
    canaries = [r for r in rows if r["canary"]]
    if canaries:
        print(f"\n{'CANARY':<32} {'NEW':<14} {'STEP':<6} WEIGHTS (new/stable)")
        for r in canaries:
            c = r["canary"]
            paused = "  paused" if c["paused"] else ""
            print(
                f"{r['project'] + '/' + r['service']:<32} {c['tag']:<14} "
                f"{str(c['step']) + '/' + str(c['steps']):<6} "
                f"{c['weight']}% / {c['stable_weight']}%{paused}"
            )
    proxied = [r for r in rows if r["upstream"]]
    if proxied:
        print(f"\n{'UPSTREAM':<32} ROUTES TO")
        for r in proxied:
            print(f"{r['project'] + '/' + r['upstream']:<32} {', '.join(r['routes']) or '-'}")
    _print_tasks(rows)
    return EXIT_OK


def _print_tasks(rows: list[dict[str, Any]]) -> None:
    """Release tasks of the desired revision, and what the last rollout's own work did."""
    rows = [r for r in rows if r["release"] or r["last_notes"]]
    if not rows:
        return
    print(f"\n{'TASKS AND CHECKS':<32} {'DESIRED':<14} OUTCOME")
    for r in rows:
        lines = []
        for t in r["release"]:
            took = f" ({t['seconds']:.1f}s)" if t["seconds"] is not None else ""
            lines.append(f"release {t['name']}: {t['state'] or 'not run yet'}{took}")
        lines += [n for n in r["last_notes"] if not n.startswith("release ")]
        for i, line in enumerate(lines):
            who = r["project"] + "/" + r["service"] if i == 0 else ""
            tag = r["desired_tag"] if i == 0 else ""
            print(f"{who:<32} {tag:<14} {printable(line)}")


def _split(service: str) -> tuple[str | None, str]:
    if "/" in service:
        project, name = service.split("/", 1)
        return project, name
    return None, service


def cmd_history(ctx: Context, service: str, *, as_json: bool, limit: int) -> int:
    project, name = _split(service)
    recs: Sequence[RolloutRecord] = ctx.store.history(project, name, limit=limit)
    if as_json:
        out_json([asdict(r) for r in recs])
        return EXIT_OK
    if not recs:
        print(f"no rollouts recorded for {service}")
    for r in recs:
        dur = f"{r.finished_at - r.started_at:.1f}s" if r.finished_at else "-"
        commit = (r.commit or "")[:8] or "-"
        # a retried failure is one record: its duration spans the first to the last attempt
        reason = f"[{r.attempts} attempts] {r.reason}" if r.attempts > 1 else r.reason
        to = f"{r.to_tag} ({_short(r.to_digest)})" if r.to_digest else r.to_tag
        first, *rest = reason.split("\n") or [""]
        print(
            f"#{r.id:<4} {_ts(r.started_at)} {r.project}/{r.service} "
            f"{r.from_tag or '-'} -> {to}  {r.outcome:<11} {dur:>7}  {commit}  {first}"
        )
        for line in [*rest, *(r.notes.split("\n") if r.notes else ())]:
            print(f"      | {printable(line)}")  # a task's log tail; release, smoke, hooks
    return EXIT_OK


def cmd_retry(ctx: Context, service: str) -> int:
    project, name = _split(service)
    n = ctx.store.lift_quarantine(project, name)
    if n:
        print(f"lifted the quarantine of {n} revision(s) of {service}; the next apply retries")
    else:
        print(f"nothing quarantined for {service}")
    return EXIT_OK


def cmd_canary(ctx: Context, command: str, service: str) -> int:
    """Leave the command where the rollout running the canary (`berth run`, `berth apply`)
    picks it up within a second."""
    project, name = _split(service)
    found = ctx.store.canary_command(project, name, command)
    if found is None:
        print(f"berth: no canary in progress for {service}", file=sys.stderr)
        return EXIT_ERROR
    where = f"step {found.step}/{found.steps}, {found.weight}% on {found.tag}"
    print(f"{command}: sent to the canary of {found.project}/{found.service} ({where})")
    return EXIT_OK


def _short(digest: str | None) -> str:
    """sha256:0123456789ab: enough to tell digests apart on a terminal."""
    return digest[:19] if digest else "-"


def _ts(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
