#!/usr/bin/env bash
# Where wshubd's own CPU goes in S1, counted in instructions (valgrind --tool=callgrind):
# repeatable for the same binary and inputs whatever else the machine does, unlike perf's
# samples. A reduced S1 (valgrind runs the server ~50x slower): $SUBS subscribers of one
# channel, saturate with 16 publishes in flight over 4 HTTP connections, $DURATION s. The
# counters are zeroed once the server answers /healthz, so they cover the connects, the
# subscribes and the publishes. Prints wsbench's summary, then instructions per delivery
# in the fan-out path (by function) and the rest per publish.
#
#   bench/callgrind.sh
#   SUBS=200 DURATION=5 WSHUB_BIN=build/wshubd bench/callgrind.sh
# Files: bench/results/callgrind-<time>.out (callgrind_annotate reads it), .txt (its listing),
# .json and .log (wsbench), .server.log
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
SUBS=${SUBS:-200}
DURATION=${DURATION:-5}
RESULTS="${RESULTS:-$HERE/results}"
die() { echo "callgrind.sh: $*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
"$HERE/build-wsbench.sh" || die "cannot build wsbench"
BIN=$(wshub_bin "$ROOT") || die "no wshubd: the release build failed or WSHUB_BIN is wrong"
PORT=$(fresh_port) || die "no free port"
mkdir -p "$RESULTS"
BASE="$RESULTS/callgrind-$(date +%Y%m%d-%H%M%S)"
SECRET="bench-$(head -c 12 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
KEY="key-$(head -c 12 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
TOKEN=$("$BIN" token --sub bench --ttl 1h --secret "$SECRET" --claim 'channels=["conversation:*"]') || die "cannot mint a token"

env WSHUB_LISTEN="127.0.0.1:$PORT" WSHUB_WORKERS=1 WSHUB_LOG_LEVEL=warn WSHUB_JWT_SECRET="$SECRET" \
  WSHUB_API_KEY="$KEY" taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$BASE.out" "$BIN" \
  > "$BASE.server.log" 2>&1 &
SPID=$!
wait_healthz "$PORT" "$SPID" || die "the server exited or did not answer /healthz: see $BASE.server.log"
callgrind_control -z "$SPID" >/dev/null 2>&1 || die "callgrind_control -z failed"
taskset -c 1 "$HERE/wsbench" -u "ws://127.0.0.1:$PORT/api/ws?token=$TOKEN" -n "$SUBS" -c 1 -k 50 \
  -m saturate -p http -w 16 -P 4 -d "$DURATION" --drain 10 --channel-prefix conversation:c \
  --pub-header "Authorization: Bearer $KEY" > "$BASE.json" 2> "$BASE.log"
BRC=$?
METRICS=$(curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics")
stop_pid "$SPID"
grep -E '^(deliveries|handshakes|errors)' "$BASE.log"
[ "$BRC" = 0 ] || die "wsbench failed (exit $BRC): see $BASE.log"
DELIVERIES=$(awk '/^wshub_deliveries_total /{print $2}' <<< "$METRICS")
PUBLISHES=$(awk '/^wshub_publishes_total /{print $2}' <<< "$METRICS")
callgrind_annotate --threshold=100 --auto=no "$BASE.out" > "$BASE.txt" 2>/dev/null ||
  die "callgrind_annotate failed"
python3 - "$BASE.txt" "$DELIVERIES" "$PUBLISHES" <<'PY'
import re, sys
deliveries, publishes = int(sys.argv[2]), int(sys.argv[3])
# the functions a delivery runs through, from the hub's loop to the socket
FANOUT = ["deliver_local", "deliver_to_session", "ws_session_send_frame", "conn_send_frame", "account_out", "q_push",
          "mark_dirty", "mempool_alloc", "mempool_free", "conn_flush_dirty", "flush", "try_send",
          "uv_fileno", "sendmsg", "send", "q_pop", "frame_release"]
total, own = None, {}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d,]+) \(.*?\)\s+PROGRAM TOTALS", line)
    if m:
        total = int(m.group(1).replace(",", ""))
    m = re.match(r"\s*([\d,]+) \(.*?\)\s+\S*?:(\w+) \[", line)
    if m and m.group(2) in FANOUT:
        own[m.group(2)] = own.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
fan = sum(own.values())
print("callgrind: %d deliveries, %d publishes, %s instructions in user space" % (deliveries, publishes, format(total, ",")))
print("per delivery (fan-out path, self cost): %.0f instructions" % (fan / deliveries))
for fn, ir in sorted(own.items(), key=lambda kv: -kv[1]):
    print("  %-24s %6.1f" % (fn, ir / deliveries))
print("everything else, per publish (HTTP, JSON, envelope; connects and subscribes included): %.0f" %
      ((total - fan) / publishes))
PY
echo "callgrind.sh: files $BASE.{out,txt,json,log,server.log}"
