"""`berth deploy/rollback --commit` when desired/ is Berth's own checkout of a remote
(`berth run --git-url`, docs/git-source.md#writing-back): the edit becomes a commit on top
of the checkout's HEAD, is pushed to the followed branch, and only then does the checkout
move to it (`git merge --ff-only`), which is also what the daemon's next sync would do.

A push the remote refuses (it moved meanwhile, a protected branch, a hook) leaves the
checkout and desired/ exactly as they were: nothing is ever committed locally before the
remote has it, so the daemon never runs an unpushed tag and its sync is never blocked by a
local commit ahead of the remote. Never a force push.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from controller.adapters import desired_write, git
from controller.adapters import git_remote as g
from controller.adapters import git_writeback as w
from controller.core.gitsync import redact_url, short
from controller.shell.desired_edit import UNCHANGED, DeployError


def managed(desired: str) -> w.Followed | None:
    """What the checkout holding `desired` follows, when Berth's `run --git-url` made it."""
    if not os.path.isdir(desired):
        return None
    return w.followed(desired)


def refuse_without_commit(f: w.Followed) -> DeployError:
    return DeployError(
        f"desired/ is Berth's checkout of {redact_url(f.url)} ({f.branch}): an edit there "
        "must be committed and pushed, or the next sync would find it in the way; add "
        f"--commit (it pushes), or push a commit to the repository yourself; {UNCHANGED}"
    )


def check(f: w.Followed, token: str | None) -> None:
    """What is known to make the push pointless or impossible, before anything is built."""
    if f.signers is not None:
        raise DeployError(
            f"the checkout follows {redact_url(f.url)} with --git-allowed-signers: every new "
            "tip must be signed by an allowed signer and Berth does not sign its commits; "
            f"push a signed commit to the repository instead; {UNCHANGED}"
        )
    if token is None and f.ssh_key is None and f.url.startswith(("http://", "https://")):
        print("berth: no git token (BERTH_GIT_TOKEN or --git-token-file): pushing without "
              "credentials", file=sys.stderr)  # fmt: skip


def commit_and_push(
    f: w.Followed,
    token: str | None,
    expected: Mapping[str, str],
    new: Mapping[str, str],
    message: str,
) -> str:
    """Commit `new` (desired files by path, their new texts) on top of HEAD, push it, move
    the checkout to it; returns the commit. `expected`: the sha256 of every file as it was
    read (desired_edit.Snapshot.hashes), re-checked under the desired/ lock."""
    remote = f.remote(token)
    rel = {os.path.relpath(os.path.realpath(p), f.top): t.encode("utf-8") for p, t in new.items()}
    desired = os.path.join(f.top, f.path)
    with desired_write.locked(desired):
        _unchanged_since_read(f, expected, list(new))
        head, sha = _commit(f, rel, message)
        try:
            g.push(remote, f.top, sha)
        except g.PushRejected as exc:
            raise DeployError(
                f"{exc}. Nothing was committed: the checkout stays at {short(head)} and "
                "desired/ is unchanged"
            ) from exc
        except git.GitError as exc:
            raise DeployError(f"{exc}; the checkout stays at {short(head)}; {UNCHANGED}") from exc
        try:
            g.fast_forward(remote, f.top, sha)
        except git.GitError as exc:
            print(f"berth: pushed {short(sha)}, but moving the checkout failed ({exc}); the "
                  "daemon's next sync moves it", file=sys.stderr)  # fmt: skip
    return sha


def _commit(f: w.Followed, files: Mapping[str, bytes], message: str) -> tuple[str, str]:
    try:
        return w.commit_files(f.top, files, message)
    except git.GitError as exc:
        raise DeployError(f"--commit: {exc}; {UNCHANGED}") from exc


def _unchanged_since_read(f: w.Followed, expected: Mapping[str, str], files: list[str]) -> None:
    """The files still hold what was read, and that is what HEAD holds (no local change
    that the commit would silently drop or publish)."""
    for path in files:
        with open(path, "rb") as fh:
            if desired_write.sha256(fh.read()) != expected.get(path):
                raise DeployError(f"{path} changed since it was read; {UNCHANGED}")
    real = [os.path.realpath(p) for p in files]
    if git.has_local_changes(f.top, real):
        raise DeployError(
            f"--commit: {', '.join(files)} differs from the checkout's commit (edited by "
            f"hand?); Berth's checkout must hold exactly what the remote has; {UNCHANGED}"
        )
