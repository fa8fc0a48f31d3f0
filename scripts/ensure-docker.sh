#!/usr/bin/env bash
# Make this machine able to run Berth's test suite: the Debian packages the tests use and a
# running Docker engine. Idempotent: installed packages and a running daemon are reused, so
# a second run does nothing and takes well under a second.
#
# Debian 12 (bookworm), as root (or with sudo). Only Debian's mirror and PyPI are reachable
# in CI: nothing here pulls from Docker Hub.
#
# Environment:
#   BERTH_DOCKERD_LOG   where a dockerd started here logs (default /tmp/berth-dockerd.log)
#   BERTH_DOCKER_WAIT   seconds to wait for the daemon to answer (default 60)
set -euo pipefail

DOCKERD_LOG="${BERTH_DOCKERD_LOG:-/tmp/berth-dockerd.log}"
WAIT="${BERTH_DOCKER_WAIT:-60}"

# docker.io: the engine (20.10 on bookworm). busybox-static: the FROM-scratch test app image.
# nginx, wrk: e2e tests (host nginx, load). libnginx-mod-http-lua, lua-cjson: nginx's Lua
# module, for Berth's dynamic switch (host-nginx mode). prometheus: promtool for the alert-rule tests.
# debootstrap: the offline Debian base image and the swarm node image (tests/support/
# swarm_node.py: docker.io etc. come from the mirror into its rootfs, nothing new on the
# host). docker-registry: a real local registry (its binary is also copied into the swarm
# node image, where it serves the test swarm);
# apache2-utils (htpasswd -B) and openssl: its TLS certificate and bcrypt users in tests.
# docker-compose: compose v1, for compatibility checks. fcgiwrap (+ git's git-http-backend
# behind nginx) and openssh-client (ssh-keygen: signing keys): the real git server of the
# remote git source tests; openssh-server: the tests' own foreground sshd (the SSH deploy key
# tests; the package's service is not started). The rest: the build itself.
PACKAGES=(
  docker.io busybox-static docker-compose nginx libnginx-mod-http-lua lua-cjson wrk prometheus
  debootstrap docker-registry apache2-utils openssl fcgiwrap openssh-client openssh-server
  iptables cgroupfs-mount procps ca-certificates curl git make tar xz-utils python3 python3-venv
)

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
    log "not root and no sudo: cannot install packages or start dockerd"
  fi
fi

missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || printf '%s\n' "$pkg"
  done
}

apt_lists_fresh() {
  # Lists exist and are younger than a day: an install can go ahead without an update.
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)" ]
}

install_packages() {
  local -a missing
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep package postinst scripts from starting services (nginx on :80, prometheus on
  # :9090, a second dockerd): the tests start exactly what they need themselves.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    created_policy=1
  fi
  local rc=0
  local -a apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! apt_lists_fresh; then
    "${SUDO[@]}" apt-get update -q || rc=$?
  fi
  if [ "$rc" -eq 0 ]; then
    "${apt[@]}" install --no-install-recommends "${missing[@]}" || rc=$?
    if [ "$rc" -ne 0 ]; then
      # Stale lists (a package moved on the mirror): refresh once and retry.
      log "install failed ($rc); apt-get update and retry"
      rc=0
      "${SUDO[@]}" apt-get update -q && "${apt[@]}" install --no-install-recommends "${missing[@]}" \
        || rc=$?
    fi
  fi
  if [ "$created_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    log "apt-get failed with $rc"
    return "$rc"
  fi
  # Services started by an earlier install would hold ports the e2e tests use.
  local svc
  for svc in nginx prometheus; do
    if pgrep -x "$svc" >/dev/null 2>&1 && command -v service >/dev/null 2>&1; then
      log "stopping the $svc service a package install started"
      "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
}

docker_ok() { docker info >/dev/null 2>&1; }

start_dockerd() {
  if docker_ok; then
    return 0
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    log "starting docker.service"
    "${SUDO[@]}" systemctl start docker.service || true
  fi
  if ! mountpoint -q /sys/fs/cgroup 2>/dev/null && command -v cgroupfs-mount >/dev/null; then
    "${SUDO[@]}" cgroupfs-mount || true
  fi
  # No init system here (CI containers, VMs): run the daemon ourselves. A dockerd that is
  # still exiting (or crashed at start) is waited out and then started again.
  local deadline=$((SECONDS + WAIT))
  until docker_ok; do
    if ! pgrep -x dockerd >/dev/null 2>&1; then
      log "starting dockerd in the background (log: $DOCKERD_LOG)"
      "${SUDO[@]}" rm -f /var/run/docker.pid
      "${SUDO[@]}" bash -c "nohup setsid dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
      sleep 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "dockerd did not answer within ${WAIT}s; last lines of $DOCKERD_LOG:"
      tail -n 40 "$DOCKERD_LOG" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

main() {
  install_packages
  start_dockerd
  if [ "$(id -u)" -ne 0 ] && [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
    log "warning: /var/run/docker.sock is not writable by $(id -un)"
  fi
  log "ok: docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
}

main "$@"
