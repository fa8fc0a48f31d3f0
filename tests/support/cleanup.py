"""Removing everything a test or benchmark created for one compose project."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker.errors

PROJECT_LABEL = "com.docker.compose.project"


def remove_project(api: Any, project: str) -> None:
    """Force-remove every container, network and volume labelled with the project."""
    selector = {"label": f"{PROJECT_LABEL}={project}"}
    for c in api.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            c.remove(force=True, v=True)
    # A network removal right after a forced container removal can fail with "active
    # endpoints" while the engine releases them: retry for a few seconds.
    for _ in range(20):
        nets = {n.id: n for n in api.networks.list(filters=selector)}
        for n in api.networks.list(names=[f"{project}_"]):
            if n.name.startswith(f"{project}_"):
                nets[n.id] = n
        if not nets:
            break
        for n in nets.values():
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                n.reload()
                for attached in n.attrs.get("Containers") or {}:
                    with contextlib.suppress(docker.errors.APIError):
                        n.disconnect(attached, force=True)
                n.remove()
        time.sleep(0.5)
    for v in api.volumes.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            v.remove(force=True)
