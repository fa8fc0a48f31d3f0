"""A stable, JSON-ready rendering of what `load_stack` produced, shared by the schema
coverage test (with and without a key: did anything change?) and the fixture corpus
(expected.json). Dataclass fields equal to their defaults are left out, so a field added to
the model later does not move every expected file."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from controller.core.model import ServiceSpec, StackSpec

# ServiceSpec fields that say where the service came from, not what runs
_WHERE = frozenset({"project", "source_file", "source_line"})


def plain(value: Any) -> Any:
    """Dataclasses -> dicts of their non-default fields, mappings -> dicts, tuples -> lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and item == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and item == f.default_factory():
                continue
            out[f.name] = plain(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def render_service(spec: ServiceSpec) -> dict[str, Any]:
    body = plain(spec)
    return {k: v for k, v in body.items() if k not in _WHERE}


def render_stack(stack: StackSpec) -> dict[str, Any]:
    """Everything of a StackSpec that reaches the engine or steers the rollout."""
    return {
        "project": stack.project,
        "services": {name: render_service(s) for name, s in sorted(stack.services.items())},
        "networks": {k: plain(v) for k, v in sorted(stack.networks.items())},
        "volumes": {k: plain(v) for k, v in sorted(stack.volumes.items())},
        "proxy": plain(stack.proxy),
        "env_files": list(stack.env_files),
    }
