#!/usr/bin/env bash
# Create or refresh .venv with Berth installed editable plus the dev extras.
# Idempotent: when .venv exists and pyproject.toml is unchanged since the last install
# (a hash stored in .venv/.berth-pyproject.sha256), it does nothing.
#
# Environment:
#   BERTH_PYTHON   interpreter to build the venv from (default: python3.11, else python3)
#   PIP_INDEX_URL  honoured by pip as usual
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.berth-pyproject.sha256"

log() { printf 'ensure-venv: %s\n' "$*" >&2; }

# Byte-compile Berth's sources, as `pip install` of a wheel does: with
# PYTHONDONTWRITEBYTECODE set (as on these machines) an editable install would otherwise
# recompile ~50 modules at every `berth` start (~40 ms). Up-to-date files are skipped.
compile_sources() { "$VENV/bin/python" -m compileall -q -j 0 "$ROOT/controller" >/dev/null || true; }

want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
# `import controller` runs from / so the working directory cannot fake an install.
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
  && [ -x "$VENV/bin/berth" ] \
  && (cd / && "$VENV/bin/python" -c 'import controller') >/dev/null 2>&1; then
  compile_sources
  exit 0
fi

pick_python() {
  local candidate
  for candidate in "${BERTH_PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' \
        >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  py="$(pick_python)" || {
    log "need Python >= 3.11 with venv and ensurepip (apt-get install python3-venv)"
    exit 1
  }
  log "creating $VENV with $py"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
fi

log "installing berth (editable) with dev extras"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
compile_sources
printf '%s\n' "$want" >"$STAMP"
log "ok: $("$VENV/bin/python" --version)"
