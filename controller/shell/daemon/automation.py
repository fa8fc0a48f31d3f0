"""Image-update automation in `berth run` (Flux image-automation's model, without
Kubernetes): per service with `x-berth.update`, scan the registry's tag list on its
interval, choose by the policy (core/imageupdate.py), and write the chosen tag into
desired/ as a git commit. The rollout then happens as for any commit: the file watcher (a
local desired/) or the next sync (a remote git source) brings it in.

Where the commit goes:
- a local desired/ in git: committed on the checked-out branch (the same all-or-nothing
  edit as `berth deploy --commit`), then pushed when that branch tracks a remote;
- a remote git source (`--git-url`): made beside Berth's checkout on top of the synced
  commit and pushed to the tracked branch, never forced; the sync then fast-forwards to it;
- `branch:` in the policy: proposed on that branch (rebuilt on the current tip each time,
  pushed where there is a remote) and not rolled out until someone merges it. Berth
  replaces that branch only where it left it (its last proposal is remembered under
  refs/berth/proposals/; pushes use --force-with-lease): a branch somebody else made or
  pushed to is never overwritten.

Tags that are quarantined for the service are skipped; a tag below the current one is never
chosen (core/imageupdate.py). A failed scan or write is logged and counted, and tried
again at the next interval: automation never blocks a reconcile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from controller.adapters import git, git_remote
from controller.adapters import git_writeback as gw
from controller.adapters.registry import split_reference
from controller.core.config import Config
from controller.core.imageupdate import UpdatePolicy, choose
from controller.core.model import Target
from controller.errors import BerthError
from controller.shell.daemon.image_metrics import ImageMetrics
from controller.shell.desired_edit import (
    Change,
    Snapshot,
    Want,
    apply_edit,
    changes_for,
    edited_texts,
    message_for,
    read_snapshot,
)
from controller.shell.wiring import Context

log = logging.getLogger("berth.update")
TICK = 1.0


@dataclass
class Scan:
    """The last scan of one service (/status/updates)."""

    at: float
    current: str
    chosen: str | None
    error: str | None = None
    commit: str | None = None
    wall: float = field(default_factory=time.time)


class ImageAutomation:
    def __init__(
        self,
        ctx: Context,
        config: Callable[[], Config | None],
        metrics: ImageMetrics,
        stopping: threading.Event,
        *,
        request_sync: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx, self._config, self.metrics, self.stopping = ctx, config, metrics, stopping
        self._request_sync, self._clock = request_sync, clock
        self._due: dict[str, float] = {}
        self._proposed: dict[str, str] = {}
        self.scans: dict[str, Scan] = {}

    def status(self) -> list[dict[str, object]]:
        """/status/updates: per service with x-berth.update, its last scan: when, the tag in
        desired/ then, the tag chosen (None: nothing newer), the commit, the error."""
        out = []
        for key, scan in sorted(self.scans.items()):
            project, _, service = key.partition("/")
            doc = {k: v for k, v in asdict(scan).items() if k not in ("at", "wall")}
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(scan.wall))
            out.append({"project": project, "service": service, "scanned_at": at, **doc})
        return out

    def run(self) -> None:
        while not self.stopping.wait(TICK):
            try:
                self.tick()
            except Exception:  # a bug must not end the loop silently
                log.exception("image update: scan loop failed")

    def tick(self) -> None:
        cfg = self._config()
        if cfg is None:
            return
        now = self._clock()
        for t in cfg.targets:
            policy = t.spec.berth.update
            want = cfg.desired.get(t.project)
            if policy is None or want is None or t.service not in want.services:
                continue
            if self._due.get(t.key, 0.0) > now:
                continue
            self._due[t.key] = now + policy.interval
            self.metrics.known_update(t.project, t.service)
            self.scan(t, policy, want.services[t.service].tag)

    def scan(self, t: Target, policy: UpdatePolicy, current: str) -> Scan:
        name, _, _ = split_reference(t.spec.image)
        repo = f"{name.registry}/{name.repository}"
        mine = (t.project, t.service)
        bad = self.ctx.store.quarantined()
        skip = frozenset(q.tag for q in bad if (q.project, q.service) == mine)
        try:
            tags = self.ctx.registry.tags(repo)
        except BerthError as exc:
            self.metrics.scan(t.project, t.service, ok=False)
            log.warning("image update: cannot list tags of %s: %s", repo, exc, extra=_where(t))
            return self._keep(t, Scan(self._clock(), current, None, error=str(exc)))
        self.metrics.scan(t.project, t.service, ok=True)
        chosen = choose(tags, policy, current=current, allowed=t.spec.berth.allowed_tags, skip=skip)
        scan = Scan(self._clock(), current, chosen)
        if chosen is None or self._proposed.get(t.key) == chosen:
            return self._keep(t, scan)
        try:
            scan.commit = self._write(t, policy, chosen, repo, len(tags))
        except BerthError as exc:
            scan.error = str(exc)
            self.metrics.update(t.project, t.service, "error")
            log.error("image update: %s -> %s not written: %s", current, chosen, exc,
                      extra=_where(t))  # fmt: skip
            self._due[t.key] = self._clock() + min(policy.interval, 30.0)
        return self._keep(t, scan)

    def _keep(self, t: Target, scan: Scan) -> Scan:
        self.scans[t.key] = scan
        return scan

    # -- writing the tag -------------------------------------------------------------------

    def _write(self, t: Target, policy: UpdatePolicy, tag: str, repo: str, n: int) -> str | None:
        snap = read_snapshot(self.ctx)
        changes = changes_for(snap, [Want(t.project, t.service, tag)])
        if not changes:
            return None
        how = f"semver {policy.semver}" if policy.semver else f"pattern {policy.pattern}"
        extra = f"Chosen by x-berth.update ({how}) from {n} tag(s) of {repo}."
        msg = message_for("image update", changes, None, extra)
        src = self.ctx.git
        if src is not None:
            branch = policy.branch if policy.branch and policy.branch != src.branch else None
            sha = self._commit_beside(src.checkout, snap, changes, msg)
            if branch is None:
                git_remote.push(src.remote, src.checkout, sha)
                return self._done(t, tag, sha, proposed=None, pushed=True)
            lease = git.last_proposal(src.checkout, branch) or ""
            git_remote.push(replace(src.remote, branch=branch), src.checkout, sha, lease=lease)
            git.remember_proposal(src.checkout, branch, sha)
            return self._done(t, tag, sha, proposed=branch, pushed=True)
        desired = self.ctx.desired
        if policy.branch and policy.branch != git.current_branch(desired):
            last = git.last_proposal(desired, policy.branch)
            sha = self._commit_beside(desired, snap, changes, msg)
            git.set_branch(desired, policy.branch, sha, expected=last)
            git.remember_proposal(desired, policy.branch, sha)
            pushed = git.upstream(desired) is not None
            if pushed:
                ref = f"refs/heads/{policy.branch}"
                git.push_tracking(desired, f"{ref}:{ref}", lease=last or "")
            return self._done(t, tag, sha, proposed=policy.branch, pushed=pushed)
        in_git = git.is_repo(desired)
        _, made = apply_edit(self.ctx, snap, changes, commit=in_git, message=msg)
        pushed = in_git and git.upstream(desired) is not None
        if pushed:
            git.push_tracking(desired, "HEAD")
        return self._done(t, tag, made, proposed=None, pushed=pushed)

    def _commit_beside(self, repo: str, snap: Snapshot, changes: list[Change], msg: str) -> str:
        """The edit as a commit on top of HEAD that moves nothing (git_writeback)."""
        texts = edited_texts(snap, changes)  # validated as a whole configuration
        top = git.toplevel(repo)
        rel = {os.path.relpath(os.path.realpath(f), top): t.encode() for f, t in texts.items()}
        return gw.commit_files(top, rel, msg)[1]

    def _done(
        self, t: Target, tag: str, sha: str | None, *, proposed: str | None, pushed: bool
    ) -> str | None:
        where = f"proposed on {proposed}" if proposed else "committed"
        log.info("image update: %s %s (%s)%s", where, tag, (sha or "no git")[:12],
                 ", pushed" if pushed else "", extra=_where(t))  # fmt: skip
        self.metrics.update(t.project, t.service, "proposed" if proposed else "committed")
        if proposed:
            self._proposed[t.key] = tag
        elif self._request_sync is not None and self.ctx.git is not None:
            self._request_sync()  # the remote has it now: bring it into the checkout
        return sha


def _where(t: Target) -> dict[str, str]:
    return {"stack": t.project, "service": t.service}
