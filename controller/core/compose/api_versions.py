"""Create-body fields that need a newer Engine API than Berth's floor (1.41, Docker 20.10).

Berth translates compose the way compose does and marks here what an older engine cannot
take; the adapter, which knows the engine's version, calls `for_engine` on every create
body (and `endpoint_for_engine` on every EndpointSettings) and logs what it dropped. The
table is independent of any ServiceSpec: a field is dropped by where it sits in the body.
Compose does the same for `healthcheck.start_interval` (sent only to API >= 1.44).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (path in the container create body, the lowest Engine API version that knows it)
CREATE_MIN_API: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Healthcheck", "StartInterval"), "1.44"),
)
# EndpointSettings keys (create's NetworkingConfig and network connect)
ENDPOINT_MIN_API: tuple[tuple[str, str], ...] = (("GwPriority", "1.48"),)


def _older(version: str, than: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else 0 for p in text.split("."))

    return parts(version) < parts(than)


def for_engine(body: Mapping[str, Any], api_version: str) -> tuple[dict[str, Any], list[str]]:
    """The body without the fields `api_version` does not know, and their dotted names."""
    out = dict(body)
    dropped: list[str] = []
    for path, minimum in CREATE_MIN_API:
        if not _older(api_version, minimum):
            continue
        parent: Any = out
        for key in path[:-1]:
            child = parent.get(key) if isinstance(parent, dict) else None
            if not isinstance(child, Mapping):
                break
            parent[key] = dict(child)  # copy on the way down: the spec stays untouched
            parent = parent[key]
        else:
            if path[-1] in parent:
                del parent[path[-1]]
                dropped.append(".".join(path))
    return out, dropped


def endpoint_for_engine(
    endpoint: Mapping[str, Any], api_version: str
) -> tuple[dict[str, Any], list[str]]:
    """EndpointSettings without the keys `api_version` does not know, and their names."""
    out = dict(endpoint)
    dropped = [k for k, v in ENDPOINT_MIN_API if _older(api_version, v) and k in out]
    for key in dropped:
        del out[key]
    return out, dropped
