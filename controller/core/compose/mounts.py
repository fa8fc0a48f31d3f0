"""`volumes` and `tmpfs` -> HostConfig.Binds, HostConfig.Mounts and HostConfig.Tmpfs.

As compose v2 does (create.go's buildContainerVolumes, bindRequiresMountAPI, toBindString),
a bind mount goes through the legacy `Binds` API, in which the engine creates a missing
source directory (owned by root): the short syntax always, the long syntax unless it says
`bind.create_host_path: false` (compose-go defaults it to true) or `bind.recursive:
disabled`, which only `Mounts` can express (the host path must then exist). SELinux
relabelling (`z`/`Z`) exists only in `Binds`; a named volume with it goes there too.
Entries are written as compose writes them: `SOURCE:TARGET:rw|ro[,z|Z][,PROPAGATION]`
(`,nocopy` for a volume). Other volumes and tmpfs are `Mounts` entries. A bind source is
checked the same way either way (`mount_sources.host_path`).

Where Berth differs: compose sends a bind with a propagation mode through Mounts with
CreateMountpoint, which needs API 1.42 (the 1.41 engine ignores it and refuses a missing
path); Binds carries the propagation and creates the path on 1.41 too. compose silently
drops `z`/`Z` on a bind that goes through Mounts; Berth refuses that combination.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

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
from controller.core.compose.mount_sources import host_path, host_root_read_only
from controller.core.yamlsrc import Path
from controller.errors import brief

_PROPAGATION = ("shared", "slave", "private", "rshared", "rslave", "rprivate")
_LONG = ("type", "source", "target", "read_only", "bind", "volume", "tmpfs", "consistency")


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
        host = host_path(ctx, path, source, root_ok=True)
        if host is None:
            return None
        mount["Source"] = host
    elif kind == "volume" and source:
        name = _named(ctx, path, source)
        if name is None:
            return None
        mount["Source"] = name
    return mount


_SELINUX = ("z", "Z")
_CONSISTENCY = ("consistent", "cached", "delegated")  # macOS only; no effect on Linux
_RECURSIVE = ("enabled", "disabled", "writable", "readonly")


def _bind_string(
    ctx: StackCtx, path: Path, source: str, mount: dict[str, Any], extra: list[str]
) -> dict[str, Any] | None:
    """The mount as a Binds entry (compose's toBindString): returned as {Target, Binds}."""
    target = mount["Target"]
    if ":" in source or ":" in target:
        why = "cannot hold ':' in a HostConfig.Binds entry (the short syntax and"
        ctx.loc.error(path, f"{brief(source)}:{brief(target)} {why} create_host_path use it)")
        return None
    options = ",".join(["ro" if mount["ReadOnly"] else "rw", *extra])
    return {"Target": target, "Binds": f"{source}:{target}:{options}"}


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
    if mount is None:
        return None
    selinux, propagation, nocopy, unknown = "", "", False, []
    for opt in parts[2].split(",") if len(parts) == 3 else ():
        if opt in ("ro", "rw"):
            mount["ReadOnly"] = opt == "ro"
        elif opt in _SELINUX:
            selinux = opt
        elif opt in _PROPAGATION and kind == "bind":
            propagation = opt
        elif opt == "nocopy" and kind == "volume":
            nocopy = True
        elif opt in _CONSISTENCY:
            pass  # compose-go drops them; Docker Desktop's file sharing modes, none on Linux
        elif opt == "nocopy":
            ctx.loc.error(
                path, "unsupported volume mode 'nocopy' for a bind (the engine refuses it)"
            )
            return None
        else:
            unknown.append(opt)
    for opt in unknown:  # compose-go drops them; said, not silent
        ctx.loc.warn(path, _unknown_mode(opt, "ro" if mount["ReadOnly"] else "rw"))
    if kind == "bind":  # compose: the short syntax creates a missing host path, so Binds
        extra = [o for o in (selinux, propagation) if o]
        return _bind_string(ctx, path, mount["Source"], mount, extra)
    if selinux and mount.get("Source"):  # compose sends a named volume through Binds too
        extra = [selinux, "nocopy"] if nocopy else [selinux]
        return _bind_string(ctx, path, mount["Source"], mount, extra)
    if selinux:
        ctx.loc.error(path, "an anonymous volume cannot be relabelled (z/Z need a source)")
        return None
    if nocopy:
        mount["VolumeOptions"] = {"NoCopy": True}
    return mount


_KNOWN_MODES = ("ro", "rw", "nocopy", *_SELINUX, *_PROPAGATION, *_CONSISTENCY)


def _unknown_mode(opt: str, access: str) -> str:
    """compose-go drops a mode it does not know without a word, so zabbix's `roz` (for
    `ro,z`) mounts read-write under compose. Berth mounts what compose mounts and says so."""
    parts = _split_modes(opt)
    hint = f"; did you mean '{','.join(parts)}'? (modes are comma-separated)" if parts else ""
    return f"unknown volume mode {brief(opt)} ignored, as compose does: mounted {access}{hint}"


def _split_modes(opt: str) -> list[str] | None:
    """`roz` -> [ro, z]: the known modes that, written together, make `opt` (None if none do)."""
    if not opt or len(opt) > 40:
        return None
    for known in _KNOWN_MODES:
        if opt.startswith(known):
            rest = opt[len(known) :]
            if not rest:
                return [known] if known != opt else None
            tail = _split_modes(rest)
            if tail is not None or rest in _KNOWN_MODES:
                return [known, *(tail or [rest])]
    return None


def _bind_options(
    ctx: StackCtx, path: Path, opts: dict[str, Any], mount: dict[str, Any]
) -> dict[str, Any] | None:
    """Long-syntax `bind:`. compose-go defaults create_host_path to true, so a bind goes
    through Binds unless it says create_host_path: false or recursive: disabled (Mounts
    only; the host path must then exist)."""
    here = (*path, "bind")
    check_keys(ctx.loc, here, opts, ("propagation", "create_host_path", "selinux", "recursive"))
    create = want_bool(ctx.loc, (*here, "create_host_path"), opts.get("create_host_path", True))
    propagation = opts.get("propagation", "")
    selinux = opts.get("selinux", "")
    recursive = opts.get("recursive", "enabled")
    for key, value, allowed in (
        ("propagation", propagation, ("", *_PROPAGATION)),
        ("selinux", selinux, ("", *_SELINUX)),
        ("recursive", recursive, _RECURSIVE),
    ):
        if value not in allowed:
            ctx.loc.error((*here, key), f"must be one of {', '.join(a for a in allowed if a)}")
            return None
    if create is None:
        return None
    if recursive in ("writable", "readonly"):
        why = f"recursive: {recursive} needs a newer Engine API than this engine's 1.41 (1.44)"
        ctx.loc.error((*here, "recursive"), why)
        return None
    mounts_api = not create or recursive == "disabled"
    if selinux and mounts_api:
        why = "relabelling needs HostConfig.Binds, which cannot "
        why += "leave a missing host path uncreated" if not create else "mount non-recursively"
        ctx.loc.error((*here, "selinux"), why)
        return None
    if not mounts_api:
        extra = [o for o in (selinux, propagation) if o]
        return _bind_string(ctx, path, mount["Source"], mount, extra)
    bind_opts: dict[str, Any] = {}
    if propagation:
        bind_opts["Propagation"] = propagation
    if recursive == "disabled":
        bind_opts["NonRecursive"] = True
    if bind_opts:
        mount["BindOptions"] = bind_opts
    return mount


def _volume_options(ctx: StackCtx, path: Path, opts: dict[str, Any], mount: dict[str, Any]) -> None:
    here = (*path, "volume")
    check_keys(ctx.loc, here, opts, ("nocopy", "subpath", "labels"))
    if "subpath" in opts:
        ctx.loc.error((*here, "subpath"), "needs a newer Engine API than this engine's 1.41 (1.45)")
    if "labels" in opts:  # compose passes them only to a volume the engine creates itself
        why = "set labels on the top-level volume (Berth creates it, so these would be unused)"
        ctx.loc.error((*here, "labels"), why)
    if want_bool(ctx.loc, (*here, "nocopy"), opts.get("nocopy", False)):
        mount["VolumeOptions"] = {"NoCopy": True}


def _long_options(
    ctx: StackCtx, path: Path, item: dict[str, Any], mount: dict[str, Any]
) -> dict[str, Any] | None:
    kind = mount["Type"]
    for key in ("bind", "volume", "tmpfs"):
        if key in item and key != kind:
            ctx.loc.error((*path, key), f"'{key}' options on a {kind} mount")
    if kind == "bind":
        opts = want_map(ctx.loc, (*path, "bind"), item["bind"]) if "bind" in item else {}
        return None if opts is None else _bind_options(ctx, path, opts, mount)
    if (
        kind == "volume"
        and "volume" in item
        and (opts := want_map(ctx.loc, (*path, "volume"), item["volume"])) is not None
    ):
        _volume_options(ctx, path, opts, mount)
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
            tmpfs["Mode"] = file_mode(ctx, (*path, "tmpfs", "mode"), opts["mode"])
        mount["TmpfsOptions"] = tmpfs
    return mount


def file_mode(ctx: StackCtx, path: Path, value: Any) -> int | None:
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
    if "consistency" in item:  # Docker Desktop's; the engine on Linux ignores it
        consistency = want_str(ctx.loc, (*path, "consistency"), item["consistency"])
        if consistency not in (*_CONSISTENCY, "default"):
            ctx.loc.error((*path, "consistency"), f"must be one of {', '.join(_CONSISTENCY)}")
            return None
        mount["Consistency"] = consistency
    return _long_options(ctx, path, item, mount)  # a Binds entry has no consistency either


def translate_volumes(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    if not isinstance(value, list):
        ctx.loc.error(path, "must be a list")
        return
    mounts: list[dict[str, Any]] = []
    binds: list[str] = []
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
        if mount is None:
            continue
        if not host_root_read_only(ctx, here, mount):
            continue
        target = posixpath.normpath(mount["Target"])  # compose-go cleans targets too
        if target in targets:
            ctx.loc.error(here, f"duplicate mount point {brief(mount['Target'])}")
        targets.add(target)
        if "Binds" in mount:
            binds.append(mount["Binds"])
        else:
            mounts.append(mount)
    if binds:
        body.host["Binds"] = binds
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
