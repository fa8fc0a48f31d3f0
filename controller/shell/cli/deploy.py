"""`berth deploy` and `berth rollback`: edit the tags in desired/, optionally commit and wait.

Both only ever change `tag:` lines (controller.core.edit), and both refuse rather than write
half an edit: every check (reference grammar, allowed_tags, a clean git state when
committing, full validation of the would-be configuration) runs on in-memory text first;
the files are then staged next to the originals, re-checked for changes made since they were
read (under a lock on desired/), and moved into place with os.replace (desired_write).

With --commit the edit and its commit are one: whatever can be known to make `git commit`
fail is checked before anything is written, and when the commit still fails (a hook refuses,
gpg, a lock) or berth is interrupted, desired/ gets its original bytes back and the index its
entries, so a daemon never keeps a tag that is not committed (desired_write.commit_edit).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, Literal

from controller.adapters.controller_api import fetch_status
from controller.adapters.git_writeback import Followed
from controller.core.config import Config
from controller.core.gitsync import redact_url
from controller.core.outcome import Outcome
from controller.errors import BerthError
from controller.ports import RolloutRecord
from controller.shell import git_writeback
from controller.shell.cli.commands import EXIT_ERROR, EXIT_OK, out_json
from controller.shell.cli.deploy_wait import WaitOptions, wait_for
from controller.shell.desired_edit import (
    Change,
    DeployError,
    Snapshot,
    Want,
    apply_edit,
    changes_for,
    config_after,
    edited_texts,
    message_for,
    read_snapshot,
    show_path,
)
from controller.shell.wiring import Context

DEFAULT_CONTROLLER = "http://127.0.0.1:9180"
HISTORY_DEPTH = 1000  # how far back rollback looks for a good tag other than the current


# -- which services ---------------------------------------------------------------------------


def resolve(cfg: Config, services: Sequence[str], project: str | None) -> list[tuple[str, str]]:
    """(project, service) for each SERVICE / PROJECT/SERVICE / `all`, in desired/ order."""
    named = [
        (p, s)
        for p in sorted(cfg.desired)
        if project is None or p == project
        for s in cfg.desired[p].services
    ]
    if project is not None and project not in cfg.desired:
        raise DeployError(f"no project {project!r} in desired/; known: {', '.join(cfg.desired)}")
    if list(services) == ["all"]:
        if not named:
            raise DeployError("desired/ names no service to deploy")
        return named
    out: list[tuple[str, str]] = []
    for arg in services:
        proj, _, name = arg.rpartition("/")
        hits = [(p, s) for p, s in named if s == name and (not proj or p == proj)]
        if not hits:
            known = ", ".join(f"{p}/{s}" for p, s in named) or "none"
            raise DeployError(f"unknown service {arg!r}: not named in desired/ (known: {known})")
        if len(hits) > 1:
            raise DeployError(f"service {arg!r} is in several projects; say PROJECT/{name}")
        if hits[0] not in out:
            out.append(hits[0])
    return out


# -- the commands ----------------------------------------------------------------------------------


def _run(
    ctx: Context,
    verb: str,
    wants: Sequence[Want],
    snap: Snapshot,
    *,
    commit: bool,
    message: str | None,
    extra: str,
    opts: WaitOptions,
    git_token: str | None = None,
) -> int:
    changes = changes_for(snap, wants)
    followed = git_writeback.managed(ctx.desired)
    if followed is not None and not commit:
        raise git_writeback.refuse_without_commit(followed)
    before = fetch_status(opts.controller) if opts.wait else None
    msg = message_for(verb, changes, message, extra)
    pushed: str | None = None
    if followed is None:
        cfg, sha = apply_edit(ctx, snap, changes, commit=commit, message=msg)
    else:
        cfg, sha = _commit_and_push(followed, git_token, snap, changes, msg)
        pushed = f"{redact_url(followed.url)} {followed.branch}" if sha else None
    report: dict[str, Any] = {"changes": [asdict(c) for c in changes], "commit": sha,
                              "pushed": pushed}  # fmt: skip
    if not opts.as_json:
        for c in changes:
            print(f"{show_path(c.file)}: {c.project}/{c.service} {c.old} -> {c.new}")
        if not changes:
            print(
                "nothing to change: "
                + ", ".join(f"{w.project}/{w.service} is at {w.tag}" for w in wants)
            )
        if sha:
            print(f"committed {sha[:12]}: {msg.splitlines()[0]}")
        if pushed:
            print(f"pushed {sha and sha[:12]} to {pushed}")
    code = EXIT_OK
    if opts.wait:
        try:
            code, report["wait"] = wait_for(ctx, cfg, wants, opts, before)
        except BerthError as exc:
            print(f"berth: desired/ was updated, but waiting failed: {exc}", file=sys.stderr)
            code = EXIT_ERROR
    report["exit"] = code
    if opts.as_json:
        out_json(report)
    return code


def _commit_and_push(
    f: Followed,
    token: str | None,
    snap: Snapshot,
    changes: Sequence[Change],
    message: str,
) -> tuple[Config, str | None]:
    """desired/ is Berth's checkout: commit on top of it, push, then move it (no commit
    ever left ahead of the remote; git_writeback)."""
    git_writeback.check(f, token)
    if not changes:
        return snap.config, None
    new = edited_texts(snap, changes)
    sha = git_writeback.commit_and_push(f, token, snap.hashes, new, message)
    return config_after(snap, new), sha


def cmd_deploy(
    ctx: Context,
    services: list[str] | Literal["all"],
    tag: str,
    *,
    commit: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
    message: str | None = None,
    project: str | None = None,
    controller: str = DEFAULT_CONTROLLER,
    git_token: str | None = None,
) -> int:
    names = ["all"] if services == "all" else list(services)
    if "all" in names and len(names) > 1:
        raise DeployError("'all' cannot be combined with service names")
    snap = read_snapshot(ctx)
    wants = [Want(p, s, tag) for p, s in resolve(snap.config, names, project)]
    opts = WaitOptions(wait, timeout, controller, as_json)
    return _run(ctx, "deploy", wants, snap, commit=commit, message=message, extra="", opts=opts,
                git_token=git_token)  # fmt: skip


def last_good_other(history: Sequence[RolloutRecord], current: str) -> RolloutRecord | None:
    """Newest succeeded rollout to a tag other than `current` (history is newest first)."""
    good = (r for r in history if r.outcome is Outcome.SUCCEEDED and r.to_tag != current)
    return next(good, None)


def cmd_rollback(
    ctx: Context,
    service: str,
    *,
    commit: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
    message: str | None = None,
    controller: str = DEFAULT_CONTROLLER,
    git_token: str | None = None,
) -> int:
    snap = read_snapshot(ctx)
    if service == "all":
        raise DeployError("rollback takes one service (each has its own last good tag), not all")
    [(project, name)] = resolve(snap.config, [service], None)
    current = snap.config.desired[project].services[name].tag
    rec = ctx.store.last_good(project, name)
    current_is_good = rec is not None and rec.to_tag == current
    if current_is_good:
        rec = last_good_other(ctx.store.history(project, name, limit=HISTORY_DEPTH), current)
    if rec is None:
        other = f" to a tag other than the current {current}" if current_is_good else ""
        raise DeployError(
            f"no successful rollout of {project}/{name} in history{other} "
            f"(state: {ctx.state_dir}); nothing changed"
        )
    extra = f"Back to the last good rollout #{rec.id} ({rec.to_tag}, commit {rec.commit or '-'})."
    opts = WaitOptions(wait, timeout, controller, as_json)
    wants = [Want(project, name, rec.to_tag)]
    return _run(ctx, "rollback", wants, snap, commit=commit, message=message, extra=extra,
                opts=opts, git_token=git_token)  # fmt: skip


# -- command line ----------------------------------------------------------------------------------
