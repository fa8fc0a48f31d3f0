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

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from controller.adapters import desired_write, git
from controller.adapters.controller_api import fetch_status
from controller.adapters.files import read_desired_dir
from controller.core.boundary import ConfigFiles
from controller.core.config import Config, build_config
from controller.core.edit import EditError, set_tags
from controller.core.outcome import Outcome
from controller.core.reference import tag_problem
from controller.core.tagpolicy import tag_allowed
from controller.errors import BerthError
from controller.ports import RolloutRecord
from controller.shell.cli.commands import EXIT_ERROR, EXIT_OK, out_json
from controller.shell.cli.deploy_wait import WaitOptions, wait_for
from controller.shell.wiring import Context

DEFAULT_CONTROLLER = "http://127.0.0.1:9180"
HISTORY_DEPTH = 1000  # how far back rollback looks for a good tag other than the current
UNCHANGED = desired_write.UNCHANGED


class DeployError(EditError):
    """Bad input for deploy/rollback; desired/ is left unchanged."""


@dataclass(frozen=True)
class Change:
    file: str
    project: str
    service: str
    old: str
    new: str


@dataclass(frozen=True)
class Snapshot:
    """desired/ as read: texts, their hashes (for the stale check), the validated config
    and the file port it was built over (the edited texts are validated over the same)."""

    texts: Mapping[str, str]
    hashes: Mapping[str, str]
    config: Config
    files: ConfigFiles


@dataclass(frozen=True)
class Want:
    project: str
    service: str
    tag: str


def _build(port: ConfigFiles, desired_files: Sequence[tuple[str, str]]) -> Config:
    """The one place deploy validates desired/ texts (as read, or as they would be)."""
    return build_config(desired_files, environ=dict(os.environ), files=port)


def read_snapshot(ctx: Context) -> Snapshot:
    port = ctx.config_files()
    files = read_desired_dir(ctx.desired)
    return Snapshot(
        texts=dict(files),
        hashes={f: desired_write.sha256(t.encode("utf-8")) for f, t in files},
        config=_build(port, files),
        files=port,
    )


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


def check_tag(cfg: Config, project: str, service: str, tag: str) -> None:
    """The grammar and the compose file's allowed_tags, with the reason, before any write."""
    if problem := tag_problem(tag):
        raise DeployError(f"{project}/{service}: tag {tag!r}: {problem}")
    spec = cfg.stacks[project].services.get(service)
    pattern = spec.berth.allowed_tags if spec is not None else None
    if spec is not None and pattern is not None and not tag_allowed(pattern, tag):
        raise DeployError(
            f"{project}/{service}: tag {tag!r} does not match allowed_tags {pattern!r} "
            f"({spec.source_file})"
        )


def changes_for(snap: Snapshot, wants: Sequence[Want]) -> list[Change]:
    out: list[Change] = []
    for w in wants:
        check_tag(snap.config, w.project, w.service, w.tag)
        current = snap.config.desired[w.project].services[w.service]
        if current.tag != w.tag:
            out.append(Change(current.where.file, w.project, w.service, current.tag, w.tag))
    return out


# -- writing ------------------------------------------------------------------------------------


def edited_texts(snap: Snapshot, changes: Sequence[Change]) -> dict[str, str]:
    """New text per touched file, validated as a whole configuration before anything is written."""
    by_file: dict[str, dict[str, str]] = {}
    for ch in changes:
        by_file.setdefault(ch.file, {})[ch.service] = ch.new
    new = {f: set_tags(snap.texts[f], f, tags) for f, tags in by_file.items()}
    merged = [(f, new.get(f, t)) for f, t in snap.texts.items()]
    _build(snap.files, merged)  # raises ConfigError
    return new


def _encoded(new: Mapping[str, str]) -> dict[str, bytes]:
    return {f: t.encode("utf-8") for f, t in new.items()}


@contextlib.contextmanager
def _stale_refused() -> Iterator[None]:
    try:
        yield
    except desired_write.StaleFiles as exc:
        raise DeployError(f"{exc}; nothing written, run the command again") from exc


def _warn(line: str) -> None:
    print(f"berth: {line}", file=sys.stderr)


def write_files(desired: str, snap: Snapshot, new: Mapping[str, str]) -> None:
    """Replace the edited files as one edit: all of them, or (stale, interrupted) none."""
    with _stale_refused(), desired_write.locked(desired), desired_write.sigterm_raises():
        written = desired_write.Edit(_encoded(new))
        written.apply(snap.hashes)
        written.release()


