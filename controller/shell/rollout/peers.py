"""Compose `service:NAME` references in a create body (network_mode, volumes_from), made
concrete when the container is created: the id of NAME's running container in the same
project. None running is a temporary condition (NAME is being replaced or has not started
yet): the rollout is retried with backoff, nothing is quarantined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.errors import TemporaryError
from controller.ports import ContainerRuntime

_SERVICE = "service:"


def resolve_peers(rt: ContainerRuntime, project: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
    host = body.get("HostConfig") or {}
    mode = str(host.get("NetworkMode") or "")
    froms = list(host.get("VolumesFrom") or [])
    if not mode.startswith(_SERVICE) and not any(v.startswith(_SERVICE) for v in froms):
        return body
    running: dict[str, str] = {}
    for c in sorted(rt.list_containers(project=project), key=lambda c: c.created):
        if c.running:
            running[c.service] = c.id  # the newest running container of each service

    def cid(name: str, what: str) -> str:
        if name not in running:
            raise TemporaryError(f"{what} service:{name}: no running container of {name!r}")
        return running[name]

    new_host = dict(host)
    if mode.startswith(_SERVICE):
        new_host["NetworkMode"] = "container:" + cid(mode[len(_SERVICE) :], "network_mode")
    resolved: list[str] = []
    for item in froms:
        if item.startswith(_SERVICE):
            name, _, access = item[len(_SERVICE) :].partition(":")
            item = cid(name, "volumes_from") + (f":{access}" if access else "")
        resolved.append(item)
    if froms:
        new_host["VolumesFrom"] = resolved
    return {**body, "HostConfig": new_host}
