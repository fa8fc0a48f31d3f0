"""The executor's side of the image steps: a `Build` runs the ImageBuilder, a `Pull` the
runtime's pull; both report progress and answer the rollout machine with an event (None:
the image is there; BuildFailed / PullFailed: why)."""

from __future__ import annotations

from collections.abc import Callable

from controller.core import rollout as r
from controller.core.plan import ServiceAction
from controller.errors import ImageBuildError, ImagePullError
from controller.ports import ContainerRuntime, ImageBuilder, PullProgress
from controller.shell.rollout.results import Event


def build_image(
    builder: ImageBuilder,
    a: ServiceAction,
    image: str,
    emit: Callable[[Event], None],
    now: Callable[[], float],
) -> r.Event | None:
    def say(phase: str, message: str, seconds: float | None = None) -> None:
        emit(Event(a.project, a.service, phase, message, now(), build_seconds=seconds))

    spec = a.target.spec.build if a.target else None
    if spec is None:  # the machine asks only for services that build
        return r.BuildFailed(f"{a.service} has no build section")
    say("build", f"building {image} from {spec.context}")
    t0 = now()
    try:
        report = builder.build(spec, image, on_line=lambda line: say("build-log", line))
    except ImageBuildError as exc:
        text = str(exc)
        say("build-failed", text.splitlines()[0] if text else "build failed", now() - t0)
        return r.BuildFailed(text)
    if report.cached:
        say(
            "build-cached",
            f"{image}: tagged the earlier build of context {report.context_hash[:12]}",
            report.seconds,
        )
    else:
        say(
            "built",
            f"{image} in {report.seconds:.1f} s (context {report.context_hash[:12]})",
            report.seconds,
        )
    return None


def pull_image(
    runtime: ContainerRuntime,
    a: ServiceAction,
    image: str,
    emit: Callable[[Event], None],
    now: Callable[[], float],
) -> r.Event | None:
    """Pull before anything is touched (a stop-first service's old containers too): the
    progress goes out about once a second, the result as `pulled` or `pull-failed` with its
    duration (counted in berth_image_pulls_total)."""

    def say(phase: str, message: str, seconds: float | None = None) -> None:
        emit(Event(a.project, a.service, phase, message, now(), pull_seconds=seconds))

    def progress(p: PullProgress) -> None:
        say("pull-progress", f"{image}: {_progress_text(p)}")

    say("pull", image)
    t0 = now()
    try:
        platform = a.target.spec.platform if a.target else None
        runtime.pull(image, platform=platform, progress=progress)
    except ImagePullError as exc:
        say("pull-failed", str(exc), now() - t0)
        return r.PullFailed(str(exc))
    say("pulled", f"{image} in {now() - t0:.1f} s", now() - t0)
    return None


def _progress_text(p: PullProgress) -> str:
    mb = 1024 * 1024
    size = f"{p.downloaded / mb:.1f}/{p.total / mb:.1f} MiB" if p.total else "sizes unknown"
    return f"{p.layers_done}/{p.layers} layers, {size}"
