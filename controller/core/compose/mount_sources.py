"""Which host paths a container may be shown, and what a HostConfig mounts (DESIGN §2).

A commit to desired/ changes tags and replicas only, so no host path a container sees may
lie inside desired/ or contain it: bind sources (relative ones also stay inside the compose
root), secret and config files, and a local volume's paths. The one exception is the
host's whole tree mounted read-only (`host_root_read_only`). compose/mounts.py translates
the volume syntax; this module decides the sources.
"""

from __future__ import annotations

import posixpath
from typing import Any

from controller.core.boundary import (
    ConfigFiles,
    boundary_problem,
    exposure_problem,
    path_problem,
    shown,
)
from controller.core.compose.context import StackCtx
from controller.core.yamlsrc import Located, Path

HOST_ROOT = "/"


def host_path(
    ctx: StackCtx,
    path: Path,
    source: str,
    *,
    what: str = "bind source",
    loc: Located | None = None,
    root_ok: bool = False,
) -> str | None:
    """The bind source as the engine gets it. A relative source must stay, symlinks
    resolved, inside the compose root; no source may lie inside desired/ or contain it, or
    desired/'s writers would choose what the container sees there (DESIGN §2). Problems
    go to `loc` (default: the stack's)."""
    loc = loc or ctx.loc
    relative = not source.startswith(("/", "~"))
    if source.startswith("~"):
        home = ctx.env.get("HOME")
        if not home:
            loc.error(path, f"'~' in a {what} needs HOME in the environment")
            return None
        source = home + source[1:]
    full = posixpath.normpath(posixpath.join(ctx.project_dir, source))
    if (bad := path_problem(full)) is not None:
        loc.error(path, f"{what} {bad}")
        return None
    resolved = ctx.files.resolve(full)
    problem = boundary_problem(resolved, ctx.files.boundary) if relative else None
    if full != HOST_ROOT or not root_ok:  # the host's / : see translate_volumes
        problem = problem or exposure_problem(ctx.files, full)
    if problem is not None:
        loc.error(path, f"{what} {shown(full)} {problem} (security boundary)")
        return None
    return resolved if relative else full  # the engine gets the path that was checked


def host_root_read_only(ctx: StackCtx, path: Path, mount: dict[str, Any]) -> bool:
    """The host's whole tree (`/:/rootfs:ro`, as node-exporter, cAdvisor and the
    OpenTelemetry collector's host metrics mount it) is the one bind that may contain
    desired/: its operator hands the container a read-only view of every host file, and
    desired/ is one directory among them, read as host state. Writable, it would let the
    container rewrite desired/ (and Berth's state) behind the repository's review, so it
    is refused (DESIGN §2). False when refused."""
    (seen,) = host_mounts(
        {"Mounts": [mount]} if "Binds" not in mount else {"Binds": [mount["Binds"]]}
    )
    if seen.get("Type") != "bind" or seen.get("Source") != HOST_ROOT or seen["ReadOnly"]:
        return True
    why = "bind source / is writable and contains desired/: mount it read-only (/:TARGET:ro)"
    ctx.loc.error(path, f"{why} (security boundary)")
    return False


def host_mounts(host_config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every mount of a HostConfig as Mounts entries (Type, Source, Target, ReadOnly): the
    Mounts list and the Binds strings, which `_bind_string` wrote as SOURCE:TARGET:MODE."""
    out = list(host_config.get("Mounts") or [])
    for entry in host_config.get("Binds") or []:
        source, _, rest = str(entry).partition(":")
        target, _, mode = rest.partition(":")
        kind = "bind" if source.startswith("/") else "volume"
        out.append(
            {"Type": kind, "Source": source, "Target": target, "ReadOnly": "ro" in mode.split(",")}
        )
    return out


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
