"""What a stack with `x-berth.backend: swarm` may say, key by key, and why.

On the swarm backend each Berth replica is a one-replica Swarm service (endpoint mode
dnsrr) on overlay networks, and nginx, also a Swarm service, is switched through its Lua
dynamic upstreams. A compose key a Swarm service spec (Engine API 1.41, Docker 20.10)
cannot carry would be dropped by `docker stack deploy`; Berth refuses it instead, naming
file, line and field (compose/swarm_check.py). Every key of keys.SERVICE_KEYS is in
exactly one of SWARM_SERVICE_KEYS (where Swarm carries it) and SWARM_REFUSED_KEYS (why
not); keys.REJECTED_SERVICE_KEYS stay refused on both backends. docs/compose.md ("Swarm
backend") is this table for operators.
"""

from __future__ import annotations

SWARM_SERVICE_KEYS: dict[str, str] = {
    "image": "ContainerSpec.Image (pulled by every node from its registry)",
    "command": "ContainerSpec.Args",
    "entrypoint": "ContainerSpec.Command",
    "environment": "ContainerSpec.Env",
    "env_file": "ContainerSpec.Env (read by Berth)",
    "labels": "ContainerSpec.Labels",
    "healthcheck": "ContainerSpec.Healthcheck",
    "init": "ContainerSpec.Init",
    "user": "ContainerSpec.User",
    "working_dir": "ContainerSpec.Dir",
    "read_only": "ContainerSpec.ReadOnly",
    "cap_add": "ContainerSpec.CapabilityAdd",
    "cap_drop": "ContainerSpec.CapabilityDrop",
    "sysctls": "ContainerSpec.Sysctls",
    "ulimits": "ContainerSpec.Ulimits",
    "hostname": "ContainerSpec.Hostname",
    "dns": "ContainerSpec.DNSConfig",
    "dns_search": "ContainerSpec.DNSConfig",
    "dns_opt": "ContainerSpec.DNSConfig",
    "extra_hosts": "ContainerSpec.Hosts",
    "tty": "ContainerSpec.TTY",
    "stdin_open": "ContainerSpec.OpenStdin",
    "group_add": "ContainerSpec.Groups",
    "stop_signal": "ContainerSpec.StopSignal",
    "stop_grace_period": "ContainerSpec.StopGracePeriod",
    "volumes": "ContainerSpec.Mounts: named volumes, binds (the source must exist on the node)",
    "tmpfs": "ContainerSpec.Mounts (type tmpfs)",
    "logging": "TaskTemplate.LogDriver",
    "restart": "TaskTemplate.RestartPolicy",
    "deploy": "replicas, resources, restart_policy, placement.constraints (SWARM_DEPLOY)",
    "mem_limit": "TaskTemplate.Resources.Limits (as deploy.resources)",
    "mem_reservation": "TaskTemplate.Resources.Reservations (as deploy.resources)",
    "cpus": "TaskTemplate.Resources.Limits (as deploy.resources)",
    "pids_limit": "TaskTemplate.Resources.Limits.Pids (as deploy.resources)",
    "platform": "TaskTemplate.Placement.Platforms",
    "ports": "EndpointSpec.Ports, mode host, one port each (SWARM_PORTS)",
    "expose": "documentation only: dnsrr services reach each other on every port",
    "networks": "TaskTemplate.Networks with Aliases (SWARM_ATTACHMENT)",
    "depends_on": "Berth orders rollouts by it",
    "pull_policy": "Berth pulls as it says",
    "scale": "the replica count",
    "attach": "no effect: `docker compose up`'s log option",
    "develop": "no effect: `docker compose watch`'s option",
    "extends": "resolved when the file loads",
    "profiles": "resolved when the file loads",
    "x-berth": "Berth's own options",
}

_SPEC = "has no field in a Swarm service spec (Engine API 1.41); `docker stack deploy` drops it"
_NAMESPACE = "cannot join the host's or another container's namespace in a Swarm service"
_NOT_YET = "is not supported on the swarm backend yet (Swarm secrets and configs are "
_NOT_YET += "cluster objects Berth does not manage); use the local backend"

