"""What `berth run --git-*` asked for: the remote, the branch, desired/'s path in it, the
checkout Berth owns, credentials and policy (docs/git-source.md). Built and checked by the
CLI (cli/git_args.py), composed in wiring.py, run by the daemon (daemon/gitsync.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from controller.adapters import git_remote as g
from controller.core.gitsync import Policy


@dataclass(frozen=True)
class GitSource:
    """What `berth run --git-*` asked for (built by the CLI, checked there)."""

    url: str
    branch: str
    path: str  # desired/ inside the repository, normalised (core.gitsync.git_path)
    interval: float
    checkout: str
    auth: g.Auth
    trust_repo: bool = False
    webhook_secret: bytes | None = None
    max_body: int = 1024 * 1024

    @property
    def remote(self) -> g.Remote:
        return g.Remote(self.url, self.branch, self.auth)

    @property
    def policy(self) -> Policy:
        return Policy(self.path, self.trust_repo, self.auth.signers is not None)

    @property
    def desired(self) -> str:
        return os.path.join(self.checkout, self.path)
