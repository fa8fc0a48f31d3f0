"""The git facts Berth records: which commit of desired/ a rollout came from."""

from __future__ import annotations

import subprocess


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