SWARM_REFUSED_KEYS: dict[str, str] = {
    "build": "cannot run on the swarm backend: images must come from a registry every node "
    "pulls from; build and push the image, then name it in `image:`",
    "container_name": "cannot be set: Swarm names a service's containers itself",
    "network_mode": "cannot be set: Swarm services join overlay networks (`networks:`)",
    "volumes_from": "does not exist in Swarm: mount the named volume itself",
    "links": "do not exist in Swarm: services reach each other by name on a shared network",
    "external_links": "do not exist in Swarm: attach the service to the other's network",
    "privileged": "is not possible for a Swarm service (API 1.41)",
    "devices": "cannot be mapped into a Swarm service (API 1.41)",
    "gpus": "cannot be requested by a Swarm service (API 1.41 has no device requests)",
    "runtime": "cannot be chosen for a Swarm service: it runs the engine's default runtime",
    "pid": _NAMESPACE,
    "ipc": _NAMESPACE,
    "uts": _NAMESPACE,
    "userns_mode": _NAMESPACE,
    "cgroup": _SPEC,
    "cgroup_parent": _SPEC,
    "security_opt": "has no field in a Swarm service spec (seccomp and AppArmor need API "
    "1.44; no-new-privileges 1.46)",
    "device_cgroup_rules": _SPEC,
    "storage_opt": _SPEC,
    "blkio_config": _SPEC,
    "oom_score_adj": _SPEC,
    "oom_kill_disable": _SPEC,
    "cpu_period": _SPEC,
    "cpu_quota": _SPEC,
    "cpu_rt_period": _SPEC,
    "cpu_rt_runtime": _SPEC,
    "cpuset": _SPEC,
    "cpu_shares": _SPEC,
    "mem_swappiness": _SPEC,
    "memswap_limit": _SPEC,
    "shm_size": f"{_SPEC}; mount a tmpfs at /dev/shm instead",
    "domainname": _SPEC,
    "mac_address": "cannot be fixed: Swarm assigns addresses on overlay networks",
    "secrets": _NOT_YET,
    "configs": _NOT_YET,
}

# deploy.*: keys judged by swarm_check (resources.py leaves them to it on this backend)
SWARM_DEPLOY: dict[str, str] = {
    "mode": "only `replicated`: each Berth replica is its own one-replica service, so "
    "`global` (one task per node) cannot be rolled out replica by replica; use replicas "
    "and placement.constraints",
    "endpoint_mode": "only `dnsrr`: `vip` needs IPVS, which this kernel lacks, and Berth "
    "routes traffic through nginx itself (every replica is dnsrr)",
    "update_config": "Berth runs the rollout itself (health gate, traffic switch): use "
    "x-berth (strategy, progress_deadline, bake)",
    "rollback_config": "Berth rolls back by itself: tune it with x-berth",
    "labels": "Berth labels the Swarm services it creates: use the service's `labels:`",
    "placement": "",  # allowed: constraints; the keys below are refused
}
SWARM_PLACEMENT_REFUSED: dict[str, str] = {
    "preferences": "has no effect: each Berth replica is a one-replica service and Swarm "
    "spreads only the tasks of one service; use constraints",
    "max_replicas_per_node": "has no effect: each Berth replica is a one-replica service; "
    "use constraints",
}
SWARM_RESERVATIONS_REFUSED: dict[str, str] = {
    "devices": "cannot be reserved by a Swarm service (API 1.41 has no device requests)",
    "generic_resources": "is not supported on the swarm backend yet",
}

# a service's `networks.NAME.*`: only aliases reach a Swarm network attachment
SWARM_ATTACHMENT_REFUSED: dict[str, str] = {
    "ipv4_address": "cannot be fixed: Swarm assigns addresses on overlay networks",
    "ipv6_address": "cannot be fixed: Swarm assigns addresses on overlay networks",
    "link_local_ips": "cannot be set on a Swarm network attachment",
    "mac_address": "cannot be fixed: Swarm assigns addresses on overlay networks",
    "priority": "cannot be set on a Swarm network attachment (no primary network)",
    "gw_priority": "cannot be set on a Swarm network attachment",
    "driver_opts": "cannot be set on a Swarm network attachment (`docker stack deploy` has none)",
}

# `ports`: one host-mode port per mapping, published on every address of its node
SWARM_PORTS: dict[str, str] = {
    "host_ip": "a Swarm port publishes on every address of its node: no host IP",
    "range": "one port per mapping on the swarm backend (host-mode single ports)",
    "ingress": "the routing mesh needs IPVS, which this kernel lacks, and Berth routes "
    "traffic itself: use mode: host (the default)",
}

# top level
SWARM_NETWORK_DRIVER = "Swarm services need overlay networks: leave `driver` out or use overlay"
SWARM_PROXY = {
    "missing": "the swarm backend needs x-berth.proxy: Berth moves traffic between replicas "
    "through nginx's dynamic upstreams",
    "service": "the swarm backend needs the nginx service named (host nginx is not supported)",
    "test_command": "is for nginx on the host; the swarm backend runs nginx as a Swarm service",
    "reload_command": "is for nginx on the host; the swarm backend runs nginx as a Swarm service",
    "switch": "must be dynamic or auto (which is dynamic) on the swarm backend: nginx is "
    "switched through its Lua dynamic upstreams, not reloaded",
}
SWARM_VOLUME = {
    "selinux": "Swarm mounts cannot relabel for SELinux (z/Z)",
    "create_host_path": "Swarm does not create a missing bind source: it must exist on the node",
}

# x-berth keys of a service that the swarm backend does not carry out yet
SWARM_XBERTH_REFUSED: dict[str, str] = {
    "release": "is not supported on the swarm backend yet (a release task would be a "
    "one-off Swarm service); run migrations from a start hook or on one host",
    "smoke": "is not supported on the swarm backend yet (Berth reaches tasks only through "
    "the edge's GET probe); use x-berth.health",
}
