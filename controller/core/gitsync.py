"""What a sync of the remote git source may accept: pure decisions over facts the git
adapter gathered (no git, no clock here).

The desired/ boundary (DESIGN §2) with a remote: whoever can push to the repository could
change the compose files, which decide images, privileges and mounts. So a fetched range
old..new is accepted only when
- it is a fast-forward of what Berth runs (a force-push or rewrite is refused);
- with allowed signers configured, the new tip's signature verifies;
- no commit in it changes a file outside the desired path, unless that commit is signed by
  an allowed signer (operators sign compose changes) or the operator said
  `--git-trust-repo` (push access = operator access).
The first refusal names the commit and the first such path.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit


class SyncResult(StrEnum):
    """The `result` label of berth_git_sync_total."""

    SUCCESS = "success"  # in line with the remote (changed or not)
    ERROR = "error"  # could not find out: remote unreachable, auth, git failed
    REJECTED = "rejected"  # the remote holds something the policy refuses


@dataclass(frozen=True)
class SyncOutcome:
    """One sync attempt, as given to `on_sync` callbacks (notifications) and /status."""

    result: SyncResult
    commit: str | None  # the commit in force after the attempt
    fetched: str | None  # the remote tip seen, when the fetch worked
    changed: bool  # the checkout moved to a new commit
    error: str | None
    at: float  # unix time of the attempt


@dataclass(frozen=True)
class Policy:
    path: str  # desired/ inside the repository, normalised (git_path)
    trust_repo: bool = False
    signers: bool = False  # allowed signers configured


@dataclass(frozen=True)
class CommitFacts:
    sha: str
    paths: tuple[str, ...]  # files this commit changes (merges: against every parent)


def git_path(text: str) -> str:
    """--git-path normalised; ValueError when it cannot be a sub-directory of the repo."""
    norm = posixpath.normpath(text.strip().strip("/")) if text.strip() else ""
    if not norm or norm == "." or norm.startswith("../") or norm == ".." or "\x00" in norm:
        raise ValueError(
            f"--git-path {text!r} must name a directory inside the repository (not its root)"
        )
    return norm


def outside(paths: Sequence[str], path: str) -> list[str]:
    """The paths that do not lie under `path` (repository-relative, as git prints them)."""
    prefix = path + "/"
    return [p for p in paths if not p.startswith(prefix)]


def needs_signature(commits: Sequence[CommitFacts], policy: Policy) -> list[str]:
    """The commits whose signature decides whether the range is accepted."""
    if policy.trust_repo:
        return []
    return [c.sha for c in commits if outside(c.paths, policy.path)]


def range_problem(
    *,
    fast_forward: bool,
    head: str,
    tip: str,
    commits: Sequence[CommitFacts],
    signed: frozenset[str],
    policy: Policy,
) -> str | None:
    """Why old..new (`head`..`tip`) may not be taken, or None. `signed`: the commits whose
    signature verified against the allowed signers."""
    if not fast_forward:
        return (
            f"not a fast-forward: {short(tip)} does not descend from {short(head)} "
            "(force-push or rewritten history refused; the current commit stays in force)"
        )
    if policy.signers and tip not in signed:
        return f"commit {short(tip)} is not signed by an allowed signer"
    if policy.trust_repo:
        return None
    for c in commits:
        out = outside(c.paths, policy.path)
        if out and c.sha not in signed:
            why = "unsigned" if not policy.signers else "not signed by an allowed signer"
            return (
                f"commit {short(c.sha)} changes {out[0]!r} outside {policy.path}/ and is "
                f"{why} (DESIGN §2: only desired/ may change by push; see docs/git-source.md)"
            )
    return None


def short(sha: str) -> str:
    return sha[:12]


def redact_url(url: str) -> str:
    """The URL without user info (a token must never reach a log or /status)."""
    if "://" not in url:
        return url  # scp-like `git@host:path`: the user is not a secret
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_problem(url: str) -> str | None:
    """Why --git-url cannot be used as given: credentials in it would end up in .git/config
    and in `ps`; local paths and unknown schemes are allowed (file://, ssh, https)."""
    if not url or url.startswith("-") or any(ord(ch) < 0x21 for ch in url):
        return "--git-url is empty, starts with '-' or holds spaces or control characters"
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None or (parts.username and parts.scheme in ("http", "https")):
            return (
                "--git-url holds credentials: give the token in BERTH_GIT_TOKEN or "
                "--git-token-file instead (never on the command line)"
            )
    return None
