"""The docker-in-docker node image of the test swarm (tests/support/swarm.py).

`berth-test/swarm-node:bookworm` is a debootstrap (minbase) Debian rootfs with Debian's
docker.io 20.10 (and what dockerd needs: iptables, iproute2, procps, fuse-overlayfs),
imported with `docker import`, plus one layer with:

- `/usr/local/bin/berth-node`, the entrypoint: remounts `/sys` and each `/sys/fs/cgroup/*`
  read-write (a container gets them read-only even with systempaths/apparmor unconfined),
  removes a stale docker.pid, then execs dockerd on the unix socket and on plain
  tcp 0.0.0.0:2375 (`--tls=false`: without it dockerd waits 15 s for TLS material) with the
  extra arguments it is given (`--insecure-registry IP:5000` for the swarm's registry);
- `/usr/local/bin/docker-registry`, the host's Debian `docker-registry` binary (it links
  only libc), so the swarm's registry runs from the same image and costs no extra build.

The rootfs tarball is cached under /var/cache/berth-rootfs (images.rootfs_tarball, keyed by
the package list), the image is rebuilt only when its recipe label changes. First build on
this machine: debootstrap ~50-90 s depending on the mirror, then a few seconds to import.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.image_build import (
    RECIPE_LABEL,
    apt_mirror,
    build_context,
    build_lock,
    client_of,
    current_recipe,
    rootfs_tarball,
    tar_context,
)

NODE_IMAGE = "berth-test/swarm-node:bookworm"
NODE_ROOTFS_IMAGE = "berth-test/swarm-node-rootfs:bookworm"
NODE_PACKAGES = (
    "docker.io",
    "iptables",
    "iproute2",
    "ca-certificates",
    "procps",
    "fuse-overlayfs",
    "mount",
)
DOCKER_PORT = 2375
REGISTRY_PORT = 5000
REGISTRY_STORAGE = "/var/lib/registry"  # the registry's blobs (REGISTRY_CONFIG's rootdirectory)
_NODE_RECIPE_VERSION = "2"  # bump to force a rebuild of the node image

ENTRYPOINT = """\
#!/bin/sh
# berth-test swarm node: make /sys writable for dockerd, then become dockerd.
set -e
mount -o remount,rw /sys || mount -o remount,bind,rw /sys
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
  if mountpoint -q "$d"; then mount -o remount,bind,rw "$d"; fi
done
rm -f /var/run/docker.pid /run/docker.pid /run/docker/containerd/containerd.pid
exec dockerd -H unix:///var/run/docker.sock -H tcp://0.0.0.0:{port} --tls=false "$@"
"""

_DOCKERFILE = """\
FROM {base}
COPY berth-node /usr/local/bin/berth-node
COPY docker-registry /usr/local/bin/docker-registry
COPY registry.yml /etc/docker/registry/config.yml
VOLUME /var/lib/docker
EXPOSE {port}
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/berth-node"]
"""

# Plain HTTP, filesystem storage, deletes allowed (tests may clean repositories).
REGISTRY_CONFIG = {
    "version": 0.1,
    "log": {"level": "warn"},
    "storage": {
        "filesystem": {"rootdirectory": REGISTRY_STORAGE},
        "delete": {"enabled": True},
    },
    "http": {"addr": f"0.0.0.0:{REGISTRY_PORT}"},
}


def registry_binary() -> Path:
    """Debian's docker-registry (scripts/ensure-docker.sh installs it)."""
    found = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    path = Path(found)
    if not path.is_file():
        raise RuntimeError(
            "docker-registry is missing: apt-get install docker-registry "
            "(scripts/ensure-docker.sh installs it)"
        )
    return path


def _ensure_rootfs_image(api: Any) -> str:
    """The imported rootfs alone, labelled with its package list."""
    recipe = hashlib.sha256(
        json.dumps([_NODE_RECIPE_VERSION, "node-rootfs", sorted(NODE_PACKAGES)]).encode()
    ).hexdigest()[:24]
    if current_recipe(api, NODE_ROOTFS_IMAGE) == recipe:
        return NODE_ROOTFS_IMAGE
    tarball = rootfs_tarball(apt_mirror(), NODE_PACKAGES)
    repository, _, tag = NODE_ROOTFS_IMAGE.rpartition(":")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"LABEL {RECIPE_LABEL}={recipe}",
    ]
    api.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    if current_recipe(api, NODE_ROOTFS_IMAGE) != recipe:
        raise RuntimeError(f"docker import of {tarball} did not produce {NODE_ROOTFS_IMAGE}")
    return NODE_ROOTFS_IMAGE


def ensure_node_image(ref: str = NODE_IMAGE, *, client: Any | None = None) -> str:
    """Build the node image unless it exists with the same recipe; returns `ref`."""
    api = client_of(client)
    registry = registry_binary().read_bytes()
    files = {
        "berth-node": (ENTRYPOINT.format(port=DOCKER_PORT).encode(), 0o755),
        "docker-registry": (registry, 0o755),
        "registry.yml": (json.dumps(REGISTRY_CONFIG).encode(), 0o644),
    }
    digest = hashlib.sha256(_NODE_RECIPE_VERSION.encode())
    digest.update(json.dumps(sorted(NODE_PACKAGES)).encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name][0]).digest())
    recipe = digest.hexdigest()[:24]
    if current_recipe(api, ref) == recipe:
        return ref
    with build_lock(ref):
        if current_recipe(api, ref) == recipe:
            return ref
        base = _ensure_rootfs_image(api)
        dockerfile = _DOCKERFILE.format(base=base, port=DOCKER_PORT).encode()
        files["Dockerfile"] = (dockerfile, 0o644)
        build_context(api, tar_context(files), ref, {RECIPE_LABEL: recipe})
    return ref
