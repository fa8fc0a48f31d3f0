"""The Docker adapter's request bodies, fitted to the engine's Engine API version.

The core translates compose as compose does (controller/core/compose) and leaves fields in
that an older engine does not know; `controller.core.compose.api_versions` says which. Here
the adapter, which knows the negotiated version, drops them from every create body and
every EndpointSettings (create's NetworkingConfig and network connect), and says so once
per field: an engine that silently ignored a field would be worse than one line in the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controller.core.compose.api_versions import (
    CREATE_MIN_API,
    ENDPOINT_MIN_API,
    endpoint_for_engine,
    for_engine,
)
from controller.core.model import NetworkAttachment

log = logging.getLogger("berth.docker")

_MINIMUM = {".".join(path): v for path, v in CREATE_MIN_API} | dict(ENDPOINT_MIN_API)
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_dropped(fields: Iterable[str], api_version: str, *, where: str = "") -> None:
    """One warning per field per process: the field is dropped on every create after."""
    for name in fields:
        with _warned_lock:
            if where + name in _warned:
                continue
            _warned.add(where + name)
        log.warning(
            "the Docker engine speaks Engine API %s; %s%s needs %s: left out of the request "
            "(upgrade Docker for it to take effect)",
            api_version,
            where,
            name,
            _MINIMUM.get(name, "a newer API"),
        )


def endpoint(
    att: NetworkAttachment, *, aliases: bool, api_version: str, ipv4: str | None = None
) -> dict[str, Any]:
    """The EndpointSettings of one attachment as this engine takes them; `ipv4` asks for
    that address instead of the attachment's own (a reconnect keeping its address)."""
    ep = att.endpoint_settings(aliases=aliases)
    if ipv4:
        ep["IPAMConfig"] = {**ep.get("IPAMConfig", {}), "IPv4Address": ipv4}
    fitted, dropped = endpoint_for_engine(ep, api_version)
    warn_dropped(dropped, api_version, where="EndpointSettings.")
    return fitted


def create_config(
    body: Mapping[str, Any],
    *,
    image: str,
    labels: Mapping[str, str],
    networks: Sequence[NetworkAttachment],
    aliases: bool,
    api_version: str,
) -> dict[str, Any]:
    """The `POST /containers/create` body: the first network as the primary one and the
    only endpoint (API 1.41 takes one at create; the others are connected before start)."""
    config, dropped = for_engine(body, api_version)
    warn_dropped(dropped, api_version)
    config["Image"] = image
    config["Labels"] = {**dict(body.get("Labels") or {}), **dict(labels)}
    if networks:
        first = networks[0]
        host = dict(config.get("HostConfig") or {})
        if host.get("NetworkMode") in (None, "", "default"):
            host["NetworkMode"] = first.network
        config["HostConfig"] = host
        ep = endpoint(first, aliases=aliases, api_version=api_version)
        config["NetworkingConfig"] = {"EndpointsConfig": {first.network: ep}}
    return config


def connect(api: Any, cid: str, network: str, ep: Mapping[str, Any]) -> None:
    """`POST /networks/{id}/connect` with the EndpointSettings as given: the SDK's
    connect_container_to_network builds its own from keyword arguments and has none for
    the newer keys (GwPriority), so the same request is sent the way the SDK sends it."""
    res = api._post_json(
        api._url("/networks/{0}/connect", network),
        data={"Container": cid, "EndpointConfig": dict(ep)},
    )
    api._raise_for_status(res)
