"""The git facts Berth records (which commit of desired/ a rollout came from) and the commits
`berth deploy/rollback --commit` make, with what it takes to undo a failed one (the state
before it, the index entries to put back). Failures become GitError, never
CalledProcessError."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from controller.errors import BerthError

COMMIT_TIMEOUT = 600.0  # hooks may lint or test; a commit stuck longer waits for input
STOP_GRACE = 10.0  # seconds git gets to remove its lock files after SIGTERM


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


def identity_args(path: str) -> list[str]:
    """The `-c user.*=berth...` fallbacks a commit made by Berth in `path` needs."""
    return _identity_args(path)


def first_line(text: str) -> str:
    """The line of git's stderr that names the cause: the first one with words, not a hint
    (for a refusing hook that is the hook's own first line)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("hint:"):
            return line
    return ""


# -- before a commit: everything that can be known to fail is checked before desired/ is written


@dataclass(frozen=True)
class Before:
    """What a failed commit must leave as it was: HEAD, and the index entries of the files
    (`ls-files -s -z --full-name`, paths relative to `top`)."""

    top: str
    head: str | None
    entries: str


def unborn(path: str) -> bool:
    """A repository without a commit yet: there is no HEAD to commit on top of."""
    return head_commit(path) is None


def index_lock(path: str) -> str | None:
    """The index's lock file when it exists: another git command is running, or one crashed.
    `git commit` would refuse; better to say so before desired/ is written."""
    index = _checked(path, "rev-parse", "--git-path", "index").strip()  # GIT_INDEX_FILE too
    lock = os.path.normpath(os.path.join(path, index + ".lock"))
    return lock if os.path.lexists(lock) else None


def identity_problem(path: str) -> str | None:
    """Why git would refuse the author or committer identity (`git var` applies the same
    rules as `git commit`: an empty GIT_AUTHOR_NAME, a name of only '.'...), else None."""
    ident = _identity_args(path)
    for var in ("GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"):
        out = _git(path, *ident, "var", var, timeout=5)
        if out.returncode != 0:
            return first_line(out.stderr) or f"git var {var} exited {out.returncode}"
    return None


def before_commit(path: str, files: Sequence[str]) -> Before:
    """Records HEAD and the index entries of `files`, to put back after a failed commit."""
    top = _checked(path, "rev-parse", "--show-toplevel").strip()
    entries = _checked(top, "ls-files", "-s", "-z", "--full-name", "--", *files)
    return Before(top, head_commit(path), entries)


# -- the commit and its undo ----------------------------------------------------------------


class CommitFailed(GitError):
    """`git commit` exited non-zero (or was stopped); `reason` is git's first line."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"git commit failed ({reason})")


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, not SIGKILL: git removes its own lock files on SIGTERM, a killed git leaves
    a stale .git/index.lock behind. `wait`, not `communicate`: a hook's child may hold the
    pipes open long after git is gone."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_commit(path: str, args: Sequence[str]) -> None:
    """`git commit`, stopped cleanly if berth is interrupted (KeyboardInterrupt, or SIGTERM
    turned into one) or git outlives COMMIT_TIMEOUT (a hook or gpg waiting for input)."""
    try:
        proc = subprocess.Popen(
            ["git", "-C", path, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as exc:
        raise CommitFailed(str(exc)) from exc
    try:
        _, err = proc.communicate(timeout=COMMIT_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        _stop(proc)
        raise CommitFailed(f"still running after {COMMIT_TIMEOUT:.0f}s; stopped") from exc
    except BaseException:
        _stop(proc)
        raise
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    if proc.returncode != 0:
        raise CommitFailed(first_line(err) or f"exit status {proc.returncode}, no message")


def commit(path: str, files: Sequence[str], message: str) -> str:
    """Commit exactly `files` as they are in the work tree; returns the new HEAD.

    A pathspec commit (`--only`, no `git add` first): git stages the files in a temporary
    index, runs the hooks (pre-commit, commit-msg: an operator's policy, so never bypassed)
    on it, and updates the real index only once the commit exists. When it fails, the real
    index is as it was and other staged changes stay staged either way."""
    if not files:
        raise GitError("nothing to commit: no files given")
    ident = _identity_args(path)
    _run_commit(path, [*ident, "commit", "-q", "-m", message, "--only", "--", *files])
    sha = head_commit(path)
    if sha is None:
        raise GitError(f"git commit in {path} left no HEAD")
    return sha


def landed(path: str, before: Before, files: Sequence[str]) -> str | None:
    """The new HEAD when a commit that "failed" exists anyway (git stopped after updating
    the ref, or exited non-zero after it): a child of the old HEAD holding the files exactly
    as the work tree has them. Then desired/ must stay as written, or it would contradict
    HEAD."""
    head = head_commit(path)
    if head is None or head == before.head or before.head is None:
        return None
    parent = _git(path, "rev-parse", "--verify", "-q", f"{head}^").stdout.strip()
    if parent != before.head:
        return None
    same = _git(path, "diff", "--quiet", head, "--", *files)
    return head if same.returncode == 0 else None


def restore_index(before: Before, files: Sequence[str]) -> bool:
    """Puts the index entries of `files` back as recorded, when they differ; True when
    something had to be rewritten. A failed `--only` commit leaves the real index alone, but
    "the index is as it was" is a promise, so it is checked rather than trusted (a git that
    behaves otherwise, a hook that wrote the index behind git's back)."""
    now = _checked(before.top, "ls-files", "-s", "-z", "--full-name", "--", *files)
    if now == before.entries:
        return False
    try:
        out = subprocess.run(
            ["git", "-C", before.top, "update-index", "-z", "--index-info"],
            input=before.entries,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git update-index failed: {exc}") from exc
    if out.returncode != 0:
        raise GitError(f"git update-index failed: {first_line(out.stderr) or out.returncode}")
    return True


# -- a local desired/ repository's branches (image-update automation) -------------------------


def toplevel(path: str) -> str:
    return os.path.realpath(_checked(path, "rev-parse", "--show-toplevel").strip())


def current_branch(path: str) -> str | None:
    out = _git(path, "symbolic-ref", "--short", "-q", "HEAD")
    return out.stdout.strip() or None if out.returncode == 0 else None


def upstream(path: str) -> str | None:
    """`origin/main` when the checked-out branch tracks a remote branch, else None."""
    out = _git(path, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
    return out.stdout.strip() or None if out.returncode == 0 else None


NO_COMMIT = "0" * 40
_PROPOSALS = "refs/berth/proposals"  # where Berth remembers the tip of each proposal branch


def last_proposal(path: str, branch: str) -> str | None:
    """The commit Berth last put on proposal branch `branch` (None: never)."""
    out = _git(path, "rev-parse", "--verify", "-q", f"{_PROPOSALS}/{branch}^{{commit}}")
    return out.stdout.strip() or None if out.returncode == 0 else None


def remember_proposal(path: str, branch: str, sha: str) -> None:
    _checked(path, "update-ref", f"{_PROPOSALS}/{branch}", sha)


def set_branch(path: str, branch: str, sha: str, *, expected: str | None) -> None:
    """Point the local proposal branch `branch` at `sha`, only if it is still at `expected`
    (Berth's last proposal; None: it must not exist): a branch somebody else made or moved
    is never overwritten."""
    old = expected or NO_COMMIT
    out = _git(path, "update-ref", f"refs/heads/{branch}", sha, old)
    if out.returncode != 0:
        raise GitError(
            f"branch {branch} exists and is not where Berth's last proposal left it: it is "
            "never overwritten; choose another x-berth.update.branch"
        )


def push_tracking(path: str, refspec: str, *, lease: str | None = None) -> None:
    """`git push` to the checked-out branch's remote with the repository's own credentials
    (a local desired/ whose branch tracks a remote). Never forced; a proposal branch is
    replaced only under `--force-with-lease` (`lease`: where Berth left it, "" = absent)."""
    remote = _checked(path, "config", "--get", f"branch.{current_branch(path)}.remote").strip()
    dst = refspec.rsplit(":", 1)[-1]
    args = [f"--force-with-lease={dst}:{lease}"] if lease is not None else []
    _checked(path, "push", *args, remote, refspec)
