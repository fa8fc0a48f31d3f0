"""One compose service -> ServiceSpec (the Engine API create body and Berth's options)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.compose.engine_rules import check_engine_rules
from controller.core.compose.fields import (
    check_keys,
    kv_pairs,
    want_bool,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.compose.keys import SERVICE_KEYS, rejected_reason
from controller.core.compose.mounts import translate_tmpfs, translate_volumes
from controller.core.compose.ports import translate_expose, translate_ports
from controller.core.compose.resources import translate_deploy, translate_simple_limits
from controller.core.compose.runtime import (
    translate_command,
    translate_devices,
    translate_environment,
    translate_extra_hosts,
    translate_healthcheck,
    translate_logging,
    translate_restart,
    translate_stop_grace,
    translate_ulimits,
)
from controller.core.compose.security import translate_security_opt
from controller.core.compose.xberth import service_options
from controller.core.model import DependsOn, NetworkAttachment, NetworkDef, ServiceSpec
from controller.core.reference import image_problem
from controller.core.yamlsrc import Path
from controller.errors import brief

_TOP_STR = {
    "user": "User",
    "working_dir": "WorkingDir",
    "hostname": "Hostname",
    "domainname": "Domainname",
    "stop_signal": "StopSignal",
}
_TOP_BOOL = {"tty": "Tty", "stdin_open": "OpenStdin"}
_HOST_BOOL = {"privileged": "Privileged", "read_only": "ReadonlyRootfs", "init": "Init"}
_HOST_LIST = {
    "cap_add": "CapAdd",
    "cap_drop": "CapDrop",
    "dns": "Dns",
    "dns_search": "DnsSearch",
    "dns_opt": "DnsOptions",
    "group_add": "GroupAdd",
}
_CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")

Handler = Callable[[StackCtx, Path, Any, Body], None]
_HANDLERS: dict[str, Handler] = {
    "volumes": translate_volumes,
    "tmpfs": translate_tmpfs,
    "restart": translate_restart,
    "logging": translate_logging,
    "ulimits": translate_ulimits,
    "extra_hosts": translate_extra_hosts,
    "devices": translate_devices,
    "security_opt": translate_security_opt,
}


def _check_keys(ctx: StackCtx, path: Path, svc: dict[str, Any]) -> None:
    for key in svc:
        if key.startswith("x-") and key != "x-berth":
            continue
        if key == "build":
            if "image" not in svc:
                ctx.loc.error(
                    (*path, key),
                    "Berth does not build images: 'build' is only "
                    "tolerated next to 'image', which Berth runs",
                )
        elif key not in SERVICE_KEYS:
            ctx.loc.error((*path, key), rejected_reason(key))


def _simple(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> None:
    for key, api in _TOP_STR.items():
        if svc.get(key) is not None and (text := want_str(ctx.loc, (*path, key), svc[key])):
            body.top[api] = text
    for table, target in ((_TOP_BOOL, body.top), (_HOST_BOOL, body.host)):
        for key, api in table.items():
            if svc.get(key) is not None:
                flag = want_bool(ctx.loc, (*path, key), svc[key])
                if flag is not None:
                    target[api] = flag
    for key, api in _HOST_LIST.items():
        if svc.get(key) is not None:
            items = want_str_list(ctx.loc, (*path, key), svc[key])
            if items is not None:
                body.host[api] = items
    if svc.get("sysctls") is not None:
        pairs = kv_pairs(ctx.loc, (*path, "sysctls"), svc["sysctls"])
        if pairs is not None:
            body.host["Sysctls"] = {k: v or "" for k, v in pairs.items()}
    for key, handler in _HANDLERS.items():
        if svc.get(key) is not None:
            handler(ctx, (*path, key), svc[key], body)


def _labels(ctx: StackCtx, path: Path, value: Any, body: Body) -> None:
    pairs = kv_pairs(ctx.loc, path, value)
    if pairs is None:
        return
    for key in pairs:
        if key.startswith(("com.docker.compose.", "berth.")):
            ctx.loc.error(
                (*path, key),
                "labels under com.docker.compose.* and berth.* are "
                "Berth's own (it finds its containers by them)",
            )
    body.top["Labels"] = {k: v or "" for k, v in pairs.items()}


_NO_ALIASES = ("host", "none", "bridge")  # the engine's own networks: no user aliases


def _fixed_address(ctx: StackCtx, path: Path, text: str | None, net: NetworkDef) -> str | None:
    """An IPv4 address, a host address of the network's configured subnet when it has one
    (the engine refuses anything else at create)."""
    if text is None:
        return None
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        ctx.loc.error(path, f"{brief(text)} is not an IPv4 address")
        return None
    subnets = [ipaddress.ip_network(p.subnet) for p in net.ipam]
    if subnets and not any(
        addr in s and addr not in (s.network_address, s.broadcast_address) for s in subnets
    ):
        ctx.loc.error(path, f"{text} is not a host address of {net.key}'s subnet")
        return None
    return text


def _networks(ctx: StackCtx, path: Path, name: str, value: Any) -> tuple[NetworkAttachment, ...]:
    """The service name is always an alias, as in compose; Berth connects aliases only once
    a container passed its gate."""
    if value is None:
        value = ["default"]
    if isinstance(value, list):
        value = {str(k): None for k in value}
    nets = want_map(ctx.loc, path, value)
    out: list[NetworkAttachment] = []
    for key, opts in (nets or {}).items():
        here = (*path, key)
        net = ctx.networks.get(key)
        if net is None:
            ctx.loc.error(here, f"network {brief(key)} is not declared under top-level 'networks'")
            continue
        if net.name in _NO_ALIASES:
            ctx.loc.error(here, f"network {net.name!r} takes no service aliases; use network_mode")
            continue
        aliases: list[str] = [name]
        ipv4: str | None = None
        if opts is not None and (spec := want_map(ctx.loc, here, opts)) is not None:
            check_keys(ctx.loc, here, spec, ("aliases", "ipv4_address"))
            extra = want_str_list(ctx.loc, (*here, "aliases"), spec.get("aliases", []))
            aliases += [a for a in extra or [] if a not in aliases]
            if spec.get("ipv4_address") is not None:
                ipv4 = want_str(ctx.loc, (*here, "ipv4_address"), spec["ipv4_address"])
                ipv4 = _fixed_address(ctx, (*here, "ipv4_address"), ipv4, net)
        out.append(NetworkAttachment(network=net.name, aliases=tuple(aliases), ipv4_address=ipv4))
    return tuple(out)


def _depends_on(ctx: StackCtx, path: Path, value: Any) -> tuple[DependsOn, ...]:
    if isinstance(value, list):
        value = {str(k): None for k in value}
    deps = want_map(ctx.loc, path, value)
    out: list[DependsOn] = []
    for other, spec in (deps or {}).items():
        here = (*path, other)
        condition = "service_started"
        if spec is not None and (opts := want_map(ctx.loc, here, spec)) is not None:
            check_keys(ctx.loc, here, opts, ("condition", "required"))
            condition = opts.get("condition", condition)
            if opts.get("required", True) is not True:
                ctx.loc.error((*here, "required"), "optional dependencies are not supported")
        if condition not in _CONDITIONS:
            ctx.loc.error((*here, "condition"), f"must be one of {', '.join(_CONDITIONS)}")
            continue
        out.append(DependsOn(service=other, condition=condition))  # type: ignore[arg-type]
    return tuple(out)


def _ports(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> set[int]:
    ports: set[int] = set()
    if svc.get("ports") is not None:
        ports |= translate_ports(ctx, (*path, "ports"), svc["ports"], body)
    if svc.get("expose") is not None:
        ports |= translate_expose(ctx, (*path, "expose"), svc["expose"], body)
    return ports


def _image(ctx: StackCtx, path: Path, svc: dict[str, Any]) -> str | None:
    image = svc.get("image")
    if image is None:
        ctx.loc.error(path, "needs 'image' (Berth runs images, it does not build them)")
        return None
    problem = image_problem(image) if isinstance(image, str) else "must be a string"
    if problem:
        ctx.loc.error((*path, "image"), problem)
        return None
    return str(image)


def _grace(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> float:
    if svc.get("stop_grace_period") is None:
        return 10.0  # Docker's default
    seconds = translate_stop_grace(
        ctx, (*path, "stop_grace_period"), svc["stop_grace_period"], body
    )
    return 10.0 if seconds is None else seconds


def translate_service(ctx: StackCtx, name: str, raw: Any) -> tuple[ServiceSpec | None, set[int]]:
    """Returns the spec (None when the image is unusable) and the container ports it lists."""
    path: Path = ("services", name)
    svc = want_map(ctx.loc, path, raw if raw is not None else {})
    if svc is None:
        return None, set()
    _check_keys(ctx, path, svc)
    body = Body()
    translate_command(ctx, svc, path, body)
    translate_environment(ctx, svc, path, body)
    ports = _ports(ctx, path, svc, body)
    _simple(ctx, path, svc, body)
    translate_simple_limits(ctx, svc, path, body)
    if svc.get("labels") is not None:
        _labels(ctx, (*path, "labels"), svc["labels"], body)
    has_hc = False
    if svc.get("healthcheck") is not None:
        has_hc = translate_healthcheck(ctx, (*path, "healthcheck"), svc["healthcheck"], body)
    grace = _grace(ctx, path, svc, body)
    replicas = None
    if svc.get("deploy") is not None:
        replicas = translate_deploy(ctx, (*path, "deploy"), svc["deploy"], body)
    networks = _networks(ctx, (*path, "networks"), name, svc.get("networks"))
    if replicas is not None and replicas > 1 and any(n.ipv4_address for n in networks):
        ctx.loc.error((*path, "deploy"), "a fixed ipv4_address can be held by one replica only")
    if networks:
        body.host["NetworkMode"] = networks[0].network
    depends = _depends_on(ctx, (*path, "depends_on"), svc.get("depends_on") or [])
    berth = service_options(ctx.loc, (*path, "x-berth"), svc.get("x-berth"))
    image = _image(ctx, path, svc)
    if image is None:
        return None, ports
    where = ctx.loc.where(path)
    check_engine_rules(ctx, path, svc, body)
    if body.host:
        body.top["HostConfig"] = body.host
    spec = ServiceSpec(
        project=ctx.project,
        name=name,
        image=image,
        replicas=1 if replicas is None else replicas,
        create=body.top,
        networks=networks,
        depends_on=depends,
        berth=berth,
        has_healthcheck=has_hc,
        stop_grace_period=grace,
        source_file=where.file,
        source_line=where.line,
    )
    return spec, ports
