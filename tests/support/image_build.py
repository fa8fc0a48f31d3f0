"""Building test images without a registry: a build from an in-memory context, a recipe
label that says whether an image is current, a lock so that parallel processes build an
image once, and a cached debootstrap rootfs (the base image of tests/support/images.py and
the swarm node image of tests/support/swarm_node.py share it)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

RECIPE_LABEL = "berth.test.recipe"
ROOTFS_CACHE = Path(os.environ.get("BERTH_ROOTFS_CACHE", "/var/cache/berth-rootfs"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_LOCK_DIR = Path(tempfile.gettempdir())


def client_of(client: Any | None) -> Any:
    return client if client is not None else docker.from_env(timeout=300)


@contextlib.contextmanager
def build_lock(name: str) -> Iterator[None]:
    """Serialise builds of one image across processes (pytest-xdist, parallel CI jobs)."""
    path = _LOCK_DIR / f"berth-test-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def current_recipe(client: Any, ref: str) -> str | None:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    value = labels.get(RECIPE_LABEL)
    return value if isinstance(value, str) else None


def build_context(client: Any, context: io.BytesIO, ref: str, labels: Mapping[str, str]) -> None:
    try:
        client.images.build(
            fileobj=context,
            custom_context=True,
            tag=ref,
            labels=dict(labels),
            rm=True,
            forcerm=True,
            pull=False,
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)
        raise RuntimeError(f"building {ref} failed: {exc}\n{log}") from exc


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses for bookworm (debootstrap fetches from it)."""
    candidates: list[Path] = []
    main_list = sources / "sources.list"
    if main_list.is_file():
        candidates.append(main_list)
    parts = sources / "sources.list.d"
    if parts.is_dir():
        candidates.extend(sorted(parts.glob("*.list")) + sorted(parts.glob("*.sources")))
    for path in candidates:
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if "bookworm" not in fields.get("suites", "").split():
                    continue
                uris = fields.get("uris", "").split()
                if uris:
                    return uris[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
                    return words[1]
    return DEFAULT_MIRROR


# What a slim rootfs leaves out: nothing a program reads at run time.
SLIM_REMOVED = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/debconf",
    "var/cache/apt",
)


def rootfs_tarball(mirror: str, packages: tuple[str, ...], *, slim: bool = False) -> Path:
    """Debootstrap once and cache the rootfs as a tarball; later calls return the cache.

    The cache key is the package list, so other images (the swarm node image,
    tests/support/swarm_node.py) share the mechanism and the downloaded .debs.
    `slim`: without documentation, manual pages and translations, for an image that is
    pushed to a registry and pulled by every test swarm's nodes (its size is their time).
    """
    parts: list[object] = ["bookworm", "minbase", sorted(packages)]
    if slim:
        parts.append("slim")
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    tarball = ROOTFS_CACHE / f"bookworm-{key}.tar"
    if tarball.is_file():
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: run scripts/ensure-docker.sh")
    ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=ROOTFS_CACHE))
    try:
        rootfs = work / "rootfs"
        debs = ROOTFS_CACHE / "debs"
        debs.mkdir(exist_ok=True)
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            f"--cache-dir={debs}",
            "bookworm",
            str(rootfs),
            mirror,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-4000:] if log.is_file() else ""
            raise RuntimeError(
                f"debootstrap failed ({proc.returncode}): {proc.stderr[-4000:]}\n{detail}"
            )
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / sub).glob("*"):
                if item.is_file():
                    item.unlink()
        if slim:
            for sub in SLIM_REMOVED:
                for item in (rootfs / sub).glob("*"):
                    if item.is_dir() and not item.is_symlink():
                        shutil.rmtree(item)
                    else:
                        item.unlink()
        partial = work / "rootfs.tar"
        subprocess.run(
            [
                "tar",
                "-C",
                str(rootfs),
                "--numeric-owner",
                "--xattrs",
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "--exclude=./run/*",
                "--exclude=./tmp/*",
                "-cf",
                str(partial),
                ".",
            ],
            check=True,
        )
        os.replace(partial, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def tar_context(files: Mapping[str, tuple[bytes, int]]) -> io.BytesIO:
    """A build context in memory: name -> (bytes, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, bits) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = bits
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf
