#!/usr/bin/env bash
# `make demo`: the example stack, converged and served by Berth running as a container,
# then a zero-downtime upgrade (1.0.0 -> 2.0.0), an automatic rollback (api 3.0.0) and a
# failed migration (api 3.1.0: its release task fails, nothing else starts) under live
# traffic. The API's schema migrations run as Berth's release task (once per
# revision, before its replicas start): the demo writes notes through nginx and shows the
# database's schema_migrations after each release. Idempotent; `make demo-down` removes
# everything it created.
#
# The working copy adds compose/docker-compose.demo.yml (Docker health checks every second
# instead of every 10 s): the same checks gate every container, the demo just does not
# wait 10 s for each.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEMO="$ROOT/.demo"                      # a working copy: the demo edits its desired/
BERTH=(.venv/bin/berth --desired "$DEMO/desired" --compose-root "$DEMO" --state-dir "$DEMO/cli-state")
CONTROLLER=http://127.0.0.1:9180
APP=http://127.0.0.1:${BERTH_DEMO_PORT:-8081}
export OLLAMA_IMAGE=berth-demo/llm-standin
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "machine: Docker engine, packages, Python environment"
bash scripts/ensure-docker.sh
bash scripts/ensure-venv.sh

say "images: the example stack (v1, v2, broken v3, PostgreSQL) and Berth itself, built offline"
bash scripts/build-example-images.sh
bash scripts/build-berth-image.sh   # rebuilt only when Berth's sources changed

say "a working copy of the stack in .demo/ (desired/ starts at 1.0.0)"
mkdir -p "$DEMO"
cp -a compose desired "$DEMO/"
# the demo's faster health checks on top of the production file (see the header)
sed -i 's|^compose: ../compose/docker-compose.prod.yml$|compose: [../compose/docker-compose.prod.yml, ../compose/docker-compose.demo.yml]|' \
  "$DEMO/desired/gesalps.yaml"
grep -q docker-compose.demo.yml "$DEMO/desired/gesalps.yaml"
mkdir -p "$DEMO/nginx"
cp -a nginx/conf.d nginx/certs "$DEMO/nginx/"
install -d -o 10001 -m 0755 "$DEMO/nginx/upstreams"

say "Berth as a container (deploy/compose.yaml), non-root, against the stack"
export BERTH_ROOT="$DEMO" DOCKER_GID
DOCKER_GID="$(stat -c %g /var/run/docker.sock)"
docker-compose -p berth-demo -f deploy/compose.yaml up -d --force-recreate
printf 'waiting for the first reconcile (each service is gated on its health check) '
wait_converged() {  # $1 = tag every service must run
  local deadline=$((SECONDS + ${2:-300}))
  while (( SECONDS < deadline )); do
    if .venv/bin/python - "$CONTROLLER/status" "$1" <<'PY'
import sys, httpx
try:
    rows = httpx.get(sys.argv[1], timeout=3, trust_env=False).json()
except Exception:
    raise SystemExit(1)
# converged = every service ready at its desired tag, and no rollout still in flight (a
# Docker-healthy container may still be in Berth's gate); nginx and db run the image the
# compose file names (not in desired/), so their tags are not the release's
ok = rows and all(r["ready"] == r["desired_replicas"] and r["running_tags"] == [r["desired_tag"]]
                  and r["last_outcome"] != "in_progress"
                  for r in rows) and all(r["desired_tag"] == sys.argv[2] for r in rows
                                         if r["service"] not in ("nginx", "db"))
raise SystemExit(0 if ok else 1)
PY
    then echo " converged"; return 0; fi
    printf '.'; sleep 1
  done
  echo; echo "not converged in time; berth logs:"; docker logs --tail 30 berth-demo_berth_1 || true
  return 1
}
wait_converged 1.0.0
diagnose() {
  echo "--- docker ps"; docker ps -a --filter label=com.docker.compose.project=gesalps \
    --format '{{.Names}} {{.Status}} {{.Ports}}'
  local ngx; ngx="$(docker ps -aq --filter label=com.docker.compose.service=nginx --filter label=com.docker.compose.project=gesalps | head -1)"
  echo "--- nginx errors"; docker logs "$ngx" 2>&1 | grep -E '\[(error|warn|crit)\]' | tail -20 || true
  echo "--- nginx log"; docker logs --tail 10 "$ngx" 2>&1 || true
  echo "--- berth rollout events"; docker logs berth-demo_berth_1 2>&1 | grep -E 'rollout\.|routes|nginx' | tail -40 || true
  echo "--- berth log"; docker logs --tail 10 berth-demo_berth_1 2>&1 || true
}
for _ in $(seq 1 30); do curl -fsS "$APP/version" && break; sleep 1; done || true
curl -fsS "$APP/version" || { echo "the app does not answer on $APP"; diagnose; exit 1; }
echo
schema() {  # the migrations the database has, as psql in the db container sees them
  local db
  db="$(docker ps -q --filter label=com.docker.compose.project=gesalps \
    --filter label=com.docker.compose.service=db | head -1)"
  docker exec "$db" psql -U gesalps -d gesalps -XAtc \
    "SELECT string_agg(version || ' (' || to_char(applied_at, 'HH24:MI:SS') || ')', ', '
     ORDER BY version) FROM schema_migrations"
}
note() {  # POST /notes through nginx; the answer is the stored note
  curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$APP/notes" \
    || { echo "POST /notes failed"; diagnose; exit 1; }
  echo
}

