"""The git facts Berth records (which commit of desired/ a rollout came from) and the commits
`berth deploy/rollback --commit` make. Failures become GitError, never CalledProcessError."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from controller.errors import BerthError


class GitError(BerthError):
    """A git command failed (not a repository, identity, hook, lock...)."""


def head_commit(path: str) -> str | None:
    """HEAD of the repository that holds `path`, or None when it is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", path, "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha or None


def _git(path: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run git in `path`; a missing git binary or a hang becomes a GitError."""
    try:
        return subprocess.run(
            ["git", "-C", path, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git {args[0]} in {path} failed: {exc}") from exc


def _checked(path: str, *args: str) -> str:
    out = _git(path, *args)
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().splitlines()
        raise GitError(f"git {args[0]} in {path} failed: {' '.join(detail[-3:]) or out.returncode}")
    return out.stdout


def is_repo(path: str) -> bool:
    """Whether `path` lies inside a git work tree."""
    try:
        out = _git(path, "rev-parse", "--is-inside-work-tree", timeout=5)
    except GitError:
        return False
    return out.returncode == 0 and out.stdout.strip() == "true"


def has_local_changes(path: str, files: Sequence[str]) -> bool:
    """Uncommitted changes to `files`, staged or not; an untracked file counts too (committing
    it would publish a file nobody reviewed as part of an unrelated deploy)."""
    if not files:
        return False
    out = _checked(path, "status", "--porcelain", "--untracked-files=all", "--", *files)
    return bool(out.strip())


def _identity_args(path: str) -> list[str]:
    """`-c user.name=berth ...` for what neither config nor environment provides (git's env
    variables still win over `-c`), so a bare CI checkout can commit."""
    args: list[str] = []
    for key, env, fallback in (
        ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"), "berth"),
        ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"), "berth@localhost"),
    ):
        configured = _git(path, "config", "--get", key, timeout=5).stdout.strip()
        if not configured and not all(os.environ.get(e) for e in env):
            args += ["-c", f"{key}={fallback}"]
    return args


def commit(path: str, files: Sequence[str], message: str) -> str:
    """Commit exactly `files` (other staged changes stay staged, uncommitted); returns HEAD."""
    if not files:
        raise GitError("nothing to commit: no files given")
    _checked(path, "add", "--", *files)
    _checked(path, *_identity_args(path), "commit", "-q", "-m", message, "--only", "--", *files)
    sha = head_commit(path)
    if sha is None:
        raise GitError(f"git commit in {path} left no HEAD")
    return sha
