"""The executor's side of a `Build` step: run the ImageBuilder, report progress, answer the
rollout machine with an event (None: built, BuildFailed: the reason and the log's tail)."""

from __future__ import annotations

from collections.abc import Callable

from controller.core import rollout as r
from controller.core.plan import ServiceAction
from controller.errors import ImageBuildError
from controller.ports import ImageBuilder
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
