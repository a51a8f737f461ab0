#!/usr/bin/env bash
# Moderation throughput (API A, /text/moderation over WebSocket):
#
#   bench/moderation.sh                  # RUNS=3 runs, each on a fresh server and port
#   RUNS=1 DURATION=5 bench/moderation.sh
#
# Each run: the release build (build-release/wshubd; `meson setup build-release
# --buildtype=release` when absent, then `ninja -C build-release`) started with WSHUB_WORKERS=2,
# a random API key and WSHUB_LOG_LEVEL=warn on a fresh port (20000-31999, no socket on it at
# all), in an empty temporary directory; then bench/moderation-load.js: CONNS WebSocket
# connections each keeping INFLIGHT requests in flight for WARMUP + DURATION seconds over the
# texts of tests/moderation/labelled.jsonl. The load client prints one summary line and one
# JSON line (answers/s, latency p50/p90/p99/max, errors, CPU% of the server from
# /proc/PID/stat, of the client, of everything else, and which one is the bottleneck). The
# server is stopped by its PID (SIGTERM, SIGKILL after 10 s) and its exit code checked.
#
# Environment: RUNS (3), CONNS (100), INFLIGHT (8), DURATION (10), WARMUP (2), WORKERS (2),
#   SERVER_CPUS / CLIENT_CPUS (unset: no pinning; e.g. SERVER_CPUS=0 CLIENT_CPUS=1 pins with
#   taskset), WSHUB_BIN (a binary to use instead of build-release/wshubd; SKIP_BUILD=1 builds
#   nothing), OUT (default bench/results/moderation-<time>).
# Files: OUT/run-N.json (the JSON line), OUT/run-N.log (the summary line), OUT/run-N.server.log.
# Exit status: 0 when every run completed with no error and the server exited 0.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
RUNS=${RUNS:-3}
CONNS=${CONNS:-100}
INFLIGHT=${INFLIGHT:-8}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-2}
OUT=${OUT:-$HERE/results/moderation-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || exit 1
OUT="$(cd "$OUT" && pwd)"

say() { echo "moderation.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# ------------------------------------------------------------------ the binary
if [ -n "${WSHUB_BIN:-}" ] && [ "${SKIP_BUILD:-0}" = 1 ]; then
  BIN=$(realpath "$WSHUB_BIN")
else
  cd "$ROOT" || exit 1
  if [ ! -d build-release ]; then
    say "meson setup build-release --buildtype=release"
    meson setup build-release --buildtype=release >&2 || die "meson setup failed"
  fi
  if ninja -C build-release >&2; then
    BIN="$ROOT/build-release/wshubd"
  elif [ -n "${WSHUB_BIN:-}" ]; then
    say "ninja -C build-release failed: using WSHUB_BIN=$WSHUB_BIN (FALLBACK binary)"
    BIN=$(realpath "$WSHUB_BIN")
  else
    die "ninja -C build-release failed (set WSHUB_BIN to use another binary)"
  fi
fi
[ -x "$BIN" ] || die "no binary at $BIN"
command -v node >/dev/null || die "node is required"
say "binary $BIN ($(stat -c %y "$BIN" | cut -d. -f1)), $(nproc) CPUs, node $(node --version)"

# ------------------------------------------------------------------ helpers

SPID=""
SDIR=""
stop_server() { # by PID only: SIGTERM, then SIGKILL after 10 s; sets SRC to its exit code
  SRC=""
  [ -n "$SPID" ] || return 0
  stop_pid "$SPID"; SRC=$?
  SPID=""
  [ -n "$SDIR" ] && rm -rf "$SDIR"; SDIR=""
}
trap 'stop_server' EXIT
trap 'exit 130' INT TERM

pin() { # pin CPUS cmd...: taskset when CPUS is set
  local cpus=$1; shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# ------------------------------------------------------------------ runs
FAILED=0
for run in $(seq 1 "$RUNS"); do
  port=$(fresh_port) || die "no free port"
  key="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  SDIR=$(mktemp -d /tmp/wshub-modbench-XXXXXX)
  (cd "$SDIR" && exec env WSHUB_LISTEN="127.0.0.1:$port" WSHUB_PUBLIC_URL="http://127.0.0.1:$port" WSHUB_WORKERS="$WORKERS" \
      WSHUB_LOG_LEVEL=warn WSHUB_MODERATION_KEYS="$key" \
      ${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "$BIN" > "$OUT/run-$run.server.log" 2>&1) &
  SPID=$!
  ready=0
  for _ in $(seq 1 100); do
    kill -0 "$SPID" 2>/dev/null || break
    if curl -fsS -m 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.1
  done
  # The PID is the server itself (exec in the subshell): check, so /proc/PID/stat is its CPU.
  if [ "$ready" != 1 ] || [ "$(readlink "/proc/$SPID/exe" 2>/dev/null)" != "$BIN" ]; then
    say "run $run: the server did not come up on port $port"; tail -5 "$OUT/run-$run.server.log" >&2
    stop_server; FAILED=$((FAILED + 1)); continue
  fi
  say "run $run/$RUNS: port $port, server pid $SPID, $CONNS conns x $INFLIGHT in flight, ${WARMUP}+${DURATION} s"
  pin "${CLIENT_CPUS:-}" timeout $((DURATION + WARMUP + 60)) node "$HERE/moderation-load.js" \
    --url "ws://127.0.0.1:$port/text/moderation" --key "$key" --conns "$CONNS" --inflight "$INFLIGHT" \
    --duration "$DURATION" --warmup "$WARMUP" --server-pid "$SPID" --label "moderation-run$run" > "$OUT/run-$run.out"
  lrc=$?
  head -n 1 "$OUT/run-$run.out" | tee "$OUT/run-$run.log"
  tail -n 1 "$OUT/run-$run.out" | tee "$OUT/run-$run.json"
  rm -f "$OUT/run-$run.out"
  stop_server
  [ "$lrc" = 0 ] || { say "run $run: load client exit $lrc"; FAILED=$((FAILED + 1)); }
  [ "$SRC" = 0 ] || { say "run $run: server exit $SRC on SIGTERM"; FAILED=$((FAILED + 1)); }
done

if [ "$RUNS" -gt 1 ]; then
  node -e '
    const fs = require("fs");
    const runs = process.argv.slice(1).filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
    if (!runs.length) process.exit(0);
    const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
    const m = { runs: runs.length, answers_per_s: med(runs.map((r) => r.answers_per_s)),
      p50_ms: med(runs.map((r) => r.latency_ms.p50)), p99_ms: med(runs.map((r) => r.latency_ms.p99)),
      errors: runs.reduce((s, r) => s + r.errors, 0),
      server_cpu_pct: med(runs.map((r) => r.cpu_pct.server)), client_cpu_pct: med(runs.map((r) => r.cpu_pct.client)),
      bottleneck: runs.map((r) => r.bottleneck) };
    console.log(`median of ${m.runs}: ${m.answers_per_s} answers/s, p50 ${m.p50_ms} ms, p99 ${m.p99_ms} ms, errors ${m.errors}, CPU server ${m.server_cpu_pct}% client ${m.client_cpu_pct}%`);
    console.log(JSON.stringify({ median: m }));
  ' $(for r in $(seq 1 "$RUNS"); do echo "$OUT/run-$r.json"; done) | tee "$OUT/summary.txt"
fi
say "results in $OUT"
exit $((FAILED > 0))
