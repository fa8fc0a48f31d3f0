"""Which compose keys Berth honours and which it refuses, decided key by key.

Berth translates compose services to Engine API calls itself, so a key it does not
translate would be silently dropped by construction; instead every key is either
translated or reported as an error naming file, line and field. `x-*` keys are compose
extensions and are ignored everywhere, except `x-berth` (DESIGN §3).

Top level
  supported: name, services, networks, volumes, x-berth, x-*;
  tolerated: version (obsolete in compose too);
  rejected:  secrets, configs, include, models — anything else.

Service keys, supported (target in the Engine API body):
  image, command (Cmd), entrypoint (Entrypoint), environment + env_file (Env), ports
  (ExposedPorts + HostConfig.PortBindings), expose (ExposedPorts), networks (separate
  NetworkAttachments, HostConfig.NetworkMode = first network), volumes (HostConfig.Mounts),
  tmpfs (HostConfig.Tmpfs), healthcheck (Healthcheck), restart (HostConfig.RestartPolicy),
  init, stop_signal, stop_grace_period (StopTimeout), labels (Labels), logging
  (HostConfig.LogConfig), deploy.replicas, deploy.mode=replicated, deploy.resources
  (limits cpus/memory/pids, reservations cpus/memory/devices), depends_on, user,
  working_dir, read_only, cap_add, cap_drop, extra_hosts, ulimits, mem_limit,
  mem_reservation, memswap_limit, cpus, cpu_shares, pids_limit, shm_size, hostname,
  domainname, privileged, security_opt, sysctls, dns, dns_search, dns_opt, tty,
  stdin_open, group_add, devices (short syntax), oom_score_adj, x-berth, x-*;
  tolerated: build (only together with image: Berth never builds, it runs `image`).

Service keys, rejected with a reason: container_name, secrets, configs, network_mode, pid,
ipc, profiles, extends, links, external_links, volumes_from, scale, platform, pull_policy,
cgroup_parent, userns_mode, runtime, isolation, storage_opt, credential_spec, develop,
post_start, pre_stop, annotations, attach, uts, mac_address, cgroup, device_cgroup_rules,
blkio_config, cpu_count, cpu_percent, cpu_period, cpu_quota, cpu_rt_period, cpu_rt_runtime,
cpuset, mem_swappiness, oom_kill_disable, gpus, label_file, use_api_socket, models,
provider; and deploy.{placement, endpoint_mode, update_config, rollback_config,
restart_policy, labels, mode: global}, resources.reservations.generic_resources,
healthcheck.start_interval (needs Engine API 1.44; this engine speaks 1.41).
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
        "x-berth",
    }
)

_SWARM = "is a swarm/compose feature Berth does not implement"

REJECTED_SERVICE_KEYS: dict[str, str] = {
    "container_name": (
        "Berth names containers itself ({project}-{service}-{revision}-{n}) so that two "
        "revisions can run side by side; remove container_name"
    ),
    "secrets": f"{_SWARM}; mount the file with a read-only bind volume instead",
    "configs": f"{_SWARM}; mount the file with a read-only bind volume instead",
    "network_mode": "is not supported: Berth attaches containers to compose networks",
    "pid": "sharing a PID namespace is not supported",
    "ipc": "sharing an IPC namespace is not supported",
    "uts": "sharing a UTS namespace is not supported",
    "profiles": "is not supported: Berth runs every service of the compose file",
    "extends": "is not supported: write the service out (or use YAML anchors)",
    "links": "is legacy and not supported: use networks (service names resolve by DNS)",
    "external_links": "is legacy and not supported: use an external network",
    "volumes_from": "is not supported: share a named volume instead",
    "scale": "is not supported: use deploy.replicas or `replicas` in desired/",
    "platform": "is not supported: Berth pulls the image for the engine's platform",
    "pull_policy": "is not supported: Berth pulls an image when it is absent",
    "build": "",  # handled in the translator: tolerated only together with image
    "gpus": "is not supported: use deploy.resources.reservations.devices",
}


def rejected_reason(key: str) -> str:
    """Reason shown for a service key Berth does not translate."""
    reason = REJECTED_SERVICE_KEYS.get(key)
    if reason:
        return f"'{key}' {reason}" if not reason.startswith("Berth") else reason
    return f"'{key}' is not supported by Berth (it would otherwise be silently ignored)"


TOP_LEVEL_KEYS = frozenset({"name", "services", "networks", "volumes", "version", "x-berth"})

NETWORK_KEYS = frozenset(
    {"driver", "internal", "external", "attachable", "driver_opts", "labels", "name", "ipam"}
)
VOLUME_KEYS = frozenset({"driver", "external", "driver_opts", "labels", "name"})
