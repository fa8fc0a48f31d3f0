"""One compose service -> ServiceSpec (the Engine API create body and Berth's options)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.core.compose.build import default_image, translate_build
from controller.core.compose.context import Body, StackCtx
from controller.core.compose.engine_rules import check_engine_rules
from controller.core.compose.environment import translate_environment
from controller.core.compose.fields import (
    check_keys,
    kv_pairs,
    want_bool,
    want_map,
    want_str,
    want_str_list,
)
from controller.core.compose.host_opts import translate_host_options
from controller.core.compose.identity import Identity, check_peers, translate_identity
from controller.core.compose.image_opts import (
    translate_platform,
    translate_pull_policy,
    translate_runtime,
)
from controller.core.compose.keys import SERVICE_KEYS, rejected_reason
from controller.core.compose.mounts import translate_tmpfs, translate_volumes
from controller.core.compose.networks import translate_networks
from controller.core.compose.ports import translate_expose, translate_ports
from controller.core.compose.resources import (
    one_per_host,
    translate_deploy,
    translate_gpus,
    translate_simple_limits,
)
from controller.core.compose.runtime import (
    translate_command,
    translate_devices,
    translate_extra_hosts,
    translate_healthcheck,
    translate_logging,
    translate_restart,
    translate_stop_grace,
    translate_ulimits,
)
from controller.core.compose.secrets import translate_file_objects
from controller.core.compose.security import translate_security_opt
from controller.core.compose.swarm_check import swarm_constraints
from controller.core.compose.swarm_keys import SWARM_REFUSED_KEYS
from controller.core.compose.xberth import service_options
from controller.core.model import BerthOptions, DependsOn, NetworkAttachment, ServiceSpec
from controller.core.reference import image_problem
from controller.core.yamlsrc import Path

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
    "runtime": translate_runtime,
}


def _check_keys(ctx: StackCtx, path: Path, svc: dict[str, Any]) -> None:
    for key in svc:
        if key.startswith("x-") and key != "x-berth":
            continue
        if key == "build":
            continue  # translate_build
        if key not in SERVICE_KEYS:
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
    if svc.get("attach") is not None:  # compose up's log option: checked, no effect
        want_bool(ctx.loc, (*path, "attach"), svc["attach"])
    if svc.get("develop") is not None:  # compose watch's; `up` ignores it as Berth does
        want_map(ctx.loc, (*path, "develop"), svc["develop"])
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


def _depends_on(ctx: StackCtx, path: Path, value: Any) -> tuple[DependsOn, ...]:
    if isinstance(value, list):
        value = {str(k): None for k in value}
    deps = want_map(ctx.loc, path, value)
    out: list[DependsOn] = []
    for other, spec in (deps or {}).items():
        here = (*path, other)
        condition, restart, required = "service_started", False, True
        if spec is not None and (opts := want_map(ctx.loc, here, spec)) is not None:
            check_keys(ctx.loc, here, opts, ("condition", "required", "restart"))
            condition = opts.get("condition", condition)
            required = want_bool(ctx.loc, (*here, "required"), opts.get("required", True)) in (
                True,
                None,
            )
            restart = want_bool(ctx.loc, (*here, "restart"), opts.get("restart", False)) is True
        if condition not in _CONDITIONS:
            ctx.loc.error((*here, "condition"), f"must be one of {', '.join(_CONDITIONS)}")
            continue
        out.append(DependsOn(other, condition, restart, required))  # type: ignore[arg-type]
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
        if svc.get("build") is not None:  # compose names what it builds {project}-{service}
            return default_image(ctx.project, str(path[-1]))
        ctx.loc.error(path, "needs 'image' or 'build'")
        return None
    problem = image_problem(image) if isinstance(image, str) else "must be a string"
    if problem:
        ctx.loc.error((*path, "image"), problem)
        return None
    return str(image)


def _compat(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> dict[str, Any]:
    """The keys added for compose compatibility (issue 12): ServiceSpec fields."""
    if svc.get("gpus") is not None:  # after deploy: compose lists reservations first
        translate_gpus(ctx, (*path, "gpus"), svc["gpus"], body)
    kw: dict[str, Any] = {"files": translate_file_objects(ctx, path, svc, body)}
    if svc.get("platform") not in (None, ""):  # compose: an empty platform is unset
        kw["platform"] = translate_platform(ctx, (*path, "platform"), svc["platform"])
    if svc.get("pull_policy") is not None:
        kw["pull_policy"] = translate_pull_policy(ctx, (*path, "pull_policy"), svc["pull_policy"])
    deploy = svc.get("deploy")
    if ctx.backend == "swarm" and isinstance(deploy, dict) and deploy.get("placement") is not None:
        here = (*path, "deploy", "placement")
        kw["constraints"] = swarm_constraints(ctx.loc, here, deploy["placement"])
    return kw


def _grace(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> float:
    if svc.get("stop_grace_period") is None:
        return 10.0  # Docker's default
    seconds = translate_stop_grace(
        ctx, (*path, "stop_grace_period"), svc["stop_grace_period"], body
    )
    return 10.0 if seconds is None else seconds


def _containers(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body
) -> tuple[Identity, tuple[NetworkAttachment, ...]]:
    """How many containers, named how, on which networks (or in whose namespace)."""
    replicas = None
    if svc.get("deploy") is not None:
        replicas = translate_deploy(ctx, (*path, "deploy"), svc["deploy"], body)
    ident = translate_identity(ctx, path, svc, body, replicas)
    shared = svc.get("network_mode") is not None  # no networks of its own (namespaces.py)
    networks = () if shared else translate_networks(ctx, path, svc, body)
    many = ident.replicas is not None and ident.replicas > 1
    if many and ServiceSpec("", "", "", 1, body.top, networks).fixed_address:
        ctx.loc.error((*path, "deploy"), "a fixed IP or MAC address is held by one replica only")
    return ident, networks


def _relations(
    ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body, peers: tuple[str, ...]
) -> tuple[tuple[DependsOn, ...], BerthOptions]:
    """depends_on, with what links and shared namespaces imply; Berth's own options."""
    depends = _depends_on(ctx, (*path, "depends_on"), svc.get("depends_on") or [])
    depends += translate_host_options(ctx, path, svc, body)  # links imply dependencies
    berth = service_options(ctx.loc, (*path, "x-berth"), svc.get("x-berth"))
    implied = check_peers(ctx, path, {"HostConfig": body.host}, berth, peers)
    depends += tuple(d for d in implied if d.service not in {x.service for x in depends})
    return depends, berth


