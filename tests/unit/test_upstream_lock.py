"""The upstream file's lock also holds across processes (`berth run` and `berth apply`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controller.shell.rollout.upstream_file import _lock

TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def other_process_sees(directory: Path) -> str:
    res = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return res.stdout.strip()


def test_another_process_waits_while_the_upstream_file_is_being_changed(tmp_path: Path) -> None:
    path = tmp_path / "upstreams" / "upstreams.conf"
    with _lock(str(path)):
        assert other_process_sees(path.parent) == "busy"
    assert other_process_sees(path.parent) == "free"
    with _lock(str(path)):  # and it can be taken again
        assert other_process_sees(path.parent) == "busy"