say "the database: api 1.0.0's release task migrated it before any replica started"
echo "schema_migrations: $(schema)"
note '{"body": "written by 1.0.0"}'

say "live traffic through nginx ($APP/version)"
SUMMARY="$DEMO/load.json"
rm -f "$SUMMARY"
.venv/bin/python scripts/demo_load.py "$APP/version" "$SUMMARY" &
LOAD=$!
trap 'kill $LOAD 2>/dev/null || true' EXIT
sleep 3

say "upgrade: berth deploy all --tag 2.0.0 (edits .demo/desired; the controller does the rest)"
"${BERTH[@]}" deploy all --tag 2.0.0
wait_converged 2.0.0
say "api 2.0.0's release task added migration 2 (notes.author) while 1.0.0 still served"
echo "schema_migrations: $(schema)"
note '{"body": "written by 2.0.0", "author": "demo"}'
curl -fsS "$APP/notes?limit=2"; echo

say "a broken release: api 3.0.0 never becomes healthy"
"${BERTH[@]}" deploy api --tag 3.0.0
deadline=$((SECONDS + 240))
until curl -fsS "$CONTROLLER/status" | .venv/bin/python -c '
import json, sys
rows = {r["service"]: r for r in json.load(sys.stdin)}
raise SystemExit(0 if rows["api"]["quarantined"] else 1)'; do
  (( SECONDS < deadline )) || { echo "no rollback seen"; exit 1; }
  sleep 1
done

say "a broken migration: api 3.1.0's release task fails, so none of its replicas starts"
"${BERTH[@]}" deploy api --tag 3.1.0
deadline=$((SECONDS + 240))
until curl -fsS "$CONTROLLER/status" | .venv/bin/python -c '
import json, sys
api = {r["service"]: r for r in json.load(sys.stdin)}["api"]
raise SystemExit(0 if api["desired_tag"] == "3.1.0" and api["quarantined"] else 1)'; do
  (( SECONDS < deadline )) || { echo "no failed release task seen"; exit 1; }
  sleep 1
done
echo "schema_migrations: $(schema)"
curl -fsS "$CONTROLLER/metrics" | grep -E '^berth_release_tasks_total\{.*service="api"' || true
sleep 2
kill -TERM $LOAD; wait $LOAD || true; trap - EXIT

say "result"
docker exec berth-demo_berth_1 berth history api --limit 5 || true
.venv/bin/python - "$SUMMARY" <<'PY' || { diagnose; exit 1; }
import json, sys
s = json.load(open(sys.argv[1]))
print(f"requests during the demo: {s['requests']}, failed: {s['failed']}")
print("responses per version:", ", ".join(f"{v}: {n}" for v, n in sorted(s["versions"].items())))
if s["failed"]:
    print("errors (first and last, client clock):", *s["errors"], sep="\n  ")
    raise SystemExit(1)
PY
echo "api still serves: $(curl -fsS "$APP/version")"

cat <<EOM

The stack keeps running. Where to look:
  app            $APP/            (TLS: https://127.0.0.1:${BERTH_HTTPS_PORT:-8443}/)
  metrics        $CONTROLLER/metrics
  status (JSON)  $CONTROLLER/status
  berth status   docker exec berth-demo_berth_1 berth status
  logs           docker logs -f berth-demo_berth_1
  desired state  .demo/desired/gesalps.yaml   (edit a tag: Berth rolls it out)
  tear down      make demo-down
EOM
