"""Running the real `berth` command line from tests (a separate process, as users run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def berth_cmd(desired: Path, state: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "controller",
        "--desired",
        str(desired),
        "--state-dir",
        str(state),
        *args,
    ]


def berth(desired: Path, state: Path, *args: str, timeout: float = 180) -> Result:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.run(
        berth_cmd(desired, state, *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return Result(p.returncode, p.stdout, p.stderr)


def popen_berth(desired: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        berth_cmd(desired, state, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
