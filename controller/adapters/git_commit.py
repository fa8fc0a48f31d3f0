"""A commit made beside the working tree: image-update automation writes a tag into
desired/ as a commit on top of a base, without touching the checkout the daemon reads.

Why plumbing (a private index, hash-object, write-tree, commit-tree) instead of editing the
files and `git commit`: with a remote git source the checkout must only ever move by a
fast-forward to what the remote holds (core/gitsync.py). The automation's commit therefore
goes to the remote first; the next sync brings it back like any other push. A proposal
branch is made the same way, leaving the tracked branch alone.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping

from controller.adapters import git_remote as g
from controller.adapters.git import _identity_args, first_line
from controller.errors import BerthError

TIMEOUT = 30.0


class CommitError(BerthError):
    """git could not make the commit (nothing was changed: no ref moved)."""


def _run(
    path: str, *args: str, env: Mapping[str, str] | None = None, data: bytes | None = None
) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", path, *args],
            input=data,
            capture_output=True,
            timeout=TIMEOUT,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommitError(f"git {args[0]}: {exc}") from exc
    if out.returncode != 0:
        why = first_line(out.stderr.decode("utf-8", "replace"))
        raise CommitError(f"git {args[0]} failed: {why}")
    return out.stdout.decode("utf-8", "replace").strip()


def toplevel(path: str) -> str:
    return os.path.realpath(_run(path, "rev-parse", "--show-toplevel"))


def commit_files(path: str, base: str, files: Mapping[str, bytes], message: str) -> str:
    """A new commit whose parent is `base` and whose tree is base's with `files` (absolute
    paths inside the repository) replaced. Returns its sha; no ref, index or file moves."""
    top = toplevel(path)
    with tempfile.TemporaryDirectory(prefix="berth-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
        _run(top, "read-tree", base, env=env)
        for file, data in sorted(files.items()):
            rel = os.path.relpath(os.path.realpath(file), top)
            if rel.startswith(".."):
                raise CommitError(f"{file} is outside the repository {top}")
            blob = _run(top, "hash-object", "-w", "--stdin", data=data)
            listed = _run(top, "ls-tree", base, "--", rel).split()
            mode = listed[0] if listed else "100644"
            _run(top, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{rel}", env=env)
        tree = _run(top, "write-tree", env=env)
        ident = _identity_args(top)
        return _run(top, *ident, "commit-tree", tree, "-p", base, "-m", message)


def head(path: str) -> str:
    return _run(path, "rev-parse", "HEAD")


def show(path: str, rev: str, file: str) -> bytes:
    """The bytes of `file` (absolute) at `rev`."""
    top = toplevel(path)
    rel = os.path.relpath(os.path.realpath(file), top)
    try:
        out = subprocess.run(
            ["git", "-C", top, "show", f"{rev}:{rel}"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommitError(f"git show: {exc}") from exc
    if out.returncode != 0:
        raise CommitError(f"git show {rev}:{rel} failed")
    return out.stdout


def set_branch(path: str, branch: str, sha: str) -> None:
    """Point the local branch `branch` at `sha` (a proposal branch; never the checked-out
    one: the caller makes sure)."""
    _run(path, "update-ref", f"refs/heads/{branch}", sha)


def current_branch(path: str) -> str | None:
    try:
        return _run(path, "symbolic-ref", "--short", "-q", "HEAD") or None
    except CommitError:
        return None


def upstream(path: str) -> str | None:
    """`origin/main` when the checked-out branch tracks a remote branch, else None."""
    try:
        return _run(path, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}") or None
    except CommitError:
        return None


def push_plain(path: str, refspec: str) -> None:
    """`git push` with the repository's own remote and credentials (a local desired/ whose
    branch tracks a remote). Never forced unless the refspec says so (a proposal branch)."""
    remote = _run(path, "config", "--get", f"branch.{current_branch(path)}.remote")
    _run(path, "push", remote, refspec)


def push_commit(remote: g.Remote, path: str, sha: str, branch: str, *, force: bool) -> None:
    """Push commit `sha` to the remote's `branch` with the source's credentials. `force`
    only for a proposal branch Berth owns (it is rebuilt on the current base each time);
    the tracked branch is never forced: a remote that moved meanwhile raises PushRejected."""
    refspec = f"{'+' if force else ''}{sha}:refs/heads/{branch}"
    out = remote.call(path, "push", "origin", refspec, timeout=g.FETCH_TIMEOUT)
    if out.returncode == 0:
        return
    why = remote.auth.scrub(first_line(out.stderr))
    if any(w in out.stderr for w in ("[rejected]", "non-fast-forward", "fetch first")):
        raise g.PushRejected(f"push to {branch} rejected (the remote moved): {why}")
    raise CommitError(f"push to {branch} failed: {why}")
