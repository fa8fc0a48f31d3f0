"""Small builders of core values for unit tests."""

from __future__ import annotations

from controller.core.model import (
    BerthOptions,
    ContainerState,
    DependsOn,
    NetworkAttachment,
    ObservedContainer,
    ProbeSpec,
    ServiceSpec,
    Target,
    image_ref,
)

DEFAULT_PROBE = ProbeSpec(path="/health", port=8000)


def spec(
    name: str = "api",
    *,
    project: str = "demo",
    env: str = "A=1",
    strategy: str = "start-first",
    health: ProbeSpec | None = DEFAULT_PROBE,
    docker_health: bool = False,
    depends: tuple[str, ...] = (),
    bake: float = 0.0,
    replicas: int = 1,
) -> ServiceSpec:
    return ServiceSpec(
        project=project,
        name=name,
        image=f"example/{name}",
        replicas=replicas,
        create={"Env": [env]},
        networks=(NetworkAttachment(f"{project}_default", (name,)),),
        depends_on=tuple(DependsOn(d) for d in depends),
        berth=BerthOptions(strategy=strategy, health=health, bake=bake),  # type: ignore[arg-type]
        has_healthcheck=docker_health,
    )


def target(name: str = "api", tag: str = "1", replicas: int = 1, **kw: object) -> Target:
    s = spec(name, **kw)  # type: ignore[arg-type]
    return Target(s.project, name, image_ref(s.image, tag), tag, replicas, s)


def container(
    t: Target,
    number: int = 1,
    *,
    state: ContainerState = ContainerState.RUNNING,
    health: str | None = None,
    revision: str | None = None,
    tag: str | None = None,
    created: float = 100.0,
    cid: str | None = None,
) -> ObservedContainer:
    rev = revision or t.revision
    return ObservedContainer(
        id=cid or f"{t.service}-{rev[:4]}-{number}",
        name=f"{t.project}-{t.service}-{rev[:8]}-{number}",
        project=t.project,
        service=t.service,
        number=number,
        revision=rev,
        tag=tag or t.tag,
        image=t.image,
        state=state,
        health=health,  # type: ignore[arg-type]
        created=created,
    )
