"""Which compose keys Berth honours and which it refuses, decided key by key.

Berth translates compose services to Engine API calls itself, so a key it does not
translate would be silently dropped by construction; instead every key of the compose-spec
schema is either translated (SERVICE_KEYS, with the module that does it) or refused with a
reason naming file, line and field (REJECTED_SERVICE_KEYS; any key not listed gets a
generic refusal). `x-*` keys are compose extensions and are ignored everywhere, except
`x-berth` (DESIGN §3). docs/compose.md is the table of every key and what Berth does.

Top level: name, services, networks, volumes, secrets, configs, include
(compose/include.py), x-berth, x-*; `version` is tolerated (obsolete in compose too);
models is refused.

Service keys, translated (target in the Engine API body, or ServiceSpec field):
  image, build (compose/build.py), command (Cmd), entrypoint (Entrypoint), environment +
  env_file (Env, compose/environment.py), ports (ExposedPorts + PortBindings), expose
  (ExposedPorts), networks + mac_address (NetworkAttachments by priority, NetworkMode,
  MacAddress: compose/networks.py), volumes (Binds as compose sends them, else Mounts:
  compose/mounts.py), secrets + configs (read-only bind
  Mounts, or ServiceSpec.files: compose/secrets.py), tmpfs (Tmpfs), healthcheck
  (Healthcheck; StartInterval marked in compose/api_versions.py), restart and
  deploy.restart_policy (RestartPolicy), init, stop_signal, stop_grace_period (StopTimeout),
  labels, logging (LogConfig), deploy.replicas/mode=replicated/resources (limits, memory
  reservation, device requests; reservations.cpus has no effect, as in compose),
  depends_on (condition, restart), user, working_dir, read_only, cap_add, cap_drop,
  extra_hosts, ulimits, mem_limit, mem_reservation, memswap_limit, cpus, cpu_shares,
  pids_limit, shm_size, hostname, domainname, privileged, security_opt, sysctls, dns,
  dns_search, dns_opt, tty, stdin_open, group_add, devices (short and long syntax),
  gpus (DeviceRequests), runtime (Runtime), oom_score_adj, platform and pull_policy
  (ServiceSpec fields for the shell: compose/image_opts.py), scale, container_name,
  attach (checked, no effect: `docker compose up`'s log option; Berth never attaches),
  develop (checked to be a mapping, no effect: `docker compose watch` reads it, `up` does
  not, and Berth deploys images, it does not sync files),
  network_mode and volumes_from (compose/identity.py, namespaces.py), extends and profiles
  (resolved by the loader before translation: compose/extends.py, profiles.py), x-berth,
  x-*; cpu_period, cpu_quota, cpu_rt_period, cpu_rt_runtime, cpuset, mem_swappiness,
  oom_kill_disable, cgroup (CgroupnsMode), cgroup_parent, userns_mode, device_cgroup_rules,
  storage_opt, blkio_config, pid, ipc, uts (PidMode, IpcMode, UTSMode; `service:NAME`
  refused), links (the service's own name only, on a shared network: a dependency) and
  external_links (HostConfig.Links, network_mode: bridge only): compose/host_opts.py.

Everything else is refused with the reason below: what compose without swarm cannot do
(deploy.placement, external secrets...), what needs a newer engine than API 1.41, and what
Berth deliberately does not do (use_api_socket...).
"""

from __future__ import annotations

SERVICE_KEYS = frozenset(
    {
        "image",
        "build",
        "command",
        "entrypoint",
        "environment",
        "env_file",
        "ports",
        "expose",
        "networks",
        "volumes",
        "tmpfs",
        "healthcheck",
        "restart",
        "init",
        "stop_signal",
        "stop_grace_period",
        "labels",
        "logging",
        "deploy",
        "depends_on",
        "user",
        "working_dir",
        "read_only",
        "cap_add",
        "cap_drop",
        "extra_hosts",
        "ulimits",
        "mem_limit",
        "mem_reservation",
        "memswap_limit",
        "cpus",
        "cpu_shares",
        "pids_limit",
        "shm_size",
        "hostname",
        "domainname",
        "privileged",
        "security_opt",
        "sysctls",
        "dns",
        "dns_search",
        "dns_opt",
        "tty",
        "stdin_open",
        "group_add",
        "devices",
        "oom_score_adj",
        "secrets",
        "configs",
        "runtime",
        "platform",
        "pull_policy",
        "gpus",
        "mac_address",
        "container_name",
        "network_mode",
        "volumes_from",
        "scale",
        "attach",  # `docker compose up` log option: no effect (Berth never attaches)
        "develop",  # `docker compose watch`'s: no effect, as under `docker compose up`
        "extends",
        "profiles",
        "x-berth",
        # compose/host_opts.py
        "cpu_period",
        "cpu_quota",
        "cpu_rt_period",
        "cpu_rt_runtime",
        "cpuset",
        "mem_swappiness",
        "oom_kill_disable",
        "cgroup",
        "cgroup_parent",
        "userns_mode",
        "device_cgroup_rules",
        "storage_opt",
        "blkio_config",
        "pid",
        "ipc",
        "uts",
        "links",
        "external_links",
    }
)

_API = "needs a newer Engine API than this engine's 1.41"
_WINDOWS = "is for Windows containers; Berth runs Linux containers"

REJECTED_SERVICE_KEYS: dict[str, str] = {
    "build": "",  # handled in the translator (compose/build.py)
    "annotations": f"{_API} (1.43)",
    "use_api_socket": "is not supported: it hands the container the Docker socket",
    "post_start": f"{_API} (lifecycle hooks run through exec; not implemented)",
    "pre_stop": f"{_API} (lifecycle hooks run through exec; not implemented)",
    "models": "is Docker Model Runner's; not supported",
    "provider": "delegates the service to a compose plugin; not supported",
    "label_file": "is not supported: write the labels into the compose file",
    "pull_refresh_after": "is not supported: use pull_policy daily, weekly or every_<duration>",
    "isolation": _WINDOWS,
    "credential_spec": _WINDOWS,
    "cpu_count": _WINDOWS,
    "cpu_percent": _WINDOWS,
}


def rejected_reason(key: str) -> str:
    """Reason shown for a service key Berth does not translate."""
    reason = REJECTED_SERVICE_KEYS.get(key)
    if reason:
        return f"'{key}' {reason}" if not reason.startswith("Berth") else reason
    return f"'{key}' is not supported by Berth (it would otherwise be silently ignored)"


TOP_LEVEL_KEYS = frozenset(
    {"name", "services", "networks", "volumes", "secrets", "configs", "version", "x-berth"}
)

NETWORK_KEYS = frozenset(
    {
        "driver",
        "internal",
        "external",
        "attachable",
        "driver_opts",
        "labels",
        "name",
        "ipam",
        "enable_ipv6",
    }
)
VOLUME_KEYS = frozenset({"driver", "external", "driver_opts", "labels", "name"})
