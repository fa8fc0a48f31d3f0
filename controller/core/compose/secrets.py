"""`secrets` and `configs`, as compose runs them without swarm.

A `file:` source is bind-mounted read-only (compose's buildContainerSecretMounts and
buildContainerConfigMounts): secrets at /run/secrets/<target or name>, configs at
/<target or name>. The host file is confined like a bind source (mounts.host_path): a
relative path stays, symlinks resolved, inside the compose root, and nothing may lie in
desired/. A bind mount keeps the host file's owner and mode, so `uid`/`gid`/`mode` on a
file source (which compose drops with a warning) are refused.

An `environment:` (or, for configs, `content:`) source has no file on the host. Compose
writes it into the created container before starting it (a one-file tar through
CopyToContainer); the core cannot, so it puts the value in ServiceSpec.files for the shell
to write the same way. `external`, `driver` and `template_driver` need swarm (compose
refuses them too); `name` and `labels` name and label the swarm object: checked, no effect.
"""

from __future__ import annotations

import copy
import posixpath
import re
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import check_keys, kv_pairs, want_bool, want_map, want_str
from controller.core.compose.mount_sources import host_path
from controller.core.compose.mounts import file_mode
from controller.core.model import InjectedFile
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

MAX_CONTENT = 1024 * 1024  # characters of one environment/content source
_BASE = {"secrets": "/run/secrets/", "configs": "/"}
_SOURCES = {"secrets": ("file", "environment"), "configs": ("file", "environment", "content")}
_SWARM = {"external": "is a swarm object", "driver": "needs swarm"}
_SWARM |= {"driver_opts": "needs swarm", "template_driver": "needs swarm"}
_ID = re.compile(r"[0-9]{1,9}")
Source = tuple[str, str]  # ("file", host path) or ("content", text)


def _definition(ctx: StackCtx, loc: Located, kind: str, key: str) -> Source | None:
    """Top-level `kind.key`; problems go to `loc`."""
    path: Path = (kind, key)
    entry = want_map(loc, path, loc.data.get(kind, {}).get(key) or {})
    if entry is None:
        return None
    entry = {k: v for k, v in entry.items() if not str(k).startswith("x-")}
    sources = _SOURCES[kind]
    check_keys(loc, path, entry, (*sources, "name", "labels", *_SWARM))
    if entry.get("name") is not None:
        want_str(loc, (*path, "name"), entry["name"])
    if entry.get("labels") is not None:
        kv_pairs(loc, (*path, "labels"), entry["labels"])
    for field, why in _SWARM.items():
        if field not in entry:
            continue
        value = entry[field]
        external = field == "external" and not isinstance(value, dict)
        if external and not want_bool(loc, (*path, field), value):
            continue  # external: false (or not a boolean, reported)
        loc.error((*path, field), f"{kind} {field} {why}; compose without swarm cannot use it")
        return None
    given = [s for s in sources if entry.get(s) is not None]
    if len(given) != 1:
        loc.error(path, f"needs exactly one of {', '.join(sources)}")
        return None
    text = want_str(loc, (*path, given[0]), entry[given[0]])
    if text is None:
        return None
    if given[0] == "file":
        full = host_path(ctx, (*path, "file"), text, what=f"{kind[:-1]} file", loc=loc)
        return None if full is None else ("file", full)
    if given[0] == "environment":
        if text not in ctx.env:
            loc.error((*path, "environment"), f"variable {brief(text)} is not set")
            return None
        text = ctx.env[text]
    if len(text) > MAX_CONTENT or "\x00" in text:
        loc.error((*path, given[0]), "must be at most 1 MiB of text without NUL characters")
        return None
    return ("content", text)


def check_definitions(ctx: StackCtx) -> None:
    """Every top-level secret and config, used or not (call once per stack)."""
    for kind in _SOURCES:
        entries = ctx.loc.data.get(kind)
        if entries is None:
            continue
        for key in want_map(ctx.loc, (kind,), entries) or {}:
            _definition(ctx, ctx.loc, kind, str(key))


