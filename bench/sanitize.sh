#!/usr/bin/env bash
# Runs every bench case under compute-sanitizer's memcheck, racecheck and
# synccheck (small shapes, no timing) on the GPU machine and prints the
# errors per case; exit 1 if any case is not clean.
#
#   bench/sanitize.sh [--bundles bench/bundles] [--only a,b] [--tools memcheck,racecheck]
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
TOOLS="memcheck,racecheck,synccheck"
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tools) TOOLS="$2"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
status=0
for tool in ${TOOLS//,/ }; do
  echo "== compute-sanitizer --tool $tool"
  PYTHONUNBUFFERED=1 "$PY" "$HERE/gpu_bench.py" --sanitize "$tool" "${ARGS[@]}" || status=1
done
exit $status
