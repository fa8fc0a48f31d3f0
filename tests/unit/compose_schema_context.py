"""Where the schema coverage test (tests/unit/test_compose_schema_coverage.py) puts each
sample: the files of the in-memory tree, the object around a key (CONTEXT, written at that
path prefix), whole-file patches (ROOT: other services, top-level definitions, for every
path under a prefix), the names of `*` entries (NAMES), and the keys that rightly change
nothing (NO_EFFECT)."""

from __future__ import annotations

from typing import Any

ROOT_DIR = "/srv/stack"
PROJECT_DIR = f"{ROOT_DIR}/compose"
COMPOSE = f"{PROJECT_DIR}/compose.yaml"
BASE: dict[str, Any] = {"services": {"s": {"image": "busybox"}}}
ENVIRON = {"TOKEN": "t0ken", "HOME": "/home/op"}

FILES = {
    f"{PROJECT_DIR}/Dockerfile": "FROM busybox\n",
    f"{PROJECT_DIR}/Dockerfile.prod": "FROM busybox AS prod\n",
    f"{PROJECT_DIR}/app.env": 'A="quoted"\n',
    f"{PROJECT_DIR}/other.env": "B=2\n",
    f"{PROJECT_DIR}/secret.txt": "pw",
    f"{PROJECT_DIR}/app.conf": "a=1",
    f"{PROJECT_DIR}/base.yml": "services:\n  base:\n    image: alpine\n    environment: [F=1]\n",
    f"{PROJECT_DIR}/inc/compose.yaml": (
        "services:\n  inc:\n    image: busybox\n    environment:\n      - V=${INC_VAR:-unset}\n"
        "    volumes:\n      - ./data:/data\n"
    ),
    f"{PROJECT_DIR}/inc/inc.env": "INC_VAR=from-env-file\n",
}


def svc(**keys: Any) -> dict[str, Any]:
    """A root patch for service `s`."""
    return {"services": {"s": keys}}


OTHER = {"services": {"d": {"image": "busybox"}}}
NET = {"services": {"s": {"networks": ["n"]}}, "networks": {"n": {}}}
SUBNET = {"networks": {"n": {"ipam": {"config": [{"subnet": "172.28.0.0/16"}]}}}}
VOL = {"services": {"s": {"volumes": ["v:/data"]}}, "volumes": {"v": {}}}
SECRET = {"services": {"s": {"secrets": ["sec"]}}, "secrets": {"sec": {"file": "secret.txt"}}}
CONFIG = {"services": {"s": {"configs": ["cfg"]}}, "configs": {"cfg": {"file": "app.conf"}}}
DELETE = object()  # in a patch: remove the key

NAMES = {
    "services": "s",
    "networks": "n",
    "volumes": "v",
    "secrets": "sec",
    "configs": "cfg",
    "models": "m",
    "services.*.networks": "n",
    "services.*.depends_on": "d",
    "services.*.ulimits": "nofile",
    "services.*.build.ulimits": "nofile",
    "services.*.models": "m",
}

# the object around a key, written at that prefix before the key is set
CONTEXT: dict[str, Any] = {
    "include[]": {"path": "inc/compose.yaml"},
    "services.*.build": {"context": "."},
    "services.*.build.secrets[]": {"source": "sec"},
    "services.*.build.ulimits.*": {"soft": 1024, "hard": 2048},
    "services.*.blkio_config.weight_device[]": {"path": "/dev/sda", "weight": 400},
    "services.*.blkio_config.device_read_bps[]": {"path": "/dev/sda", "rate": "12mb"},
    "services.*.blkio_config.device_read_iops[]": {"path": "/dev/sda", "rate": 120},
    "services.*.blkio_config.device_write_bps[]": {"path": "/dev/sda", "rate": "1024k"},
    "services.*.blkio_config.device_write_iops[]": {"path": "/dev/sda", "rate": 30},
    "services.*.configs[]": {"source": "cfg"},
    "services.*.secrets[]": {"source": "sec"},
    "services.*.depends_on.*": {"condition": "service_started"},
    "services.*.deploy.resources.reservations.devices[]": {"capabilities": ["gpu"]},
    "services.*.deploy.restart_policy": {"condition": "on-failure"},
    "services.*.devices[]": {"source": "/dev/ttyUSB0", "target": "/dev/ttyUSB0"},
    "services.*.env_file[]": {"path": "app.env"},
    "services.*.extends": {"service": "base"},
    "services.*.gpus[]": {"capabilities": ["gpu"]},
    "services.*.healthcheck": {"test": ["CMD", "true"]},
    "services.*.ports[]": {"target": 80},
    "services.*.ulimits.*": {"soft": 1024, "hard": 2048},
    "services.*.volumes[]": {"type": "volume", "source": "v", "target": "/data"},
    "networks.*.ipam.config[]": {"subnet": "172.28.0.0/16"},
}