def _write_and_commit(
    desired: str, snap: Snapshot, new: Mapping[str, str], *, before: git.Before, message: str
) -> str:
    """The edit and its commit, all or nothing (desired_write.commit_edit says how)."""
    real = sorted({os.path.realpath(f) for f in new})
    edit = desired_write.Edit(_encoded(new))
    with _stale_refused():
        return desired_write.commit_edit(
            desired, edit, snap.hashes, before=before, files=real, message=message, warn=_warn
        )


def _commit_check(desired: str, files: Sequence[str]) -> git.Before | None:
    """Everything a commit is known to fail on, checked before anything is written, so that
    the time a daemon could see an uncommitted tag is only that of `git commit` itself."""
    if not git.is_repo(desired):
        raise DeployError(f"--commit: {desired} is not in a git repository; {UNCHANGED}")
    if not files:
        return None
    if git.unborn(desired):
        raise DeployError(f"--commit: the repository of {desired} has no commit yet; {UNCHANGED}")
    real = [os.path.realpath(f) for f in files]
    if git.has_local_changes(desired, real):
        raise DeployError(
            f"--commit: {', '.join(files)} has uncommitted changes; commit or discard them "
            f"first (berth commits only its own edit); {UNCHANGED}"
        )
    if lock := git.index_lock(desired):
        raise DeployError(
            f"--commit: the git index is locked ({lock} exists: another git command is "
            f"running, or one crashed and left it); {UNCHANGED}"
        )
    if problem := git.identity_problem(desired):
        raise DeployError(f"--commit: git refuses the commit identity ({problem}); {UNCHANGED}")
    return git.before_commit(desired, real)


def message_for(verb: str, changes: Sequence[Change], subject: str | None, extra: str) -> str:
    if subject is None:
        tags = sorted({c.new for c in changes})
        names = ", ".join(f"{c.project}/{c.service}" for c in changes)
        subject = f"berth {verb}: {names} -> {', '.join(tags)}"
    body = [f"{c.project}/{c.service}: {c.old} -> {c.new} ({_show(c.file)})" for c in changes]
    return "\n".join([subject, "", *body, *([extra] if extra else [])]) + "\n"


def apply_edit(
    ctx: Context, snap: Snapshot, changes: Sequence[Change], *, commit: bool, message: str
) -> tuple[Config, str | None]:
    """All checks, then the write, then the commit; returns the new config and the sha."""
    before = _commit_check(ctx.desired, sorted({c.file for c in changes})) if commit else None
    if not changes:
        return snap.config, None
    new = edited_texts(snap, changes)
    sha: str | None = None
    if before is None:
        write_files(ctx.desired, snap, new)
    else:
        sha = _write_and_commit(ctx.desired, snap, new, before=before, message=message)
    cfg = _build(snap.files, [(f, new.get(f, t)) for f, t in snap.texts.items()])
    return cfg, sha


def _show(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


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
) -> int:
    changes = changes_for(snap, wants)
    before = fetch_status(opts.controller) if opts.wait else None
    msg = message_for(verb, changes, message, extra)
    cfg, sha = apply_edit(ctx, snap, changes, commit=commit, message=msg)
    report: dict[str, Any] = {"changes": [asdict(c) for c in changes], "commit": sha}
    if not opts.as_json:
        for c in changes:
            print(f"{_show(c.file)}: {c.project}/{c.service} {c.old} -> {c.new}")
        if not changes:
            print(
                "nothing to change: "
                + ", ".join(f"{w.project}/{w.service} is at {w.tag}" for w in wants)
            )
        if sha:
            print(f"committed {sha[:12]}: {msg.splitlines()[0]}")
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
) -> int:
    names = ["all"] if services == "all" else list(services)
    if "all" in names and len(names) > 1:
        raise DeployError("'all' cannot be combined with service names")
    snap = read_snapshot(ctx)
    wants = [Want(p, s, tag) for p, s in resolve(snap.config, names, project)]
    opts = WaitOptions(wait, timeout, controller, as_json)
    return _run(ctx, "deploy", wants, snap, commit=commit, message=message, extra="", opts=opts)


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
    return _run(
        ctx, "rollback", wants, snap, commit=commit, message=message, extra=extra, opts=opts
    )


# -- command line ----------------------------------------------------------------------------------
