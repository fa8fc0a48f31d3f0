"""A compose file's top-level `networks` and `volumes` -> NetworkDef and VolumeDef: their
Docker names (`{project}_{key}` unless `name:` or `external`), drivers, options, labels,
IPAM pools, and the host paths a local volume mounts (compose/mount_sources.py)."""

from __future__ import annotations

import re
from typing import Any

from controller.core.boundary import ConfigFiles
from controller.core.compose.fields import check_keys, kv_pairs, want_bool, want_map, want_str
from controller.core.compose.ipam import parse_ipam
from controller.core.compose.keys import NETWORK_KEYS, VOLUME_KEYS
from controller.core.compose.mount_sources import volume_paths
from controller.core.model import NAME_RE, NetworkDef, VolumeDef
from controller.core.yamlsrc import Located, Path
from controller.errors import brief

BAD_NAME = "name must be 1-255 characters of letters, digits, '.', '_' and '-' (compose-spec)"


def _common(loc: Located, path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    opts = want_map(loc, (*path, "driver_opts"), spec.get("driver_opts") or {}) or {}
    labels = kv_pairs(loc, (*path, "labels"), spec.get("labels") or {}) or {}
    external = spec.get("external", False)
    if isinstance(external, dict):  # legacy `external: {name: x}`
        check_keys(loc, (*path, "external"), external, ("name",))
        spec = {**spec, "name": spec.get("name", external.get("name"))}
        external = True
    return {
        "driver": want_str(loc, (*path, "driver"), spec["driver"]) if spec.get("driver") else None,
        "external": bool(want_bool(loc, (*path, "external"), external)),
        "driver_opts": tuple(sorted((str(k), str(v)) for k, v in opts.items())),
        "labels": tuple(sorted((k, v or "") for k, v in labels.items())),
        "explicit_name": _explicit_name(loc, path, spec.get("name")),
    }


_ENGINE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")  # a Docker object name


def _explicit_name(loc: Located, path: Path, name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not _ENGINE_NAME.fullmatch(name):
        loc.error((*path, "name"), f"{brief(name)} is not a Docker network or volume name")
        return None
    return name


def _full_name(project: str, key: str, common: dict[str, Any]) -> str:
    explicit = common.pop("explicit_name")
    if explicit:
        return str(explicit)
    return key if common["external"] else f"{project}_{key}"


def top_networks(loc: Located, project: str, backend: str) -> dict[str, NetworkDef]:
    """On the swarm backend a network Berth creates is an attachable overlay unless the
    file says otherwise (another driver is refused: compose/swarm_check.py)."""
    swarm = backend == "swarm"
    out: dict[str, NetworkDef] = {}
    raw = want_map(loc, ("networks",), loc.data.get("networks") or {}) or {}
    for key, spec in raw.items():
        path: Path = ("networks", key)
        if not NAME_RE.fullmatch(key):
            loc.error(path, BAD_NAME)
            continue
        spec = want_map(loc, path, spec or {}) or {}
        check_keys(loc, path, spec, NETWORK_KEYS)
        common = _common(loc, path, spec)
        name = _full_name(project, key, common)
        internal = bool(want_bool(loc, (*path, "internal"), spec.get("internal", False)))
        overlay = swarm and not common["external"]
        if overlay and common["driver"] is None:
            common["driver"] = "overlay"
        attachable = bool(want_bool(loc, (*path, "attachable"), spec.get("attachable", overlay)))
        ipv6 = bool(want_bool(loc, (*path, "enable_ipv6"), spec.get("enable_ipv6", False)))
        ipam_driver, pools = parse_ipam(loc, (*path, "ipam"), spec.get("ipam"), ipv6=ipv6)
        out[key] = NetworkDef(
            name=name,
            key=key,
            internal=internal,
            attachable=attachable,
            ipam_driver=ipam_driver,
            ipam=pools,
            enable_ipv6=ipv6,
            **common,
        )
    if "default" not in out:
        out["default"] = NetworkDef(
            name=f"{project}_default",
            key="default",
            driver="overlay" if swarm else None,
            attachable=swarm,
        )
    return out


def top_volumes(loc: Located, project: str, where: tuple[str, ConfigFiles]) -> dict[str, VolumeDef]:
    out: dict[str, VolumeDef] = {}
    raw = want_map(loc, ("volumes",), loc.data.get("volumes") or {}) or {}
    for key, spec in raw.items():
        path: Path = ("volumes", key)
        if not NAME_RE.fullmatch(key):
            loc.error(path, BAD_NAME)
            continue
        spec = want_map(loc, path, spec or {}) or {}
        check_keys(loc, path, spec, VOLUME_KEYS)
        if isinstance(spec.get("driver_opts"), dict):
            volume_paths(loc, path, spec["driver_opts"], where)
        common = _common(loc, path, spec)
        out[key] = VolumeDef(name=_full_name(project, key, common), key=key, **common)
    return out
