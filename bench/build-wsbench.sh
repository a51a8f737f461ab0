#!/usr/bin/env bash
# Builds the shared yardstick, ../shared/bench/wsbench.c (see its README.md), into bench/wsbench
# (gitignored) with `cc -O2`, and runs its self-test. Does nothing when bench/wsbench is newer
# than the source; -f rebuilds anyway.
#   bench/build-wsbench.sh [-f]
#   WSBENCH_SRC=/path/to/wsbench.c bench/build-wsbench.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRC="$(realpath -m "${WSBENCH_SRC:-$ROOT/../shared/bench/wsbench.c}")"
OUT="$HERE/wsbench"

if [ ! -f "$SRC" ]; then
  echo "build-wsbench: $SRC not found (set WSBENCH_SRC)" >&2
  exit 1
fi
if [ "${1:-}" != "-f" ] && [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ]; then
  exit 0
fi
# The same flags as the yardstick's own Makefile; only libc and libm are needed.
cc -O2 -g -Wall -Wextra -Wno-unused-parameter -o "$OUT.tmp.$$" "$SRC" -lm
mv -f "$OUT.tmp.$$" "$OUT"
if ! "$OUT" --selftest >/dev/null 2>&1; then
  echo "build-wsbench: $OUT --selftest failed" >&2
  exit 1
fi
echo "build-wsbench: built $OUT from $SRC" >&2
