#!/usr/bin/env bash
# Markdown tables for a bench/run.sh results directory (default: bench/results/latest):
# one table per scenario (median (min..max) over the repetitions), the ratio tables (wshub vs
# node-ws measured in the same run; wshub vs uWebSockets QUOTED from ../shared/bench/RESULTS.md)
# and the anomalies (errors, lost/dup deliveries, bench-bound runs, foreign load).
#   bench/summarize.sh [RESULTS_DIR]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR=${1:-$HERE/results/latest}
[ -d "$DIR" ] || { echo "summarize.sh: $DIR is not a directory" >&2; exit 1; }
exec python3 "$HERE/summarize.py" "$DIR"
