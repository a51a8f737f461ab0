#!/usr/bin/env bash
# Idle-connection benchmark: how many WebSocket connections one wshubd worker holds, how fast it
# accepts them, and what each costs in server memory (DESIGN.md decision 5: "a few KB of
# user-space memory per idle connection").
#
# The shape of the yardstick's S3 scenario (../shared/bench/README.md) on /echo: wshubd with one
# worker pinned to CPU $SERVER_CPU, wsbench pinned to CPU $BENCH_CPU opens $CONNS connections
# (at most $K handshakes in flight), sends its subscribe template on each one (/echo sends it
# back, hence --ack subscribe), holds them $HOLD s, samples the server's RSS, then closes them.
# Prints wsbench's JSON line, then a summary: connections held, handshakes/s, server RSS
# before/after and KB per connection.
#
#   bench/idle.sh
#   CONNS=10000 K=200 HOLD=10 SERVER_CPU=0 BENCH_CPU=1 bench/idle.sh
#   WSHUB_BIN=build/wshubd bench/idle.sh   # another binary; default build-release/wshubd, which
#                                          # is set up (--buildtype=release) and built if needed
#   PORT=23456 bench/idle.sh               # default: a fresh free port (no socket, no TIME_WAIT)
#   LOG_LEVEL=info bench/idle.sh           # the server's log level (default warn: no log line
#                                          # per connection inside the measurement)
# Files: bench/results/idle-<time>.json (wsbench's JSON line), .log (its human summary),
# .server.log (the server's output). Exits non-zero when a connection failed or a step failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
CONNS=${CONNS:-10000}
K=${K:-200}
HOLD=${HOLD:-10}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
LOG_LEVEL=${LOG_LEVEL:-warn}
RESULTS="${RESULTS:-$HERE/results}"
WSBENCH="$HERE/wsbench"

die() { echo "idle.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- the two binaries
"$HERE/build-wsbench.sh" || die "cannot build wsbench"
BIN=$(wshub_bin "$ROOT") || die "no wshubd: the release build failed or WSHUB_BIN is wrong"
[ -x "$BIN" ] || die "$BIN is not an executable"

# ---------------------------------------------------------------- descriptors
# Every connection is one descriptor on each side. wshubd raises its own soft RLIMIT_NOFILE to
# the hard limit at start (server/main.c raise_nofile) and wsbench does the same, so what must
# be enough is the hard limit; raising it needs root (CAP_SYS_RESOURCE). The soft limit is
# raised here as well, so that nothing depends on either program doing it.
NEED=$((CONNS + 256))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$NEED" ]; then
  ulimit -Hn "$NEED" 2>/dev/null ||
    die "the open-file hard limit is $HARD, $CONNS connections need $NEED: raise it (e.g. ulimit -Hn $NEED as root, or LimitNOFILE=)"
  HARD=$NEED
fi
ulimit -Sn "$HARD" || die "cannot raise the open-file soft limit to $HARD"

# ---------------------------------------------------------------- a fresh port (lib.sh)
if [ -z "${PORT:-}" ]; then
  PORT=$(fresh_port) || die "no free port found in 20000-31999"
fi

# ---------------------------------------------------------------- an idle machine (bounded wait)
wait_quiet "${QUIET_TRIES:-15}" ||
  echo "idle.sh: WARNING: the machine is still ${QUIET_BUSY}% busy: the figures include other work" >&2

# ---------------------------------------------------------------- the server
mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$RESULTS/idle-$STAMP"
RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/wshub-idle.XXXXXX")
SPID=
stop_server() {
  [ -n "$SPID" ] || return 0
  stop_pid "$SPID"
  SERVER_RC=$?
  SPID=
}
SERVER_RC=
trap 'stop_server; rm -rf "$RUNDIR"' EXIT
trap 'exit 130' INT TERM

# No configuration file (the run directory has no config/wshub.json): the embedded default with
# the listen address, one worker and the log level from the environment.
(cd "$RUNDIR" && WSHUB_LISTEN="127.0.0.1:$PORT" WSHUB_WORKERS=1 WSHUB_LOG_LEVEL="$LOG_LEVEL" \
  exec taskset -c "$SERVER_CPU" "$BIN") > "$OUT.server.log" 2>&1 &
SPID=$!
ready=
for _ in $(seq 1 100); do
  kill -0 "$SPID" 2>/dev/null || { cat "$OUT.server.log" >&2; die "wshubd exited at start"; }
  if curl -fsS --max-time 1 "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || die "wshubd did not answer /healthz on port $PORT within 10 s"
[ "$(cat "/proc/$SPID/comm" 2>/dev/null)" = wshubd ] || die "pid $SPID is not wshubd"
echo "idle.sh: wshubd $BIN, pid $SPID, CPU $SERVER_CPU, port $PORT, 1 worker, open-file limit $(awk '/Max open files/ {print $4}' "/proc/$SPID/limits")" >&2
sleep 0.5

# ---------------------------------------------------------------- the run
echo "idle.sh: taskset -c $BENCH_CPU $WSBENCH -u ws://127.0.0.1:$PORT/echo -m idle -n $CONNS -k $K --hold $HOLD --ack subscribe --pid $SPID" >&2
timeout $((HOLD + 300)) taskset -c "$BENCH_CPU" "$WSBENCH" -u "ws://127.0.0.1:$PORT/echo" -m idle -n "$CONNS" -k "$K" \
  --hold "$HOLD" --ack subscribe --pid "$SPID" --label "wshub-idle-$CONNS" > "$OUT.json" 2> "$OUT.log"
BENCH_RC=$?
stop_server

JSON=$(tail -n 1 "$OUT.json")
[ -n "$JSON" ] || { cat "$OUT.log" >&2; die "wsbench printed no JSON line (exit $BENCH_RC)"; }
echo "$JSON"
python3 - "$OUT.json" "$CONNS" "$BENCH_RC" "${SERVER_RC:-?}" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
want, bench_rc, server_rc = int(sys.argv[2]), sys.argv[3], sys.argv[4]
rss = d.get("rss_kb", {})
cpu = d.get("cpu", {}).get("connect", {})
err = d.get("errors", {})
def mb(kb): return "n/a" if kb is None or kb < 0 else f"{kb / 1024:.1f} MB"
print(f"connections held   {d.get('connected', 0):,} of {want:,} (subscribe echoed on {d.get('subscribed', 0):,})")
print(f"handshakes/s       {d.get('handshakes_per_s', 0):,.0f} (connect phase {d.get('connect_s', 0):.3f} s; "
      f"server CPU {cpu.get('server_pct', -1):.0f} %, bench CPU {cpu.get('bench_pct', -1):.0f} %)")
print(f"server RSS         before {mb(rss.get('before'))}, connected {mb(rss.get('connected'))}, "
      f"after subscribe {mb(rss.get('subscribed'))}, after the hold {mb(rss.get('end'))}")
print(f"kb_per_conn        {d.get('kb_per_conn', -1):.2f} KB (after the hold; connected only "
      f"{d.get('kb_per_conn_connected', -1):.2f}, after subscribe {d.get('kb_per_conn_subscribed', -1):.2f})")
print(f"errors             {err.get('total', '?')}; syn_retrans {d.get('syn_retrans', '?')}; "
      f"wsbench exit {bench_rc}; wshubd exit {server_rc}")
ok = d.get("connected", 0) == want and err.get("total", 1) == 0 and bench_rc == "0"
sys.exit(0 if ok else 1)
PY
SUMMARY_RC=$?
echo "idle.sh: files $OUT.{json,log,server.log}" >&2
exit $SUMMARY_RC
