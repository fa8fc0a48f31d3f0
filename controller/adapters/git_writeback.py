"""Writing back to the remote that Berth's own checkout follows (`berth run --git-url`):
what the checkout follows, recorded in its `.git/config`, and a commit pushed **before**
the checkout holds it.

`berth run` records the remote's description in the checkout (`berth.*` keys of its
`.git/config`: branch, desired path, HTTPS user name, the paths of the SSH key, known_hosts
and allowed-signers files), never a token: `berth deploy --commit` run later on that
checkout reads it and needs only the token again (BERTH_GIT_TOKEN or --git-token-file).

`commit_files` builds the commit with plumbing (a temporary index, `hash-object`,
`write-tree`, `commit-tree`) on top of HEAD without touching the work tree, HEAD or the
index, so a push the remote refuses leaves the checkout exactly as it was: no local commit
ahead of the remote (the daemon's sync refuses a checkout that is ahead), no tag the
daemon could see before the remote has it. Failures become GitError.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from controller.adapters import git_remote as g
from controller.adapters.git import GitError, first_line, identity_args

_KEYS = {  # field -> git config key (all under berth.)
    "branch": "berth.branch",
    "path": "berth.path",
    "username": "berth.username",
    "ssh_key": "berth.sshKey",
    "known_hosts": "berth.knownHosts",
    "signers": "berth.allowedSigners",
}


@dataclass(frozen=True)
class Followed:
    """What a Berth checkout follows, as `berth run` recorded it (no secret in it)."""

    top: str  # the checkout's top directory
    url: str
    branch: str
    path: str
    username: str = "x-access-token"
    ssh_key: str | None = None
    known_hosts: str | None = None
    signers: str | None = None

    def remote(self, token: str | None) -> g.Remote:
        auth = g.Auth(token=token, username=self.username, ssh_key=self.ssh_key,
                      known_hosts=self.known_hosts, signers=self.signers)  # fmt: skip
        return g.Remote(self.url, self.branch, auth)


def _git(path: str, *args: str, data: bytes | None = None,
         env: Mapping[str, str] | None = None) -> str:  # fmt: skip
    try:
        out = subprocess.run(["git", "-C", path, *args], input=data, capture_output=True,
                             timeout=g.LOCAL_TIMEOUT, env=env, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"git {args[0]} failed: {exc}") from exc
    if out.returncode != 0:
        why = first_line(out.stderr.decode(errors="replace")) or f"exit {out.returncode}"
        raise GitError(f"git {args[0]} failed: {why}")
    return out.stdout.decode(errors="replace")


def record(checkout: str, followed: Followed) -> None:
    """Writes `followed` into the checkout's .git/config (a key for a None field removed)."""
    for name, key in _KEYS.items():
        value = getattr(followed, name)
        if value is not None:
            _git(checkout, "config", key, value)
        else:
            subprocess.run(["git", "-C", checkout, "config", "--unset-all", key],
                           capture_output=True, timeout=g.LOCAL_TIMEOUT, check=False)  # fmt: skip


def followed(path: str) -> Followed | None:
    """What the checkout holding `path` follows, when `berth run --git-url` made it (its
    .git/config has berth.branch); None for any other directory or repository."""
    try:
        top = _git(path, "rev-parse", "--show-toplevel").strip()
        lines = _git(top, "config", "--local", "--get-regexp", r"^(berth\.|remote\.origin\.url$)")
    except GitError:
        return None
    found: dict[str, str] = {}
    for line in lines.splitlines():
        key, _, value = line.partition(" ")
        found[key.lower()] = value
    branch, url = found.get("berth.branch"), found.get("remote.origin.url")
    if not branch or not url:
        return None
    values = {name: found.get(key.lower()) for name, key in _KEYS.items()}
    return Followed(
        top=top,
        url=url,
        branch=branch,
        path=values["path"] or "desired",
        username=values["username"] or "x-access-token",
        ssh_key=values["ssh_key"],
        known_hosts=values["known_hosts"],
        signers=values["signers"],
    )


def commit_files(top: str, files: Mapping[str, bytes], message: str) -> tuple[str, str]:
    """A commit on top of HEAD in which `files` (paths relative to `top`, each a regular
    file in HEAD) hold the given bytes; returns (HEAD, the new commit). Nothing of the
    checkout changes: the commit is only an object until it is pushed and fast-forwarded."""
    parent = _git(top, "rev-parse", "--verify", "HEAD^{commit}").strip()
    fd, index = tempfile.mkstemp(prefix="berth-index-", dir=_git_dir(top))
    os.close(fd)
    env = {**os.environ, "GIT_INDEX_FILE": index}
    try:
        _git(top, "read-tree", parent, env=env)
        for rel, data in sorted(files.items()):
            mode = _git(top, "ls-tree", parent, "--", rel).split(" ", 1)[0]
            if mode not in ("100644", "100755"):
                raise GitError(f"{rel} is not a regular file in commit {parent[:12]}")
            blob = _git(top, "hash-object", "-w", "--stdin", data=data).strip()
            _git(top, "update-index", "--cacheinfo", f"{mode},{blob},{rel}", env=env)
        tree = _git(top, "write-tree", env=env).strip()
    finally:
        os.unlink(index)
    sha = _git(top, *identity_args(top), "commit-tree", tree, "-p", parent,
               data=message.encode("utf-8")).strip()  # fmt: skip
    return parent, sha


def _git_dir(top: str) -> str:
    return os.path.join(top, _git(top, "rev-parse", "--git-dir").strip())
