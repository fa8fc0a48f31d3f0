"""`volumes` and `tmpfs` -> HostConfig.Mounts and HostConfig.Tmpfs.

Mounts (not Binds) are used for every volume because they say exactly what they are; the
consequence, unlike compose's short syntax, is that a bind mount's host path must already
exist (Docker refuses a missing source instead of creating a root-owned directory).
SELinux relabelling (`:z`/`:Z`) only exists for Binds and is therefore refused.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from controller.core.boundary import (
    ConfigFiles,
    boundary_problem,
    exposure_problem,
    path_problem,
    shown,
)
from controller.core.compose.context import Body, StackCtx
from controller.core.compose.fields import (
    check_keys,
    want_bool,
    want_bytes,
    want_int,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

_PROPAGATION = ("shared", "slave", "private", "rshared", "rslave", "rprivate")
_LONG = ("type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency")


def _host_path(ctx: StackCtx, path: Path, source: str) -> str | None:
    """The bind source as the engine gets it. A relative source must stay, symlinks
    resolved, inside the compose root; no source may lie inside desired/ or contain it, or
    desired/'s writers would choose what the container sees there (DESIGN §2)."""
    relative = not source.startswith(("/", "~"))
    if source.startswith("~"):
        home = ctx.env.get("HOME")
        if not home:
            ctx.loc.error(path, "'~' in a bind mount needs HOME in the environment")
            return None
        source = home + source[1:]
    full = posixpath.normpath(posixpath.join(ctx.project_dir, source))
    if (bad := path_problem(full)) is not None:
        ctx.loc.error(path, f"bind source {bad}")
        return None
    resolved = ctx.files.resolve(full)
    problem = boundary_problem(resolved, ctx.files.boundary) if relative else None
    problem = problem or exposure_problem(ctx.files, full)
    if problem is not None:
        ctx.loc.error(path, f"bind source {shown(full)} {problem} (security boundary)")
        return None
    return resolved if relative else full  # the engine gets the path that was checked


def _is_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _named(ctx: StackCtx, path: Path, source: str) -> str | None:
    vol = ctx.volumes.get(source)
    if vol is None:
        ctx.loc.error(path, f"volume {brief(source)} is not declared under top-level 'volumes'")
        return None
    return vol.name


def _mount(
    ctx: StackCtx, path: Path, *, kind: str, source: str | None, target: str
) -> dict[str, Any] | None:
    if not target.startswith("/"):
        ctx.loc.error(path, f"container path {brief(target)} must be absolute")
        return None
    if posixpath.normpath(target) == "/":
        ctx.loc.error(path, "cannot mount over the container's root '/'")
        return None
    mount: dict[str, Any] = {"Type": kind, "Target": target, "ReadOnly": False}
    if kind == "bind":
        if not source:
            ctx.loc.error(path, "a bind mount needs a source")
            return None
        host = _host_path(ctx, path, source)
        if host is None:
            return None
        mount["Source"] = host
    elif kind == "volume" and source:
        name = _named(ctx, path, source)
        if name is None:
            return None
        mount["Source"] = name
    return mount


def _short(ctx: StackCtx, path: Path, spec: str) -> dict[str, Any] | None:
    parts = spec.split(":")
    if len(parts) > 3:
        ctx.loc.error(path, f"invalid volume {brief(spec)}; expected [SOURCE:]TARGET[:MODE]")
        return None
    if len(parts) == 1:
        return _mount(ctx, path, kind="volume", source=None, target=parts[0])
    source, target = parts[0], parts[1]
    kind = "bind" if _is_path(source) else "volume"
    mount = _mount(ctx, path, kind=kind, source=source, target=target)
    if mount is None or len(parts) == 2:
        return mount
    for opt in parts[2].split(","):
        if opt in ("ro", "rw"):
            mount["ReadOnly"] = opt == "ro"
        elif opt in _PROPAGATION and kind == "bind":
            mount["BindOptions"] = {"Propagation": opt}
        elif opt == "nocopy" and kind == "volume":
            mount["VolumeOptions"] = {"NoCopy": True}
        elif opt in ("z", "Z"):
            ctx.loc.error(path, "SELinux relabelling (:z/:Z) is not supported by Berth's Mounts")
            return None
        else:
            ctx.loc.error(path, f"unsupported volume mode {brief(opt)} for a {kind} mount")
            return None
    return mount


