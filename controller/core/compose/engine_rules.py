"""What the Docker engine (API 1.41) or runc would refuse at create or start, refused by
`berth validate` first, at the compose key that set it.

A value that validates but fails at create turns every rollout of that revision into a
rollback; the engine's own message then arrives without a file or line. These rules run on
the translated create body, so a value set by a legacy key or by `deploy.resources` is
checked the same way.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from controller.core.compose.context import Body, StackCtx
from controller.core.yamlsrc import Path
from controller.errors import brief

MIN_MEMORY = 6 * 1024 * 1024  # the engine's minimum for a memory limit or reservation
MIN_NANO_CPUS = 10_000_000  # 0.01 CPU: a CFS quota below 1 ms of a 100 ms period is refused
MAX_HOSTNAME = 64  # sethostname(2)

CAPABILITIES = frozenset(
    [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
        "ALL",
    ]
)
SIGNALS = frozenset(
    [
        "HUP",
        "INT",
        "QUIT",
        "ILL",
        "TRAP",
        "ABRT",
        "IOT",
        "BUS",
        "FPE",
        "KILL",
        "USR1",
        "SEGV",
        "USR2",
        "PIPE",
        "ALRM",
        "TERM",
        "STKFLT",
        "CHLD",
        "CONT",
        "STOP",
        "TSTP",
        "TTIN",
        "TTOU",
        "URG",
        "XCPU",
        "XFSZ",
        "VTALRM",
        "PROF",
        "WINCH",
        "IO",
        "POLL",
        "PWR",
        "SYS",
        "RTMIN",
        "RTMAX",
    ]
)
ULIMITS = frozenset(
    [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ]
)
SYSCTLS = frozenset(
    {
        *("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall"),
        *("kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"),
    }
)
LOG_OPTIONS = {  # the engine refuses options its log driver does not know
    "json-file": frozenset(
        ["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"]
    ),
    "local": frozenset(["max-size", "max-file", "compress"]),
    "none": frozenset(),
}
_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*[kKmMgGtT]?[bB]?")
_RT_SIGNAL = re.compile(r"RTMIN\+([0-9]{1,2})|RTMAX-([0-9]{1,2})")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


def check_engine_rules(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> None:
    top, host = body.top, body.host
    _memory(ctx, path, svc, host)
    _signal(ctx, (*path, "stop_signal"), top.get("StopSignal"))
    workdir = top.get("WorkingDir")
    if workdir and not str(workdir).startswith("/"):
        ctx.loc.error((*path, "working_dir"), f"{brief(workdir)} must be an absolute path")
    hostname = top.get("Hostname")
    if hostname and (len(hostname) > MAX_HOSTNAME or not _HOSTNAME.fullmatch(hostname)):
        why = f"at most {MAX_HOSTNAME} letters, digits, '.' and '-'"
        ctx.loc.error((*path, "hostname"), f"{brief(hostname)} is not a host name ({why})")
    for key, field in (("CapAdd", "cap_add"), ("CapDrop", "cap_drop")):
        for i, cap in enumerate(host.get(key) or []):
            name = str(cap).upper().removeprefix("CAP_")
            if name not in CAPABILITIES:
                ctx.loc.error((*path, field, i), f"unknown capability {brief(cap)}")
    for limit in host.get("Ulimits") or []:
        _ulimit(ctx, (*path, "ulimits", limit["Name"]), limit)
    for name in host.get("Sysctls") or {}:
        if not _namespaced(name) or (name.startswith("net.") and host.get("NetworkMode") == "host"):
            why = "not a namespaced sysctl a container may set (kernel.msg*, kernel.sem, "
            ctx.loc.error((*path, "sysctls", name), why + "kernel.shm*, fs.mqueue.*, net.*)")
    log = host.get("LogConfig")
    if log is not None and log.get("Type") in LOG_OPTIONS:
        _log_options(ctx, (*path, "logging", "options"), log["Type"], log.get("Config") or {})
    _host_options(ctx, path, svc, body)


def _host_options(ctx: StackCtx, path: Path, svc: dict[str, Any], body: Body) -> None:
    """Combinations the engine refuses (daemon_unix.go, runconfig): NanoCpus with a CFS
    period or quota, a realtime runtime above its period, a hostname in the host's UTS
    namespace, one mount point in Binds and in Mounts (a secret or config over a bind)."""
    host = body.host
    if host.get("NanoCpus"):
        for key, api in (("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota")):
            if host.get(api, 0) > 0:
                why = "cannot be set with cpus (or deploy.resources.limits.cpus): the engine "
                ctx.loc.error((*path, key), why + "refuses a CPU limit given both ways")
    period, runtime = host.get("CpuRealtimePeriod") or 0, host.get("CpuRealtimeRuntime") or 0
    if period > 0 and runtime > period:
        why = f"{runtime} is above cpu_rt_period {period} (the engine refuses it)"
        ctx.loc.error((*path, "cpu_rt_runtime"), why)
    if host.get("UTSMode") == "host" and body.top.get("Hostname"):
        ctx.loc.error((*path, "uts"), "uts: host takes the host's name; drop hostname")
    mounted = {posixpath.normpath(str(m.get("Target", ""))) for m in host.get("Mounts") or []}
    for entry in host.get("Binds") or []:
        target = posixpath.normpath(str(entry).split(":")[1])
        if target in mounted:
            why = f"duplicate mount point {brief(target)} (a secret or config mounts there too)"
            ctx.loc.error((*path, "volumes"), why)


def _key(svc: dict[str, Any], path: Path, legacy: str, *deploy: str) -> Path:
    """Where a value came from: the legacy key when the service has it, else deploy's."""
    return (*path, legacy) if legacy in svc else (*path, "deploy", "resources", *deploy)