def translate_service(ctx: StackCtx, name: str, raw: Any) -> tuple[ServiceSpec | None, set[int]]:
    """Returns the spec (None when the image is unusable) and the container ports it lists."""
    path: Path = ("services", name)
    svc = want_map(ctx.loc, path, raw if raw is not None else {})
    if svc is None:
        return None, set()
    _check_keys(ctx, path, svc)
    if ctx.backend == "swarm":  # refused by compose/swarm_check.py, once: not translated
        svc = {k: v for k, v in svc.items() if k not in SWARM_REFUSED_KEYS}
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
    ident, networks = _containers(ctx, path, svc, body)
    replicas = ident.replicas
    compat = _compat(ctx, path, svc, body)
    depends, berth = _relations(ctx, path, svc, body, ident.peers)
    image = _image(ctx, path, svc)
    build = None
    if svc.get("build") is not None:
        build = translate_build(ctx, (*path, "build"), svc["build"], has_image="image" in svc)
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
        build=build,
        container_name=ident.container_name,
        one_per_host=one_per_host(ctx, svc),
        peers=ident.peers,
        **compat,
    )
    if berth.upstream is not None:  # known from x-berth; need not be in expose/ports
        ports.add(berth.upstream.port)  # (the check in stack._cross_check is moot now)
    return spec, ports
