"""`links: [SERVICE:ALIAS]` on user-defined networks, as a network alias of SERVICE.

compose links to a container by its name (HostConfig.Links), so the alias resolves for
the linking container only. Berth's container names change at every rollout, so a link to
a name would break at the linked service's next rollout. Instead ALIAS becomes a network
alias of SERVICE on every network both services join: it resolves to SERVICE's current
containers there, across rollouts, and is published after the gate like the service name.
The difference from compose: every container on those networks resolves ALIAS, not only
the linking one (docs/compose.md). An alias that is another service's name stays refused
(compose/host_opts.py says why), and so does a link where either side has a network_mode.
The link itself then becomes `SERVICE`: a dependency, as compose-go adds it.
"""

from __future__ import annotations

from typing import Any


def alias_links(data: dict[str, Any]) -> None:
    """Rewrite the services (plain data, in place) before translation."""
    services = data.get("services")
    if not isinstance(services, dict):
        return
    for svc in services.values():
        links = svc.get("links") if isinstance(svc, dict) else None
        if not isinstance(links, list):
            continue
        for i, item in enumerate(links):
            if not isinstance(item, str):
                continue
            name, _, alias = item.partition(":")
            target = services.get(name)
            if not alias or alias == name or alias in services or not isinstance(target, dict):
                continue
            shared = _nets(svc) & _nets(target)
            if shared and _add_alias(target, shared, alias):
                links[i] = name


def _nets(svc: dict[str, Any]) -> set[str]:
    if svc.get("network_mode") is not None:
        return set()
    nets = svc.get("networks")
    if nets is None:
        return {"default"}
    return {str(n) for n in nets} if isinstance(nets, list | dict) else set()


def _add_alias(svc: dict[str, Any], nets: set[str], alias: str) -> bool:
    """ALIAS on each of `nets` of the service; False (nothing changed) if its networks are
    written in a form the translation will refuse anyway."""
    current = svc.get("networks")
    if current is None:
        current = {"default": None}
    elif isinstance(current, list):
        current = {str(n): None for n in current}
    if not isinstance(current, dict):
        return False
    out = dict(current)
    for net in sorted(nets):
        opts = out.get(net)
        if opts is None:
            opts = {}
        if not isinstance(opts, dict) or not isinstance(opts.get("aliases", []), list):
            return False
        aliases = list(opts.get("aliases", []))
        if alias not in aliases:
            aliases.append(alias)
        out[net] = {**opts, "aliases": aliases}
    svc["networks"] = out
    return True
