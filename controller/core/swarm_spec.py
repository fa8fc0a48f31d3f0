"""A Berth replica as a Swarm service: the container create body -> a ServiceSpec (API 1.41).

On the Swarm backend every Berth replica is a one-replica Swarm service (endpoint mode
dnsrr, on overlay networks): Swarm places the task, restarts it and reschedules it when its
node is lost; Berth creates, gates, routes and retires it exactly as it does a container on
one host (docs/swarm.md, "Why one service per replica").

The compose translation (core/compose) already turned the compose service into a `POST
/containers/create` body; this module carries each field of that body to its ServiceSpec
place. A field with no place raises SwarmSpecError naming it: the load-time check
(core/compose/swarm_check.py) refuses those compose keys with file, line and field first, so
reaching this error means the two disagree, which a unit test pins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from controller.core.model import NetworkAttachment

_NS = 1_000_000_000
# Fields of the create body the ServiceSpec has no use for (ExposedPorts: dnsrr tasks are
# reached on any port; NetworkMode: the networks are the spec's Networks).
_IGNORED_TOP = frozenset({"ExposedPorts", "Image", "Labels", "NetworkingConfig"})
_IGNORED_HOST = frozenset({"NetworkMode"})
_RESTART = {"always": "any", "unless-stopped": "any", "on-failure": "on-failure", "no": "none"}
_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
SERVICE_NAME_MAX = 63


class SwarmSpecError(ValueError):
    """A field of the create body that a Swarm service cannot carry."""


def service_name(name: str) -> str:
    """A Swarm service name from a container name: letters, digits and dashes, at most 63
    characters, starting and ending with a letter or digit (Swarm refuses the rest)."""
    out = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-") or "berth"
    if len(out) > SERVICE_NAME_MAX:
        import hashlib

        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        out = out[: SERVICE_NAME_MAX - 9].rstrip("-") + "-" + digest
    return out


def service_spec(
    *,
    name: str,
    image: str,
    body: Mapping[str, Any],
    labels: Mapping[str, str],
    networks: Sequence[NetworkAttachment],
    replicas: int,
    constraints: Sequence[str] = (),
    platform: str | None = None,
) -> dict[str, Any]:
    """The `POST /services/create` body. Raises SwarmSpecError for what it cannot carry."""
    host: Mapping[str, Any] = body.get("HostConfig") or {}
    left = sorted(
        {f"{k}" for k, v in body.items() if v not in (None, "", [], {})}
        - _IGNORED_TOP
        - set(_TOP)
        - {"HostConfig"}
    ) + sorted(
        {f"HostConfig.{k}" for k, v in host.items() if v not in (None, "", [], {}, False, 0)}
        - {f"HostConfig.{k}" for k in (*_IGNORED_HOST, *_HOST)}
    )
    if left:
        raise SwarmSpecError(f"a Swarm service cannot carry {', '.join(left)}")
    container: dict[str, Any] = {"Image": image, "Labels": {**(body.get("Labels") or {}), **labels}}
    for key, place in _TOP.items():
        if body.get(key) not in (None, "", [], {}):
            place(container, body[key])
    for key, put in _HOST.items():
        if host.get(key) not in (None, "", [], {}, False, 0):
            put(container, host[key])
    task: dict[str, Any] = {
        "ContainerSpec": {k: v for k, v in container.items() if not k.startswith("_")},
        "Networks": [_network(att) for att in networks],
        "ForceUpdate": 0,
    }
    resources = container.get("_resources")
    if resources:
        task["Resources"] = resources
    if container.get("_restart"):
        task["RestartPolicy"] = container["_restart"]
    if container.get("_log"):
        task["LogDriver"] = container["_log"]
    placement = _placement(constraints, platform)
    if placement:
        task["Placement"] = placement
    endpoint: dict[str, Any] = {"Mode": "dnsrr"}
    if container.get("_ports"):
        endpoint["Ports"] = container["_ports"]
    return {
        "Name": service_name(name),
        "Labels": dict(labels),
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": replicas}},
        "EndpointSpec": endpoint,
    }


def _placement(constraints: Sequence[str], platform: str | None) -> dict[str, Any]:
    """compose's placement constraints and `platform` (os[/arch]) as Swarm's Placement."""
    placement: dict[str, Any] = {}
    if constraints:
        placement["Constraints"] = list(constraints)
    if platform:
        parts = platform.split("/")
        arch = parts[1] if len(parts) > 1 else ""
        placement["Platforms"] = [{"OS": parts[0], "Architecture": arch}]
    return placement


def _network(att: NetworkAttachment) -> dict[str, Any]:
    out: dict[str, Any] = {"Target": att.network}
    if att.aliases:
        out["Aliases"] = list(att.aliases)
    return out


def _set(field: str) -> Any:
    def put(c: dict[str, Any], v: Any) -> None:
        c[field] = v

    return put


def _healthcheck(c: dict[str, Any], v: Any) -> None:
    c["Healthcheck"] = dict(v)


def _stop_timeout(c: dict[str, Any], v: Any) -> None:
    c["StopGracePeriod"] = int(float(v) * _NS)


def _env(c: dict[str, Any], v: Any) -> None:
    c["Env"] = list(v)


def _tmpfs(c: dict[str, Any], v: Mapping[str, str]) -> None:
    mounts = c.setdefault("Mounts", [])
    for target, opts in v.items():
        tmpfs: dict[str, Any] = {}
        for opt in filter(None, (opts or "").split(",")):
            key, _, value = opt.partition("=")
            if key == "size":
                tmpfs["SizeBytes"] = _bytes(value, "HostConfig.Tmpfs size")
            elif key == "mode":
                tmpfs["Mode"] = int(value, 8)
            else:
                raise SwarmSpecError(f"a Swarm tmpfs mount takes size and mode, not {key!r}")
        mounts.append({"Type": "tmpfs", "Target": target, "TmpfsOptions": tmpfs})


def _bytes(raw: str, what: str) -> int:
    m = _SIZE.match(raw.strip())
    if m is None:
        raise SwarmSpecError(f"{what}: {raw!r} is not a size")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _mounts(c: dict[str, Any], v: Sequence[Mapping[str, Any]]) -> None:
    keep = ("Type", "Source", "Target", "ReadOnly", "BindOptions", "VolumeOptions", "TmpfsOptions")
    c.setdefault("Mounts", []).extend({k: m[k] for k in keep if k in m} for m in v)


def _binds(c: dict[str, Any], v: Sequence[str]) -> None:
    """`SOURCE:TARGET[:OPTIONS]`: a path source is a bind (it must exist on the node), a name
    a volume (Swarm creates it on the node the task lands on)."""
    mounts = c.setdefault("Mounts", [])
    for bind in v:
        parts = bind.split(":")
        source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
        opts = set(parts[2].split(",")) if len(parts) > 2 else set()
        kind = "bind" if source.startswith("/") else "volume"
        mounts.append({"Type": kind, "Source": source, "Target": target, "ReadOnly": "ro" in opts})


def _resources(field: str, place: str) -> Any:
    def put(c: dict[str, Any], v: Any) -> None:
        res = c.setdefault("_resources", {})
        section, key = place.split(".")
        res.setdefault(section, {})[key] = v

    return put


def _restart(c: dict[str, Any], v: Mapping[str, Any]) -> None:
    name = str(v.get("Name") or "no")
    policy: dict[str, Any] = {"Condition": _RESTART.get(name, "any")}
    if v.get("MaximumRetryCount"):
        policy["MaxAttempts"] = int(v["MaximumRetryCount"])
    c["_restart"] = policy


def _log(c: dict[str, Any], v: Mapping[str, Any]) -> None:
    c["_log"] = {"Name": v.get("Type") or "json-file", "Options": dict(v.get("Config") or {})}


def _ports(c: dict[str, Any], v: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
    out = c.setdefault("_ports", [])
    for key, bindings in v.items():
        port, _, proto = key.partition("/")
        for b in bindings or ({"HostPort": ""},):
            if b.get("HostIp") not in (None, "", "0.0.0.0", "::"):
                raise SwarmSpecError(
                    f"a Swarm host-mode port binds every address; {b['HostIp']} cannot be chosen"
                )
            entry: dict[str, Any] = {
                "Protocol": proto or "tcp",
                "TargetPort": int(port),
                "PublishMode": "host",
            }
            if b.get("HostPort"):
                entry["PublishedPort"] = int(str(b["HostPort"]))
            out.append(entry)


def _hosts(c: dict[str, Any], v: Sequence[str]) -> None:
    out = []
    for entry in v:
        name, _, ip = entry.partition(":")
        out.append(f"{ip} {name}")
    c["Hosts"] = out


def _dns(key: str) -> Any:
    def put(c: dict[str, Any], v: Any) -> None:
        c.setdefault("DNSConfig", {})[key] = list(v)

    return put


def _ulimits(c: dict[str, Any], v: Sequence[Mapping[str, Any]]) -> None:
    c["Ulimits"] = [dict(u) for u in v]


_TOP: dict[str, Any] = {
    "Env": _env,
    "Cmd": _set("Args"),
    "Entrypoint": _set("Command"),
    "User": _set("User"),
    "WorkingDir": _set("Dir"),
    "Hostname": _set("Hostname"),
    "Tty": _set("TTY"),
    "OpenStdin": _set("OpenStdin"),
    "StopSignal": _set("StopSignal"),
    "StopTimeout": _stop_timeout,
    "Healthcheck": _healthcheck,
}
_HOST: dict[str, Any] = {
    "ReadonlyRootfs": _set("ReadOnly"),
    "Init": _set("Init"),
    "Tmpfs": _tmpfs,
    "Mounts": _mounts,
    "Binds": _binds,
    "RestartPolicy": _restart,
    "LogConfig": _log,
    "PortBindings": _ports,
    "NanoCpus": _resources("NanoCpus", "Limits.NanoCPUs"),
    "Memory": _resources("Memory", "Limits.MemoryBytes"),
    "PidsLimit": _resources("PidsLimit", "Limits.Pids"),
    "MemoryReservation": _resources("MemoryReservation", "Reservations.MemoryBytes"),
    "CapAdd": _set("CapabilityAdd"),
    "CapDrop": _set("CapabilityDrop"),
    "Sysctls": _set("Sysctls"),
    "Ulimits": _ulimits,
    "ExtraHosts": _hosts,
    "Dns": _dns("Nameservers"),
    "DnsSearch": _dns("Search"),
    "DnsOptions": _dns("Options"),
    "GroupAdd": _set("Groups"),
}
