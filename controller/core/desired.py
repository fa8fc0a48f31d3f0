"""`desired/*.yaml`: the only configuration many people may commit to.

It may set tags and replica counts and nothing else: images, privileges, mounts, networks
and environment live in the compose file, which operators own. That is a security boundary
(DESIGN §2), so compose keys written here get a specific error instead of a generic
"unknown key" that might invite someone to look for the right spelling.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from controller.core.compose.keys import REJECTED_SERVICE_KEYS, SERVICE_KEYS
from controller.core.model import (
    MAX_REPLICAS,
    NAME_RE,
    DesiredService,
    DesiredStack,
    Location,
)
from controller.core.reference import tag_problem
from controller.core.yamlsrc import Located, Path, load_node, unwrap
from controller.errors import ConfigError, brief

PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TOP_KEYS = ("project", "compose", "services")
MAX_SERVICES = 512  # per desired file (one stack); past it, nothing else is checked
SERVICE_FIELDS = ("tag", "replicas")
# Everything a compose service can say, plus spellings people reach for.
COMPOSE_ONLY = frozenset(SERVICE_KEYS | set(REJECTED_SERVICE_KEYS)) | {
    "mounts",
    "env",
    "capabilities",
    "gpus",
    "runtime",
    "network_mode",
    "pid",
    "ipc",
    "userns_mode",
    "cgroup_parent",
    "devices",
    "secrets",
    "configs",
    "platform",
    "backend",  # top-level x-berth.backend: the operator's choice of runtime
}
MAX_COMPOSE_FILES = 16  # `docker compose -f` lists are a base and an override or two
BOUNDARY = "lives in the compose file; desired/ may only set tag and replicas (security boundary)"


def _compose_files(loc: Located, file: str, value: Any) -> tuple[str, ...]:
    path: Path = ("compose",)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        loc.error(path, "must be a path or a non-empty list of paths to compose files")
        return ()
    if len(items) > MAX_COMPOSE_FILES:
        loc.error(path, f"at most {MAX_COMPOSE_FILES} compose files per stack")
        return ()
    base = posixpath.dirname(file)
    out: list[str] = []
    for i, item in enumerate(items):
        here = path if isinstance(value, str) else (*path, i)
        if not isinstance(item, str) or not item:
            loc.error(here, "must be a path to a compose file")
            continue
        out.append(posixpath.normpath(posixpath.join(base, item)))
    return tuple(out)


def _service(loc: Located, name: str, value: Any) -> DesiredService | None:
    path: Path = ("services", name)
    if not isinstance(value, dict):
        loc.error(path, "must be a mapping with 'tag' (and optionally 'replicas')")
        return None
    for key in value:
        if key in COMPOSE_ONLY or key.startswith("x-"):
            loc.error((*path, key), f"'{key}' {BOUNDARY}")
        elif key not in SERVICE_FIELDS:
            loc.error((*path, key), "unknown key; allowed: tag, replicas")
    tag = value.get("tag")
    ok = True
    if "tag" not in value:
        loc.error((*path, "tag"), "'tag' is required")
        ok = False
    elif not isinstance(tag, str):
        msg = f'must be a string; quote it ("{brief(tag)}") so YAML keeps it as written'
        loc.error((*path, "tag"), msg)
        ok = False
    elif problem := tag_problem(tag):
        loc.error((*path, "tag"), problem)
        ok = False
    replicas = value.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
        shown = brief(replicas)
        loc.error((*path, "replicas"), f"must be a whole number 0-{MAX_REPLICAS}, got {shown}")
        ok = False
    elif isinstance(replicas, int) and not 0 <= replicas <= MAX_REPLICAS:
        loc.error((*path, "replicas"), f"must be 0-{MAX_REPLICAS}, got {replicas}")
        ok = False
    if not ok or not isinstance(tag, str):
        return None
    where = loc.where(path)
    return DesiredService(
        name=name, tag=tag, replicas=replicas, where=Location(where.file, where.line)
    )


def parse_desired(file: str, text: str) -> DesiredStack:
    """Validate one desired file; ConfigError carries every problem found, with lines.

    `project` may be left out: it is then the compose project name, filled in by the caller
    once the compose files are read (DesiredStack.project is "" until then).
    """
    data, table = unwrap(load_node(text, file))
    loc = Located(data, table, file)
    if not isinstance(data, dict):
        raise ConfigError.one(file, 1, "", "a desired file must be a mapping")
    for key in data:
        if key not in TOP_KEYS:
            hint = f" ({BOUNDARY})" if key in COMPOSE_ONLY else ""
            loc.error((key,), f"unknown key; allowed: {', '.join(TOP_KEYS)}{hint}")
    project = data.get("project")
    if project is not None and (not isinstance(project, str) or not PROJECT_RE.fullmatch(project)):
        loc.error(("project",), f"must be a compose project name matching {PROJECT_RE.pattern}")
    if "compose" not in data:
        loc.error(("compose",), "'compose' is required: the compose file(s) of this stack")
    compose = _compose_files(loc, file, data["compose"]) if "compose" in data else ()
    services: dict[str, DesiredService] = {}
    raw = data.get("services")
    if raw is not None and not isinstance(raw, dict):
        loc.error(("services",), "must be a mapping of service name to {tag, replicas}")
    elif isinstance(raw, dict) and len(raw) > MAX_SERVICES:
        loc.error(("services",), f"{len(raw)} services; a stack has at most {MAX_SERVICES}")
        raise ConfigError(loc.problems)
    for name, value in (raw if isinstance(raw, dict) else {}).items():
        if not NAME_RE.fullmatch(name):
            loc.error(("services", name), "not a compose service name (letters, digits, . _ -)")
            continue
        svc = _service(loc, name, value)
        if svc is not None:
            services[name] = svc
    if loc.problems:
        raise ConfigError(loc.problems)
    return DesiredStack(
        project=project if isinstance(project, str) else "",
        file=file,
        compose_files=compose,
        services=services,
    )
