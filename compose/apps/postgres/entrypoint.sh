#!/bin/bash
# berth-demo/postgres entrypoint: initdb on the first start, then postgres in the foreground
# as the postgres user, listening on 0.0.0.0:5432 with password (scram-sha-256) auth.
#   POSTGRES_PASSWORD  required (the superuser's password; never written to the log)
#   POSTGRES_USER      superuser name, default postgres
#   POSTGRES_DB        database created on the first start, default POSTGRES_USER
#   PGDATA             data directory (a volume), default /var/lib/postgresql/data
# `docker run IMAGE postgres -c key=value` passes settings; any other command runs as is.
set -euo pipefail

if [[ "${1:-postgres}" != postgres && "${1:-}" != -* ]]; then
  exec "$@"
fi
[[ "${1:-}" == postgres ]] && shift

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [[ "$(id -u)" == 0 ]]; then
  # a bind mount or a fresh volume may belong to root: give the data to postgres, drop root
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
    echo "postgres-entrypoint: POSTGRES_PASSWORD is not set; refusing to create a database" \
      "that network clients could reach without a password" >&2
    exit 1
  fi
  echo "postgres-entrypoint: initialising $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile="$(mktemp)"
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  trap - EXIT
  # the container's own socket is trusted (docker exec psql); everyone else: a password
  cat >"$PGDATA/pg_hba.conf" <<'HBA'
local all all               trust
host  all all 0.0.0.0/0     scram-sha-256
host  all all ::/0          scram-sha-256
HBA
  if [[ "$POSTGRES_DB" != postgres ]]; then
    # single-user mode: no server runs (and no healthcheck passes) before the real start
    quoted="\"${POSTGRES_DB//\"/\"\"}\""
    echo "CREATE DATABASE $quoted" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised"
fi

# postgres treats SIGTERM as a "smart" shutdown (waits for every client to leave): pass
# SIGINT (fast: disconnect clients, checkpoint, exit) for both.
postgres -D "$PGDATA" -c listen_addresses='*' "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid" && status=0 || status=$?
done
# a wait cut short by a signal returned 128+N; ask again for postgres' own status
wait "$pid" 2>/dev/null && status=0 || { s=$?; [[ $s == 127 ]] || status=$s; }
exit "$status"