def _memory(ctx: StackCtx, path: Path, svc: dict[str, Any], host: dict[str, Any]) -> None:
    memory = host.get("Memory") or 0
    reservation = host.get("MemoryReservation") or 0
    swap = host.get("MemorySwap") or 0
    cpus = host.get("NanoCpus") or 0
    limit_at = _key(svc, path, "mem_limit", "limits", "memory")
    reserve_at = _key(svc, path, "mem_reservation", "reservations", "memory")
    if 0 < memory < MIN_MEMORY:
        ctx.loc.error(limit_at, "a memory limit must be at least 6MB")
    if 0 < reservation < MIN_MEMORY:
        ctx.loc.error(reserve_at, "a memory reservation must be at least 6MB")
    if memory > 0 and reservation > memory:
        ctx.loc.error(reserve_at, "the reservation is above the memory limit")
    if swap > 0 and memory <= 0:
        ctx.loc.error((*path, "memswap_limit"), "needs a memory limit (mem_limit) too")
    elif swap > 0 and swap < memory:
        ctx.loc.error((*path, "memswap_limit"), "must be at least the memory limit")
    if 0 < cpus < MIN_NANO_CPUS:
        ctx.loc.error(_key(svc, path, "cpus", "limits", "cpus"), "must be at least 0.01")


def _signal(ctx: StackCtx, path: Path, value: Any) -> None:
    if value is None:
        return
    text = str(value).upper().removeprefix("SIG")
    if text.isdigit():
        ok = 1 <= int(text) <= 64
    elif (m := _RT_SIGNAL.fullmatch(text)) is not None:
        ok = int(m.group(1) or m.group(2)) <= 15
    else:
        ok = text in SIGNALS
    if not ok:
        ctx.loc.error(path, f"unknown signal {brief(value)}")


def _ulimit(ctx: StackCtx, path: Path, limit: dict[str, Any]) -> None:
    name, soft, hard = limit["Name"], limit["Soft"], limit["Hard"]
    if name not in ULIMITS:
        ctx.loc.error(path, f"unknown ulimit {brief(name)}; known: {', '.join(sorted(ULIMITS))}")
    elif soft < -1 or hard < -1:
        ctx.loc.error(path, "limits are -1 (unlimited) or at least 0")
    elif hard != -1 and (soft == -1 or soft > hard):
        ctx.loc.error(path, f"the soft limit {soft} is above the hard limit {hard}")


def _namespaced(name: str) -> bool:
    """runc sets only sysctls of the container's own namespaces (IPC, network)."""
    return name in SYSCTLS or name.startswith(("fs.mqueue.", "net."))


def _log_options(ctx: StackCtx, path: Path, driver: str, options: dict[str, str]) -> None:
    for key, value in options.items():
        if key not in LOG_OPTIONS[driver]:
            known = ", ".join(sorted(LOG_OPTIONS[driver])) or "none"
            ctx.loc.error((*path, key), f"unknown {driver} log option; known: {known}")
        elif key == "max-size" and not _SIZE.fullmatch(value):
            ctx.loc.error((*path, key), f"{brief(value)} is not a size such as 10m")
        elif key == "max-file" and not (value.isdigit() and int(value) >= 1):
            ctx.loc.error((*path, key), f"{brief(value)} is not a whole number of files >= 1")
        elif key == "compress" and value not in ("true", "false"):
            ctx.loc.error((*path, key), "must be true or false")
