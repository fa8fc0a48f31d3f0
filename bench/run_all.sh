#!/usr/bin/env bash
# Runs every benchmark in bench/ and rewrites bench/RESULTS.md.
# Usage (from anywhere):  bash bench/run_all.sh
# Each benchmark is bounded by `timeout`; one that fails leaves an error note in its
# section and the others still run. Exit status: 0 when every benchmark ran.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
bash scripts/ensure-venv.sh   # also byte-compiles the sources (CLI start-up is measured)
OUT=bench/RESULTS.md
TMP=$(mktemp)
trap 'rm -f "$TMP" "$TMP.part"' EXIT
status=0
{
  echo "# Berth benchmark results"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -m | awk '/^Mem:/ {printf "%.1f GiB", $2/1024}') memory, kernel $(uname -r)"
  echo "- Docker: $(docker version --format 'engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null); docker-compose: $(docker-compose version --short 2>/dev/null || echo missing)"
  echo "- Python: $($PY -c 'import sys; print(sys.version.split()[0])'); git: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg); running containers before: $(docker ps -q | wc -l)"
  echo "- command: \`bash bench/run_all.sh\`"
  echo
  echo "Targets are reported, never asserted. Each section ends with the load average and the"
  echo "number of other running containers at its end: other work on this 2-core machine"
  echo "(e.g. a test suite) inflates every wall-clock number."
  echo
} > "$TMP"
for name in planner rollout_overhead parallelism swap_concurrency reaction_latency webhook_latency registry_overhead cutover_vs_compose traffic_switch switch_floor footprint swarm_native; do
  echo ">> $name" >&2
  start=$(date +%s)
  if timeout 900 "$PY" "bench/$name.py" > "$TMP.part" 2> "bench/.$name.stderr"; then
    cat "$TMP.part" >> "$TMP"
  else
    rc=$?
    status=1
    { echo "## $name"; echo; echo "**failed (exit $rc)**; last lines of stderr:"; echo;
      echo '```'; tail -20 "bench/.$name.stderr"; echo '```'; echo; } >> "$TMP"
  fi
  echo "_($name took $(( $(date +%s) - start )) s)_" >> "$TMP"
  echo >> "$TMP"
  rm -f "bench/.$name.stderr"
done
mv "$TMP" "$OUT"
trap - EXIT
rm -f "$TMP.part"
echo "wrote $OUT" >&2
exit $status
