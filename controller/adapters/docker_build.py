"""The ImageBuilder port on the Engine API's `POST /build` (docker SDK, classic builder).

The SDK's own helpers choose the files (`exclude_paths`: `.dockerignore` semantics) and
pack them (`create_archive`); Berth packs the context itself rather than letting
`APIClient.build(path=...)` do it so that it can (1) leave desired/ out of a context that
holds it and (2) hash exactly what is sent. The hash (file names, modes, contents, symlink
targets, the Dockerfile and the build options) is written on the image as a label, so a
second tag of an unchanged context is a `docker tag`, not a build.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterable
from typing import Any

from docker.utils import parse_repository_tag
from docker.utils.build import create_archive, exclude_paths

from controller.adapters._docker_errors import translated
from controller.adapters.git import head_commit
from controller.core.model import BuildSpec
from controller.errors import ImageBuildError
from controller.ports import BuildReport

LABEL_CONTEXT_HASH = "berth.build.context-hash"
LABEL_REVISION = "org.opencontainers.image.revision"
TAIL_LINES = 20
BUILD_TIMEOUT = 3600.0  # one read of the build stream; a RUN step may be silent for long
_INLINE = ".dockerfile.berth-inline"


def _ignore_patterns(context: str, exclude: Iterable[str]) -> list[str]:
    """`.dockerignore` plus the excluded directories (desired/). A `.dockerignore` that
    resolves outside the context or into an excluded directory is refused: desired/'s
    writers must not choose which files an image gets."""
    excluded = [p.rstrip("/") for p in exclude]
    path = os.path.join(context, ".dockerignore")
    real, root = os.path.realpath(path), os.path.realpath(context)
    rel = os.path.relpath(real, root)
    if rel.startswith("..") or any(rel == e or rel.startswith(e + "/") for e in excluded):
        raise ImageBuildError(f"{path} resolves to {real}, outside what the build may read")
    patterns: list[str] = []
    try:
        with open(path, encoding="utf-8") as fh:
            patterns = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        pass
    return patterns + excluded


def _dockerfile(spec: BuildSpec) -> tuple[str, str | None]:
    """(name inside the context, content to add) — content only when it is not a context
    file: inline, or a Dockerfile that compose points at outside the context."""
    if spec.dockerfile_inline is not None:
        return _INLINE, spec.dockerfile_inline
    full = os.path.normpath(os.path.join(spec.context, spec.dockerfile))
    rel = os.path.relpath(full, spec.context)
    if rel.startswith(".."):
        with open(full, encoding="utf-8") as fh:
            text = fh.read()
        return f".dockerfile.{hashlib.sha256(text.encode()).hexdigest()[:16]}", text
    return rel, None


def _options(spec: BuildSpec) -> dict[str, Any]:
    return {
        "args": list(spec.args),
        "target": spec.target,
        "labels": list(spec.labels),
        "network": spec.network,
        "shm_size": spec.shm_size,
        "extra_hosts": list(spec.extra_hosts),
    }


def context_hash(spec: BuildSpec, files: Iterable[str], dockerfile: tuple[str, str | None]) -> str:
    """What a build depends on: every file sent (name, type, mode, content), the Dockerfile
    and the options. mtimes are left out: a fresh checkout of the same tree hashes alike."""
    h = hashlib.sha256()
    h.update(json.dumps([dockerfile, _options(spec)], sort_keys=True).encode())
    for rel in sorted(files):
        full = os.path.join(spec.context, rel)
        st = os.lstat(full)
        h.update(f"\0{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(full).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()


class DockerBuilder:
    """ImageBuilder on one Docker engine."""

    def __init__(self, client: Callable[[], Any]) -> None:
        """`client`: the engine's APIClient, when first needed (DockerRuntime's, shared: one
        connection pool, one place that connects and translates a missing engine)."""
        self._client = client

    @property
    def _api(self) -> Any:
        return self._client()

    def build(self, spec: BuildSpec, ref: str, *, on_line: Callable[[str], None]) -> BuildReport:
        t0 = time.monotonic()
        try:
            dockerfile = _dockerfile(spec)
            patterns = _ignore_patterns(spec.context, spec.exclude)
            files = sorted(exclude_paths(spec.context, patterns, dockerfile=dockerfile[0]))
            digest = context_hash(spec, files, dockerfile)
        except OSError as exc:
            raise ImageBuildError(f"build context {spec.context}: {exc}") from exc
        repo, tag = parse_repository_tag(ref)
        with translated(f"images labelled {LABEL_CONTEXT_HASH}"):
            found = self._api.images(filters={"label": f"{LABEL_CONTEXT_HASH}={digest}"})
        if found and not spec.no_cache:
            with translated(f"tag {ref}"):
                self._api.tag(found[0]["Id"], repo, tag or "latest", force=True)
            on_line(f"context {digest[:12]} was built before: tagged {ref}")
            return BuildReport(found[0]["Id"], digest, True, time.monotonic() - t0)
        image_id = self._build(spec, ref, files, dockerfile, digest, on_line)
        return BuildReport(image_id, digest, False, time.monotonic() - t0)

    def _build(
        self,
        spec: BuildSpec,
        ref: str,
        files: list[str],
        dockerfile: tuple[str, str | None],
        digest: str,
        on_line: Callable[[str], None],
    ) -> str:
        extra = [(dockerfile[0], dockerfile[1])] if dockerfile[1] is not None else []
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            archive = create_archive(spec.context, files=files, extra_files=extra)
        except OSError as exc:
            raise ImageBuildError(f"build context {spec.context}: {exc}") from exc
        with archive, translated(f"build {ref}"):
            stream = self._api.build(
                fileobj=archive,
                custom_context=True,
                tag=ref,
                dockerfile=dockerfile[0],
                buildargs=dict(spec.args) or None,
                target=spec.target,
                labels=self._labels(spec, digest),
                cache_from=list(spec.cache_from) or None,
                network_mode=spec.network,
                shmsize=spec.shm_size,
                extra_hosts=dict(spec.extra_hosts) or None,
                nocache=spec.no_cache,
                pull=spec.pull,
                rm=True,
                forcerm=True,
                decode=True,
                timeout=BUILD_TIMEOUT,
            )
            for chunk in stream:
                self._chunk(chunk, tail, on_line)
        with translated(f"inspect image {ref}"):
            return str(self._api.inspect_image(ref)["Id"])

    @staticmethod
    def _labels(spec: BuildSpec, digest: str) -> dict[str, str]:
        """The compose labels, the context hash, and the commit the context was checked out
        at (when it is a git checkout), so `docker inspect` tells what a tag was built from."""
        labels = {**dict(spec.labels), LABEL_CONTEXT_HASH: digest}
        commit = head_commit(spec.context)
        if commit is not None:
            labels.setdefault(LABEL_REVISION, commit)
        return labels

    @staticmethod
    def _chunk(chunk: Any, tail: collections.deque[str], on_line: Callable[[str], None]) -> None:
        if not isinstance(chunk, dict):
            return
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message", "")
            log = "\n".join(tail)
            raise ImageBuildError(f"{str(detail).strip()}\n--- last build output ---\n{log}")
        for line in str(chunk.get("stream") or "").splitlines():
            if line.strip():
                tail.append(line.rstrip())
                on_line(line.rstrip())
