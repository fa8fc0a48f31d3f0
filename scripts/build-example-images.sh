#!/usr/bin/env bash
# Build every image of the example stack (compose/docker-compose.prod.yml) offline.
#
# No public registry is needed: the images build FROM berth-test/base:bookworm (a
# debootstrap Debian with python3, FastAPI, uvicorn, gunicorn, psycopg2, nginx-light, curl;
# built by tests/support/images.py and cached), with PIP_INSTALL=0 / APT_INSTALL=0. The
# database builds FROM berth-test/postgres-base:bookworm (debootstrap Debian with
# PostgreSQL 15, kept out of the base for its size), also cached.
#
#   berth-demo/api:{1.0.0,2.0.0}            good releases; 1.0.0 has schema migration 1
#                                           (table notes), 2.0.0 adds 2 (notes.author):
#                                           `python3 -m app.migrate`, the release task
#   berth-demo/api:3.0.0                    BROKEN=1: /health answers 503 forever (rollback demo)
#   berth-demo/api:3.1.0                    MIGRATION_BROKEN=1: healthy, but its migration 3
#                                           fails (a failed release task changes nothing)
#   berth-demo/postgres:15                  the database (PostgreSQL 15, password auth)
#   berth-demo/synth-worker:{1.0.0,2.0.0}
#   berth-demo/report-service:{1.0.0,2.0.0}
#   berth-demo/llm-standin:{1.0.0,2.0.0}    the Ollama STAND-IN (not Ollama)
#   berth-demo/nginx:1
#
# Also writes a self-signed demo certificate to nginx/certs/ when none is there (nginx does
# not start without one); SKIP_CERT=1 to leave nginx/certs alone.
#
# Idempotent: an image that exists, built on the current base from the same files and
# build args (labels berth.base, berth.context), is skipped unless FORCE=1. Prints a
# timing per image.
# Env: FORCE=1, SKIP_CERT=1, PYTHON (default .venv/bin/python), DOCKER (default docker).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DOCKER="${DOCKER:-docker}"
BASE="berth-test/base:bookworm"
FORCE="${FORCE:-0}"
VERSIONS=(1.0.0 2.0.0)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
base_of() { "$DOCKER" image inspect --format '{{index .Config.Labels "berth.base"}}' "$1" 2>/dev/null; }
context_of() { "$DOCKER" image inspect --format '{{index .Config.Labels "berth.context"}}' "$1" 2>/dev/null; }
bytes_of() { "$DOCKER" image inspect --format '{{.Size}}' "$1"; }
BASE_BYTES=0

report() { # ref, seconds, what: size, and what the image adds on top of the base
  local size
  size="$(bytes_of "$1")"
  awk -v r="$1" -v t="$2" -v w="$3" -v s="$size" -v b="$BASE_BYTES" 'BEGIN {
    printf "  %-34s %6ss  %-7s %5.0f MB  (+%.2f MB over the base)\n", r, t, w, s / 1e6, (s - b) / 1e6 }'
}

T0="$(now)"
echo "==> base image $BASE"
t="$(now)"
"$PYTHON" -c 'from tests.support.images import ensure_base_image; ensure_base_image()'
BASE_BYTES="$(bytes_of "$BASE")"
BASE_ID="$("$DOCKER" image inspect --format '{{.Id}}' "$BASE")"
report "$BASE" "$(elapsed "$t")" "ensured"

# build REF DIR [--build-arg K=V ...]   (FROM $FROM, default the base)
build() {
  local ref="$1" dir="$2" from="${FROM:-$BASE}" base_id="${FROM_ID:-$BASE_ID}"
  shift 2
  local t
  t="$(now)"
  # Skipped when it exists, was built on the current base (a new base, e.g. one that
  # gained nginx's Lua module, rebuilds every image on it) and from the same context and
  # build args (an edited app rebuilds).
  local context
  context="$( (cd "$dir" && find . -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    printf '%s\n' "$@") | sha256sum | cut -c1-24)"
  if [[ "$FORCE" != 1 ]] && exists "$ref" && [[ "$(base_of "$ref")" == "$base_id" ]] \
    && [[ "$(context_of "$ref")" == "$context" ]]; then
    report "$ref" "$(elapsed "$t")" "exists"
    return
  fi
  local log
  log="$(mktemp)"
  # The legacy builder is enough (no BuildKit/buildx needed); keep its log for failures.
  if ! "$DOCKER" build --pull=false --build-arg "BASE=$from" --label "berth.base=$base_id" \
    --label "berth.context=$context" \
    "$@" -t "$ref" "$dir" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "build of $ref failed" >&2
    exit 1
  fi
  rm -f "$log"
  report "$ref" "$(elapsed "$t")" "built"
}

echo "==> application images"
for app in api synth-worker report-service llm-standin; do
  for v in "${VERSIONS[@]}"; do
    build "berth-demo/$app:$v" "compose/apps/$app" \
      --build-arg PIP_INSTALL=0 --build-arg "APP_VERSION=$v"
  done
done
build "berth-demo/api:3.0.0" compose/apps/api \
  --build-arg PIP_INSTALL=0 --build-arg APP_VERSION=3.0.0 --build-arg BROKEN=1
build "berth-demo/api:3.1.0" compose/apps/api \
  --build-arg PIP_INSTALL=0 --build-arg APP_VERSION=3.1.0 --build-arg MIGRATION_BROKEN=1

echo "==> postgres"
PG_BASE="berth-test/postgres-base:bookworm"
t="$(now)"
"$PYTHON" -c 'from tests.support.images import ensure_postgres_base_image as e; e()'
report "$PG_BASE" "$(elapsed "$t")" "ensured"
BASE_BYTES="$(bytes_of "$PG_BASE")" \
  FROM="$PG_BASE" FROM_ID="$("$DOCKER" image inspect --format '{{.Id}}' "$PG_BASE")" \
  build "berth-demo/postgres:15" compose/apps/postgres --build-arg APT_INSTALL=0

echo "==> nginx"
build "berth-demo/nginx:1" compose/apps/nginx --build-arg APT_INSTALL=0

if [[ "${SKIP_CERT:-0}" != 1 ]]; then
  CERTS="$ROOT/nginx/certs"
  if [[ ! -s "$CERTS/tls.crt" || ! -s "$CERTS/tls.key" ]]; then
    echo "==> self-signed demo certificate in nginx/certs (CN=localhost, 30 days)"
    if ! command -v openssl >/dev/null; then
      echo "openssl is missing: apt-get install -y openssl, or provide nginx/certs/tls.{crt,key}" >&2
      exit 1
    fi
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$CERTS/tls.key" -out "$CERTS/tls.crt" 2>/dev/null
    chmod 600 "$CERTS/tls.key"
  fi
fi

echo "==> done in $(elapsed "$T0") s"
echo "Run the stack: OLLAMA_IMAGE=berth-demo/llm-standin .venv/bin/berth --desired desired apply"