def _lookup(ctx: StackCtx, here: Path, kind: str, key: str) -> Source | None:
    """A used definition, checked quietly (check_definitions reports its problems)."""
    if not isinstance(ctx.loc.data.get(kind), dict) or key not in ctx.loc.data[kind]:
        ctx.loc.error(here, f"{brief(key)} is not declared under top-level '{kind}'")
        return None
    quiet = copy.copy(ctx.loc)
    quiet.problems = []
    found = _definition(ctx, quiet, kind, key)
    if found is None:
        ctx.loc.error(here, f"{brief(key)} cannot be used: see top-level {kind}.{key}")
    return found


def _reference(ctx: StackCtx, here: Path, item: Any) -> dict[str, Any] | None:
    """Short syntax (a name) or long syntax, as a mapping."""
    if isinstance(item, str):
        return {"source": item}
    spec = want_map(ctx.loc, here, item)
    if spec is None:
        return None
    spec = {k: v for k, v in spec.items() if not str(k).startswith("x-")}
    check_keys(ctx.loc, here, spec, ("source", "target", "uid", "gid", "mode"))
    if want_str(ctx.loc, (*here, "source"), spec.get("source")) is None:
        return None
    return spec


def _target(ctx: StackCtx, here: Path, kind: str, ref: dict[str, Any]) -> str | None:
    target = want_str(ctx.loc, (*here, "target"), ref.get("target", ref["source"]))
    if target is None:
        return None
    full = posixpath.normpath(target if target.startswith("/") else _BASE[kind] + target)
    if full == "/" or "\x00" in full:
        ctx.loc.error(here, f"{brief(target)} is not a file path in the container")
        return None
    return full


def _owner(ctx: StackCtx, here: Path, ref: dict[str, Any], target: str, text: str) -> InjectedFile:
    ids: dict[str, int] = {}
    for key in ("uid", "gid"):
        raw = want_str(ctx.loc, (*here, key), ref.get(key, "0"))
        if raw is not None and not _ID.fullmatch(raw):
            ctx.loc.error((*here, key), f"{brief(raw)} is not a numeric id")
        ids[key] = int(raw) if raw is not None and _ID.fullmatch(raw) else 0
    mode = 0o444
    if ref.get("mode") is not None:
        mode = file_mode(ctx, (*here, "mode"), ref["mode"]) or 0o444
    return InjectedFile(target=target, content=text, uid=ids["uid"], gid=ids["gid"], mode=mode)


def translate_file_objects(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body
) -> tuple[InjectedFile, ...]:
    """Mounts for file sources (appended to HostConfig.Mounts), files for the others."""
    mounts: list[dict[str, Any]] = []
    files: list[InjectedFile] = []
    taken = {m["Target"] for m in body.host.get("Mounts", [])}
    for kind in _SOURCES:
        if svc.get(kind) is None:
            continue
        if not isinstance(svc[kind], list):
            ctx.loc.error((*path, kind), "must be a list")
            continue
        for i, item in enumerate(svc[kind]):
            here = (*path, kind, i)
            ref = _reference(ctx, here, item)
            target = None if ref is None else _target(ctx, here, kind, ref)
            source = None if ref is None else _lookup(ctx, here, kind, str(ref["source"]))
            if ref is None or target is None or source is None:
                continue
            if target in taken:
                ctx.loc.error(here, f"duplicate mount point {brief(target)}")
                continue
            taken.add(target)
            if source[0] == "file":
                for key in ("uid", "gid", "mode"):
                    if key in ref:
                        why = "a bind-mounted file keeps its owner and mode from the host"
                        ctx.loc.error((*here, key), f"{why} (only environment/content sources)")
                mount = {"Type": "bind", "Target": target, "ReadOnly": True, "Source": source[1]}
                mounts.append(mount)
            elif svc.get("read_only") in (True, "true"):
                why = "cannot be written into a read_only container (compose refuses it too)"
                ctx.loc.error(here, why)
            elif ctx.injected.spend(len(source[1]), ctx.loc, here):
                files.append(_owner(ctx, here, ref, target, source[1]))
    if mounts:
        body.host["Mounts"] = [*body.host.get("Mounts", []), *mounts]
    return tuple(files)
