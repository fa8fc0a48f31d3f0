"""Container names and labels. Names: Berth's own `{project}-{service}-{revision8}-{n}`
(two revisions side by side), or compose's `container_name` (one replica, stop-first):
the new container takes the name when nobody holds it, else runs under
`{name}-{revision8}-{n}` until the old one is removed at retire, and is renamed then.
Labels: Berth's own and compose's (`container_labels`)."""

from __future__ import annotations

import posixpath

from controller import __version__
from controller.core.model import (
    LABEL_COMMIT,
    LABEL_DIGEST,
    LABEL_MANAGED,
    LABEL_NUMBER,
    LABEL_ONEOFF,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_TAG,
    Target,
)
from controller.core.plan import ServiceAction
from controller.ports import ContainerRuntime


def container_name(project: str, service: str, revision: str, number: int) -> str:
    return f"{project}-{service}-{revision[:8]}-{number}"


def name_for(rt: ContainerRuntime, target: Target, number: int) -> str:
    fixed = target.spec.container_name
    if not fixed:
        return container_name(target.project, target.service, target.revision, number)
    if all(c.name != fixed for c in rt.list_containers()):
        return fixed
    return f"{fixed}-{target.revision[:8]}-{number}"


def take_fixed_name(rt: ContainerRuntime, a: ServiceAction) -> None:
    """After the old container is gone: the new one takes the compose container_name."""
    t = a.target
    if t is None or not t.spec.container_name:
        return
    for c in rt.list_containers(project=a.project):
        mine = c.service == a.service and c.revision == t.revision
        if mine and c.name != t.spec.container_name:
            rt.rename(c.id, t.spec.container_name)


def container_labels(target: Target, number: int, commit: str | None) -> dict[str, str]:
    """Every label of a new container: Berth's (how it finds and tells its containers
    apart) and compose's (so `docker compose` sees them as its own)."""
    labels = {
        **compose_labels(target),
        LABEL_PROJECT: target.project,
        LABEL_SERVICE: target.service,
        LABEL_NUMBER: str(number),
        LABEL_ONEOFF: "False",
        LABEL_MANAGED: "true",
        LABEL_REVISION: target.revision,
        LABEL_TAG: target.tag,
        **({LABEL_DIGEST: target.digest} if target.digest else {}),
    }
    if commit:
        labels[LABEL_COMMIT] = commit
    return labels


def compose_labels(target: Target) -> dict[str, str]:
    """The labels `docker compose` v2 writes on its containers besides project, service,
    number and oneoff, so `docker compose ps/logs` and tools that read them see Berth's
    containers as compose's. config-hash is Berth's revision (a hash of the effective
    container config, like compose's); version is Berth's own version."""
    spec = target.spec
    deps = ",".join(f"{d.service}:{d.condition}:{str(d.restart).lower()}" for d in spec.depends_on)
    labels = {
        "com.docker.compose.config-hash": target.revision,
        "com.docker.compose.depends_on": deps,
        "com.docker.compose.version": __version__,
        "com.docker.compose.image": target.image,
    }
    if spec.source_file:
        labels["com.docker.compose.project.working_dir"] = posixpath.dirname(spec.source_file)
        labels["com.docker.compose.project.config_files"] = spec.source_file
    return labels