# whole-file patches for every path at or under the prefix
ROOT: dict[str, Any] = {
    "networks": NET,
    "volumes": VOL,
    "secrets": SECRET,
    "configs": CONFIG,
    "secrets.*.environment": {"secrets": {"sec": {"file": DELETE}}},
    "configs.*.environment": {"configs": {"cfg": {"file": DELETE}}},
    "configs.*.content": {"configs": {"cfg": {"file": DELETE}}},
    "services.*.build.secrets": SECRET,
    "services.*.configs": {"configs": {"cfg": {"content": "hello"}}},  # uid/gid/mode apply
    "services.*.secrets": {"secrets": {"sec": {"environment": "TOKEN"}}},
    "services.*.depends_on": OTHER,
    "services.*.links": OTHER,
    "services.*.volumes_from": OTHER,
    "services.*.extends": {"services": {"base": {"image": "alpine", "environment": ["G=1"]}}},
    "services.*.external_links": svc(network_mode="bridge"),
    "services.*.healthcheck.disable": svc(healthcheck={"test": DELETE}),
    "services.*.healthcheck.start_interval": svc(healthcheck={"start_period": "5s"}),
    "services.*.memswap_limit": svc(mem_limit="512m"),
    "services.*.networks": {"networks": {"n": {}}},
    "services.*.networks.*.ipv4_address": SUBNET,
    "services.*.networks.*.priority": {**svc(networks={"a": {}}), "networks": {"a": {}}},
    "services.*.networks.*.gw_priority": {**svc(networks={"a": {}}), "networks": {"a": {}}},
    "services.*.profiles": OTHER,
    "services.*.volumes": {"volumes": {"v": {}}},
    "services.*.volumes[].bind": svc(volumes=[{"type": "bind", "source": "./data"}]),
    "services.*.volumes[].tmpfs": svc(volumes=[{"type": "tmpfs", "source": DELETE}]),
    "services.*.volumes[].image": svc(volumes=[{"type": "image", "source": "alpine"}]),
    "services.*.gpus[].device_ids": svc(gpus=[{"capabilities": ["gpu"]}]),
    "services.*.deploy.resources.reservations.devices[].device_ids": svc(
        deploy={"resources": {"reservations": {"devices": [{"capabilities": ["gpu"]}]}}}
    ),
    "services.*.env_file[].required": svc(env_file=[{"path": "missing.env"}]),
}

# keys that rightly change nothing in what Berth sends: one reason each
_WATCH = "`docker compose watch` reads it; `docker compose up` does not, nor does Berth"

NO_EFFECT: dict[str, str] = {
    "version": "obsolete; compose ignores it too",
    "secrets.*.name": "the swarm object's name; a file secret is bind-mounted by its key",
    "secrets.*.labels": "labels of the swarm secret object; no such object without swarm",
    "configs.*.name": "the swarm object's name; a file config is bind-mounted by its key",
    "configs.*.labels": "labels of the swarm config object; no such object without swarm",
    "services.*.deploy.resources.reservations.cpus": (
        "one engine has no CPU reservation; compose's create.go ignores it too"
    ),
    "services.*.ports[].mode": "ingress/host is swarm routing; compose binds the port the same",
    "services.*.ports[].name": "a human-readable label; compose sends nothing for it",
    "services.*.ports[].app_protocol": "a hint for tools; compose sends nothing for it",
    "services.*.attach": "`docker compose up` attaches to its logs; Berth never attaches",
    "services.*.develop": _WATCH,
    "services.*.develop.watch": _WATCH,
    "services.*.develop.watch[].action": _WATCH,
    "services.*.develop.watch[].exec": _WATCH,
    "services.*.develop.watch[].exec.command": _WATCH,
    "services.*.develop.watch[].exec.environment": _WATCH,
    "services.*.develop.watch[].exec.privileged": _WATCH,
    "services.*.develop.watch[].exec.user": _WATCH,
    "services.*.develop.watch[].exec.working_dir": _WATCH,
    "services.*.develop.watch[].ignore": _WATCH,
    "services.*.develop.watch[].include": _WATCH,
    "services.*.develop.watch[].initial_sync": _WATCH,
    "services.*.develop.watch[].path": _WATCH,
    "services.*.develop.watch[].target": _WATCH,
}
