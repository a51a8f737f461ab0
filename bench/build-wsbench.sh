#!/usr/bin/env bash
# Builds the shared yardstick, ../shared/bench/wsbench.c (see its README.md), into bench/wsbench
# (gitignored) with `cc -O2`, and runs its self-test. Does nothing when bench/wsbench is newer
# than the source; -f rebuilds anyway.
#   bench/build-wsbench.sh [-f]
#   WSBENCH_SRC=/path/to/wsbench.c bench/build-wsbench.sh
# Also builds bench/wsbench-z (gitignored): the same source with bench/wsbench-deflate.patch
# applied to a copy in a temporary directory (--deflate: permessage-deflate, needs zlib, -lz),
# and runs its self-test. Fails when the patch no longer applies to the source.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRC="$(realpath -m "${WSBENCH_SRC:-$ROOT/../shared/bench/wsbench.c}")"
OUT="$HERE/wsbench"
PATCH="$HERE/wsbench-deflate.patch"
OUTZ="$HERE/wsbench-z"

if [ ! -f "$SRC" ]; then
  echo "build-wsbench: $SRC not found (set WSBENCH_SRC)" >&2
  exit 1
fi
FORCE=0
[ "${1:-}" = "-f" ] && FORCE=1
# The same flags as the yardstick's own Makefile; only libc and libm are needed.
CFLAGS=(-O2 -g -Wall -Wextra -Wno-unused-parameter)

# build SRC OUT LIBS...: compiles, self-tests, installs
build() {
  local src=$1 out=$2; shift 2
  cc "${CFLAGS[@]}" -o "$out.tmp.$$" "$src" "$@"
  if ! "$out.tmp.$$" --selftest >/dev/null 2>&1; then
    rm -f "$out.tmp.$$"
    echo "build-wsbench: $out --selftest failed" >&2
    exit 1
  fi
  mv -f "$out.tmp.$$" "$out"
  echo "build-wsbench: built $out from $src" >&2
}

if [ "$FORCE" = 1 ] || [ ! -x "$OUT" ] || [ "$SRC" -nt "$OUT" ]; then
  build "$SRC" "$OUT" -lm
fi
if [ "$FORCE" = 1 ] || [ ! -x "$OUTZ" ] || [ "$SRC" -nt "$OUTZ" ] || [ "$PATCH" -nt "$OUTZ" ]; then
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsbench-z.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  cp "$SRC" "$TMP/wsbench.c"
  chmod u+w "$TMP/wsbench.c"
  if ! patch -s -p1 -N -d "$TMP" --no-backup-if-mismatch -r - < "$PATCH" > "$TMP/patch.log" 2>&1; then
    echo "build-wsbench: $PATCH no longer applies to $SRC:" >&2
    sed 's/^/    /' "$TMP/patch.log" >&2
    echo "build-wsbench: update the patch (make the change in a copy, then diff -u --label a/wsbench.c --label b/wsbench.c)" >&2
    exit 1
  fi
  build "$TMP/wsbench.c" "$OUTZ" -lm -lz
fi
