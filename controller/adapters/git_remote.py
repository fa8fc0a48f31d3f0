"""A remote git repository as Berth's source of desired state: clone, fetch, the facts a
sync is judged on (`core/gitsync.py`), the fast-forward, signature verification, and push.

Credentials never touch the command line, the logs or `.git/config`:
- an HTTPS token goes in an `Authorization: Basic` header given per command through
  git's GIT_CONFIG_COUNT/GIT_CONFIG_KEY_n/GIT_CONFIG_VALUE_n environment (not visible in
  `ps`, not written anywhere), scoped to the remote's origin (`http.<origin>/.extraHeader`)
  so a redirect to another host does not carry it;
- an SSH deploy key goes in GIT_SSH_COMMAND with IdentitiesOnly and
  StrictHostKeyChecking=yes against the given known_hosts file;
- git never prompts (GIT_TERMINAL_PROMPT=0), and every message that leaves this module has
  the token replaced, should git ever echo it.
Failures become GitError; nothing here decides policy.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from controller.adapters.git import GitError, first_line
from controller.core.gitsync import CommitFacts, redact_url

FETCH_TIMEOUT = 120.0  # seconds a clone, fetch or push may take
LOCAL_TIMEOUT = 30.0


class PushRejected(GitError):
    """The remote refused the push (it moved meanwhile: not a fast-forward, or a hook)."""


@dataclass(frozen=True)
class Auth:
    """How to reach the remote. `token`: HTTPS (basic auth, `username` + token as password);
    `ssh_key`/`known_hosts`: SSH with a deploy key."""

    token: str | None = None
    username: str = "x-access-token"
    ssh_key: str | None = None
    known_hosts: str | None = None
    signers: str | None = None  # allowed signers file (gpg.format=ssh)
    extra: Mapping[str, str] = field(default_factory=dict)

    def env(self, url: str) -> dict[str, str]:
        """The environment of a git command that talks to `url`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", SSH_ASKPASS="true", LC_ALL="C")
        config: list[tuple[str, str]] = [("protocol.ext.allow", "never")]
        if self.token is not None:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/"
            cred = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
            config.append((f"http.{origin}.extraHeader", f"Authorization: Basic {cred}"))
        if self.signers is not None:
            config += [("gpg.format", "ssh"), ("gpg.ssh.allowedSignersFile", self.signers)]
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env["GIT_CONFIG_COUNT"] = str(len(config))
        if self.ssh_key is not None:
            ssh = ["ssh", "-i", self.ssh_key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
            ssh += ["-o", "StrictHostKeyChecking=yes"]
            if self.known_hosts is not None:
                ssh += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        env.update(self.extra)
        return env

    def scrub(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "***")
            cred = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
            text = text.replace(cred, "***")
        return text


_CHANGED = re.compile(r"^Host key for (\S+) has changed", re.M)
_UNKNOWN = re.compile(r"^No \S+ host key is known for (\S+)", re.M)
_FINGERPRINT = re.compile(r"sent by the remote host is\s+(\S+?)\.?$", re.M)
_DENIED = re.compile(r"^\S+: Permission denied \(([^)]*)\)\.?$", re.M)


def ssh_problem(stderr: str, auth: Auth) -> str | None:
    """What ssh said, in one line that names the cause, when it refused the connection: a
    host key that does not match the known_hosts file (ssh's first lines are a banner of
    @), a host not in it, the deploy key refused. None for anything else."""
    hosts = f"--git-known-hosts {auth.known_hosts}" if auth.known_hosts else "known_hosts"
    if m := _CHANGED.search(stderr):
        fp = _FINGERPRINT.search(stderr)
        seen = f" (it sent {fp.group(1)})" if fp else ""
        return (
            f"ssh: the host key of {m.group(1)}{seen} does not match {hosts}; refused "
            "(StrictHostKeyChecking: a man in the middle, or the key changed: check the "
            "fingerprint out of band, then update the file)"
        )
    if m := _UNKNOWN.search(stderr):
        return (
            f"ssh: no host key is known for {m.group(1)} in {hosts}; refused "
            "(StrictHostKeyChecking, never trusted on first use: add it with ssh-keyscan "
            "and check its fingerprint)"
        )
    if m := _DENIED.search(stderr):
        key = f"the deploy key {auth.ssh_key}" if auth.ssh_key else "ssh"
        return (
            f"ssh: Permission denied ({m.group(1)}): {key} was refused (is its public key "
            "a deploy key of the repository, with write access for a push?)"
        )
    return None


@dataclass(frozen=True)
class Remote:
    url: str
    branch: str
    auth: Auth

    @property
    def ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    def call(
        self, path: str, *args: str, timeout: float = LOCAL_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """git in `path` with this remote's environment; a hang or a missing git raises."""
        try:
            return subprocess.run(
                ["git", "-C", path, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.auth.env(self.url),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {timeout:.0f}s") from exc
        except OSError as exc:
            raise GitError(f"git {args[0]} failed: {exc}") from exc

    def run(self, path: str, *args: str, timeout: float = LOCAL_TIMEOUT) -> str:
        """`call`, and a non-zero exit becomes GitError (scrubbed of the token)."""
        out = self.call(path, *args, timeout=timeout)
        if out.returncode != 0:
            why = ssh_problem(out.stderr, self.auth) or first_line(out.stderr)
            why = why or first_line(out.stdout) or f"exit {out.returncode}"
            raise GitError(self.auth.scrub(f"git {args[0]} failed: {why}"))
        return out.stdout


def clone(remote: Remote, dest: str) -> str:
    """A fresh checkout of the branch at `dest` (built next to it, then renamed into place,
    so a failed clone leaves nothing half-made); returns its HEAD."""
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    tmp = f"{dest}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        remote.run(parent, "init", "-q", "-b", remote.branch, tmp)
        remote.run(tmp, "remote", "add", "origin", remote.url)
        tip = fetch(remote, tmp)
        remote.run(tmp, "checkout", "-q", "-B", remote.branch, tip)
        remote.run(tmp, "branch", "-q", f"--set-upstream-to=origin/{remote.branch}")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tip


def origin_url(path: str) -> str | None:
    out = subprocess.run(
        ["git", "-C", path, "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        timeout=LOCAL_TIMEOUT,
        check=False,
    )
    return out.stdout.strip() or None


def fetch(remote: Remote, path: str) -> str:
    """Fetch the branch into refs/remotes/origin/BRANCH (no tags, no other refs); returns
    the remote tip."""
    spec = f"+refs/heads/{remote.branch}:{remote.ref}"
    remote.run(path, "fetch", "-q", "--no-tags", "--no-recurse-submodules", "origin", spec,
               timeout=FETCH_TIMEOUT)  # fmt: skip
    return remote.run(path, "rev-parse", "--verify", f"{remote.ref}^{{commit}}").strip()


def head(remote: Remote, path: str) -> str:
    return remote.run(path, "rev-parse", "--verify", "HEAD^{commit}").strip()


def is_ancestor(remote: Remote, path: str, old: str, new: str) -> bool:
    try:
        remote.run(path, "merge-base", "--is-ancestor", old, new)
    except GitError:
        return False
    return True


def commits_between(remote: Remote, path: str, old: str, new: str) -> list[CommitFacts]:
    """Every commit in old..new, oldest first, with the files it changes (merges: the
    files that differ from every parent, so an "evil merge" counts too)."""
    out = remote.run(
        path, "log", "--reverse", "--format=%x01%H", "--name-only", "--cc", "--no-renames",
        "-z", f"{old}..{new}",
    )  # fmt: skip
    facts = []
    for chunk in out.split("\x01")[1:]:
        sha, _, rest = chunk.partition("\x00")
        paths = tuple(p.strip("\n") for p in rest.split("\x00") if p.strip("\n"))
        facts.append(CommitFacts(sha.strip(), paths))
    return facts


def verified(remote: Remote, path: str, sha: str) -> bool:
    """Whether `sha` carries a signature of an allowed signer (git verify-commit with
    gpg.format=ssh and the allowed signers file of `remote.auth`)."""
    if remote.auth.signers is None:
        return False
    try:
        remote.run(path, "verify-commit", sha)
    except GitError:
        return False
    return True


def fast_forward(remote: Remote, path: str, sha: str) -> None:
    """Move the checkout to `sha`, the commit that was judged (never re-resolved)."""
    remote.run(path, "merge", "-q", "--ff-only", sha)


def push(remote: Remote, path: str, rev: str = "HEAD", *, lease: str | None = None) -> None:
    """Push `rev` (a commit already made in the checkout: HEAD by default) to the remote
    branch. Never a force push: a remote that moved meanwhile raises PushRejected.

    `lease` is for a proposal branch that Berth rebuilds each time: the branch may be
    replaced only if it is exactly where Berth left it (`--force-with-lease`; "" = it must
    not exist yet), so a branch somebody else owns or pushed to is never overwritten."""
    ref = f"refs/heads/{remote.branch}"
    args = [f"--force-with-lease={ref}:{lease}"] if lease is not None else []
    out = remote.call(path, "push", *args, "origin", f"{rev}:{ref}", timeout=FETCH_TIMEOUT)
    if out.returncode == 0:
        return
    lines = [ln.strip() for ln in out.stderr.splitlines()]
    rejected = next((ln for ln in lines if ln.startswith("! [")), None)
    if rejected is not None and lease is not None:
        raise PushRejected(remote.auth.scrub(
            f"push to {redact_url(remote.url)} {remote.branch} refused ({rejected}): that "
            "branch is not where Berth's last proposal left it (somebody else owns or moved "
            "it); it is never overwritten. Choose another x-berth.update.branch"
        ))  # fmt: skip
    if rejected is not None:
        raise PushRejected(remote.auth.scrub(
            f"push to {redact_url(remote.url)} {remote.branch} rejected ({rejected}): the "
            "remote branch moved or refused it; never forced. Let the sync fetch, then commit again"
        ))  # fmt: skip
    why = ssh_problem(out.stderr, remote.auth)
    why = why or next((ln for ln in lines if ln and not ln.startswith(("To ", "hint:"))), "")
    raise GitError(remote.auth.scrub(f"git push failed: {why or out.returncode}"))
