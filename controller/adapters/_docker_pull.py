"""A pull's progress stream, summed up; and its error text, said plainly.

The engine reports a pull as JSON lines per layer ("Pulling fs layer", "Downloading" with
`progressDetail` {current, total}, "Download complete", "Pull complete", "Already exists").
PullMeter keeps one figure per layer and hands the total to the caller at most every
`every` seconds, and once at the end, so a log or a terminal gets a line a second, not one
per 512 KiB.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from docker.utils import parse_repository_tag

from controller.adapters._docker_errors import translated
from controller.errors import ContainerRuntimeError, ImagePullError, TemporaryError, printable
from controller.ports import PullProgress

_DONE = ("Pull complete", "Already exists")


class PullMeter:
    def __init__(
        self, progress: Callable[[PullProgress], None] | None, *, every: float = 1.0
    ) -> None:
        self._progress, self._every = progress, every
        self._layers: dict[str, tuple[int, int, bool]] = {}  # id -> (current, total, done)
        self._last = time.monotonic()

    def feed(self, chunk: Any) -> None:
        if self._progress is None or not isinstance(chunk, Mapping):
            return
        layer, status = chunk.get("id"), str(chunk.get("status") or "")
        if not isinstance(layer, str) or not layer or status.startswith(("Pulling from", "Digest")):
            return
        current, total, done = self._layers.get(layer, (0, 0, False))
        detail = chunk.get("progressDetail") or {}
        if status == "Downloading" and isinstance(detail, Mapping):
            current = _int(detail.get("current"), current)
            total = _int(detail.get("total"), total)
        elif status == "Download complete":
            current = max(current, total)
        done = done or status in _DONE
        self._layers[layer] = (current, total, done)
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._progress(self.summary())

    def summary(self) -> PullProgress:
        vals = self._layers.values()
        return PullProgress(
            layers_done=sum(1 for _, _, d in vals if d),
            layers=len(self._layers),
            downloaded=sum(c for c, _, _ in vals),
            total=sum(t for _, t, _ in vals),
        )


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value >= 0 else default


def explain_pull(error: object) -> str:
    """The engine's error line with the likely cause in front: the stream carries no status
    code, only the registry's words (Berth asks the registry itself first, so this is the
    rarer path: a pull that fails after the tag resolved)."""
    text = printable(str(error))[:500]
    low = text.lower()
    if "unauthorized" in low or "no basic auth credentials" in low or "denied" in low:
        return f"the registry refused the credentials (check `docker login`): {text}"
    if "manifest unknown" in low or "not found" in low:
        return f"no such tag or repository in the registry: {text}"
    if "certificate" in low or "x509" in low:
        return f"the registry's TLS certificate is not trusted: {text}"
    if any(w in low for w in ("connection refused", "no such host", "timeout", "eof", "reset")):
        return f"the registry is unreachable: {text}"
    return text


def stream_pull(
    api: Any,
    ref: str,
    *,
    platform: str | None,
    progress: Callable[[PullProgress], None] | None,
) -> None:
    """The Engine API's pull of `ref`, its stream metered, its errors said plainly
    (ImagePullError; TemporaryError when the engine itself is unreachable)."""
    repo, tag = parse_repository_tag(ref)
    meter = PullMeter(progress)
    try:
        with translated(f"pull {ref}"):
            api.reload_config()
            for chunk in api.pull(
                repo, tag=tag or "latest", stream=True, decode=True, platform=platform
            ):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise ImagePullError(f"pull {ref}: {explain_pull(chunk['error'])}")
                meter.feed(chunk)
    except (TemporaryError, ImagePullError):
        raise
    except ContainerRuntimeError as exc:
        raise ImagePullError(explain_pull(exc), retry=exc.retry, delay=exc.delay) from exc
    if progress is not None:
        progress(meter.summary())
