#!/usr/bin/env bash
# `make demo-down`: remove everything `make demo` created (images are kept: they are cache).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BERTH_ROOT="$PWD/.demo" DOCKER_GID=0 docker-compose -p berth-demo -f deploy/compose.yaml down -v 2>/dev/null
ids=$(docker ps -aq --filter label=com.docker.compose.project=gesalps)
[ -n "$ids" ] && docker rm -f $ids >/dev/null
for n in $(docker network ls -q --filter label=com.docker.compose.project=gesalps); do docker network rm "$n" >/dev/null; done
for v in $(docker volume ls -q --filter label=com.docker.compose.project=gesalps); do docker volume rm "$v" >/dev/null; done
rm -rf .demo
echo "demo removed"