def _long_options(ctx: StackCtx, path: Path, item: dict[str, Any], mount: dict[str, Any]) -> None:
    kind = mount["Type"]
    for key in ("bind", "volume", "tmpfs"):
        if key in item and key != kind:
            ctx.loc.error((*path, key), f"'{key}' options on a {kind} mount")
    if (
        kind == "bind"
        and "bind" in item
        and (opts := want_map(ctx.loc, (*path, "bind"), item["bind"])) is not None
    ):
        check_keys(ctx.loc, (*path, "bind"), opts, ("propagation", "create_host_path"))
        if opts.get("create_host_path") is True:
            ctx.loc.error((*path, "bind", "create_host_path"), "Berth does not create host paths")
        if "propagation" in opts:
            if opts["propagation"] not in _PROPAGATION:
                ctx.loc.error((*path, "bind", "propagation"), f"must be one of {_PROPAGATION}")
            mount["BindOptions"] = {"Propagation": opts["propagation"]}
    if (
        kind == "volume"
        and "volume" in item
        and (opts := want_map(ctx.loc, (*path, "volume"), item["volume"])) is not None
    ):
        check_keys(ctx.loc, (*path, "volume"), opts, ("nocopy",))
        if want_bool(ctx.loc, (*path, "volume", "nocopy"), opts.get("nocopy", False)):
            mount["VolumeOptions"] = {"NoCopy": True}
    if (
        kind == "tmpfs"
        and "tmpfs" in item
        and (opts := want_map(ctx.loc, (*path, "tmpfs"), item["tmpfs"])) is not None
    ):
        check_keys(ctx.loc, (*path, "tmpfs"), opts, ("size", "mode"))
        tmpfs: dict[str, Any] = {}
        if "size" in opts:
            tmpfs["SizeBytes"] = want_bytes(ctx.loc, (*path, "tmpfs", "size"), opts["size"])
        if "mode" in opts:
            tmpfs["Mode"] = _file_mode(ctx, (*path, "tmpfs", "mode"), opts["mode"])
        mount["TmpfsOptions"] = tmpfs


def _file_mode(ctx: StackCtx, path: Path, value: Any) -> int | None:
    """A file mode as compose reads it: a YAML number (`0777` is octal, as in go-yaml) or
    a string of octal digits ("1777")."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-7]{1,4}", value.strip()):
            ctx.loc.error(path, f"expected an octal file mode such as 1777, got {brief(value)}")
            return None
        return int(value.strip(), 8)
    return want_int(ctx.loc, path, value, minimum=0, maximum=0o7777)


def _long(ctx: StackCtx, path: Path, item: dict[str, Any]) -> dict[str, Any] | None:
    check_keys(ctx.loc, path, item, _LONG)
    kind = item.get("type")
    if kind not in ("volume", "bind", "tmpfs"):
        ctx.loc.error((*path, "type"), "must be volume, bind or tmpfs")
        return None
    target = want_str(ctx.loc, (*path, "target"), item.get("target"))
    source = item.get("source")
    if source is not None and (source := want_str(ctx.loc, (*path, "source"), source)) is None:
        return None
    if target is None:
        return None
    if kind == "tmpfs" and source:
        ctx.loc.error((*path, "source"), "a tmpfs mount has no source")
        return None
    mount = _mount(ctx, path, kind=kind, source=source, target=target)
    if mount is None:
        return None
    if "read_only" in item:
        mount["ReadOnly"] = bool(want_bool(ctx.loc, (*path, "read_only"), item["read_only"]))
    if "consistency" in item:
        mount["Consistency"] = want_str(ctx.loc, (*path, "consistency"), item["consistency"])
    _long_options(ctx, path, item, mount)
    return mount


def translate_volumes(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return
    mounts: list[dict[str, Any]] = []
    targets: set[str] = set()  # a set: the check was quadratic in the number of volumes
    for i, item in enumerate(value):
        here = (*path, i)
        if isinstance(item, str):
            mount = _short(ctx, here, item)
        elif isinstance(item, dict):
            mount = _long(ctx, here, item)
        else:
            ctx.loc.error(here, "must be a string or a mapping")
            mount = None
        if mount is not None:
            if mount["Target"] in targets:
                ctx.loc.error(here, f"duplicate mount point {brief(mount['Target'])}")
            targets.add(mount["Target"])
            mounts.append(mount)
    if mounts:
        body.host["Mounts"] = mounts


def translate_tmpfs(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    items = want_str_list(ctx.loc, path, value)
    if items is None:
        return
    tmpfs: dict[str, str] = {}
    for i, item in enumerate(items):
        target, _, options = item.partition(":")
        if not target.startswith("/"):
            ctx.loc.error((*path, i), f"tmpfs path {brief(target)} must be absolute")
            continue
        tmpfs[target] = options
    body.host["Tmpfs"] = tmpfs


_PATH_OPTIONS = ("lowerdir", "upperdir", "workdir")  # overlay's mount options name paths


def volume_paths(
    loc: Located, path: Path, opts: dict[str, Any], where: tuple[str, ConfigFiles]
) -> None:
    """A local volume mounts `device` (with `o: bind` or `rbind` it is a bind mount; with
    `type: overlay` the paths in `o` are layered): none of those host paths may lie inside
    desired/ or contain it (DESIGN §2), or desired/'s writers would choose what it holds.
    Paths only: an NFS export (`:/path`) or a tmpfs is not on this host's tree."""
    project_dir, files = where
    device, o = opts.get("device"), str(opts.get("o", ""))
    found: list[tuple[str, str]] = []
    if isinstance(device, str) and device.startswith(("/", ".")):
        found.append(("device", device))
    for option in o.split(","):
        name, eq, value = option.partition("=")
        if eq and name.strip() in _PATH_OPTIONS:
            found += [("o", p) for p in value.split(":") if p]
    for field, raw in found:
        full = posixpath.normpath(posixpath.join(project_dir, raw))
        problem = exposure_problem(files, full)
        if problem is not None:
            where_ = (*path, "driver_opts", field)
            loc.error(where_, f"volume path {shown(full)} {problem} (security boundary)")
            return
