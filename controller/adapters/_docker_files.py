"""Compose secrets and configs with an `environment:` or `content:` source, as a tar for
`PUT /containers/{id}/archive` (what compose does: it writes them into the created
container before starting it, since there is no host file to bind-mount).

The archive holds one regular-file entry per file at its absolute target, relative to `/`,
and no directory entries: the engine creates a missing parent itself (root-owned, 0755,
moby pkg/archive), while a directory entry would re-chmod and re-chown an existing one
(a target in /tmp would take /tmp's sticky 1777 away). The content is a secret: it is in
the archive and nowhere else; nothing here logs or quotes it.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Sequence

from controller.core.model import InjectedFile
from controller.errors import ContainerRuntimeError, Retry


def archive(files: Sequence[InjectedFile], *, mtime: float | None = None) -> bytes:
    """An uncompressed tar of `files` (the Engine API also takes gzip; no need here)."""
    buf = io.BytesIO()
    stamp = int(time.time() if mtime is None else mtime)
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            if not f.target.startswith("/"):
                raise ContainerRuntimeError(
                    f"injected file target {f.target!r} is not absolute", retry=Retry.TERMINAL
                )
            data = f.content.encode()
            info = tarfile.TarInfo(f.target.lstrip("/"))
            info.size = len(data)
            info.mode = f.mode & 0o7777
            info.uid, info.gid = f.uid, f.gid
            info.mtime = stamp
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
