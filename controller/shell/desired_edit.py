"""Editing the tags in desired/: validated in memory, written as one edit, optionally
committed, all or nothing. Shared by `berth deploy`/`rollback` (cli) and image-update
automation (daemon), which both only ever change `tag:` lines (controller.core.edit).

Every check (reference grammar, allowed_tags, a clean git state when committing, full
validation of the would-be configuration) runs on in-memory text first; the files are then
staged next to the originals, re-checked for changes made since they were read (under a
lock on desired/), and moved into place with os.replace (desired_write). With a commit,
whatever can be known to make `git commit` fail is checked before anything is written, and
when the commit still fails desired/ gets its original bytes back (desired_write.commit_edit).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from controller.adapters import desired_write, git
from controller.adapters.files import read_desired_dir
from controller.core.boundary import ConfigFiles
from controller.core.config import Config, build_config
from controller.core.edit import EditError, set_tags
from controller.core.reference import tag_problem
from controller.core.tagpolicy import tag_allowed
from controller.shell.wiring import Context

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
    body = [f"{c.project}/{c.service}: {c.old} -> {c.new} ({show_path(c.file)})" for c in changes]
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
    return config_after(snap, new), sha


def config_after(snap: Snapshot, new: Mapping[str, str]) -> Config:
    """The configuration desired/ holds once `new` (edited texts by file) is in place."""
    return _build(snap.files, [(f, new.get(f, t)) for f, t in snap.texts.items()])


def show_path(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
