#!/usr/bin/env bash
# wshubd's instructions per WebSocket handshake (issue 18), counted by callgrind: repeatable
# whatever else the machine does, unlike the handshake rate. One worker under valgrind;
# wsbench (idle mode) opens $CONNS connections, $K handshakes in flight, to /echo or to API B
# (/api/ws?token=JWT, HS256); the counters are zeroed once the server answers /healthz and
# dumped when every handshake is done, before wsbench sends its first subscribe, so the count
# is the connect phase alone: accept, llhttp, the upgrade's checks, the dialect's accept
# (API B: the JWT), the 101 and the handover. Prints the total per handshake, then wshubd's
# functions by inclusive instructions per handshake.
#
#   bench/hs-callgrind.sh echo | B
#   CONNS=2000 K=200 WSHUB_BIN=build-prof/wshubd bench/hs-callgrind.sh B
#       (a release build with -g names inlined code: meson setup build-prof --buildtype=release -Ddebug=true)
#
# wsbench prints its "connected" line only after it has let the server settle, just before
# the subscribes, which is too late to dump the counters: a private copy of the shared
# wsbench.c, with a marker line before the settle and a 3 s settle, is built for this
# (bench/results/wsbench-hs, gitignored). Files: bench/results/hs-callgrind-<time>-<api>.*
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
API=${1:-echo}
CONNS=${CONNS:-2000}
K=${K:-200}
RESULTS="${RESULTS:-$HERE/results}"
SRC="$(realpath -m "${WSBENCH_SRC:-$ROOT/../shared/bench/wsbench.c}")"
die() { echo "hs-callgrind.sh: $*" >&2; exit 1; }

case "$API" in echo | B) ;; *) die "usage: bench/hs-callgrind.sh echo|B" ;; esac
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
mkdir -p "$RESULTS"
WSB="$RESULTS/wsbench-hs"
if [ ! -x "$WSB" ] || [ "$SRC" -nt "$WSB" ]; then
  python3 - "$SRC" "$WSB.c" <<'PY' || die "cannot make the marked copy of $SRC"
import sys
s = open(sys.argv[1]).read()
old = "    /* let the server settle a moment, then sample RSS */\n    {\n        uint64_t until = now_ns() + 200000000ull;"
if s.count(old) != 1:
    sys.exit("wsbench.c changed: the settle after the connect phase is not where it was")
open(sys.argv[2], "w").write(s.replace(old, old.replace("    {\n", "    fprintf(stderr, \"HSDONE\\n\");\n    {\n", 1)
                                                .replace("200000000ull", "3000000000ull")))
PY
  cc -O2 -g -w -o "$WSB" "$WSB.c" -lm || die "cannot build $WSB"
fi
BIN=$(wshub_bin "$ROOT") || die "no wshubd: the release build failed or WSHUB_BIN is wrong"
PORT=$(fresh_port) || die "no free port"
BASE="$RESULTS/hs-callgrind-$(date +%Y%m%d-%H%M%S)-$API"
SECRET="bench-$(head -c 12 /dev/urandom | base64 | tr -dc A-Za-z0-9)"
TOKEN=$("$BIN" token --sub bench --ttl 1h --secret "$SECRET" --claim 'channels=["conversation:*"]') || die "cannot mint a token"

env WSHUB_LISTEN="127.0.0.1:$PORT" WSHUB_WORKERS=1 WSHUB_LOG_LEVEL=warn WSHUB_JWT_SECRET="$SECRET" \
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$BASE.out" "$BIN" > "$BASE.server.log" 2>&1 &
SPID=$!
trap 'stop_pid "$SPID" >/dev/null 2>&1' EXIT
wait_healthz "$PORT" "$SPID" || die "the server exited or did not answer /healthz: see $BASE.server.log"
callgrind_control -z "$SPID" >/dev/null 2>&1 || die "callgrind_control -z failed"
if [ "$API" = echo ]; then
  URL="ws://127.0.0.1:$PORT/echo"; EXTRA=(--ack subscribe)
else
  URL="ws://127.0.0.1:$PORT/api/ws?token=$TOKEN"; EXTRA=(-c 100 --channel-prefix conversation:c)
fi
taskset -c 1 "$WSB" -u "$URL" -m idle -n "$CONNS" -k "$K" --hold 1 "${EXTRA[@]}" > "$BASE.json" 2> "$BASE.log" &
BPID=$!
dumped=
for _ in $(seq 1 12000); do
  if grep -q '^HSDONE' "$BASE.log" 2>/dev/null; then
    # The dump is taken when the server next runs: a /healthz wakes it (one request, noise).
    callgrind_control -d handshakes "$SPID" >/dev/null 2>&1 &
    for _ in $(seq 1 25); do
      ls "$BASE.out".* >/dev/null 2>&1 && { dumped=1; break; }
      curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/healthz"
      sleep 0.1
    done
    break
  fi
  kill -0 "$BPID" 2>/dev/null || break
  sleep 0.005
done
wait "$BPID"
BRC=$?
stop_pid "$SPID" >/dev/null
trap - EXIT
[ "$BRC" = 0 ] || die "wsbench failed (exit $BRC): see $BASE.log"
[ -n "$dumped" ] || die "no dump was taken during the settle: see $BASE.log"
grep -E '^handshakes' "$BASE.log"
DUMP=$(ls "$BASE.out".* | head -1)
callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$DUMP" > "$BASE.txt" 2>/dev/null ||
  die "callgrind_annotate failed"
python3 - "$BASE.txt" "$CONNS" <<'PY'
import re, sys
n = int(sys.argv[2])
total, rows, seen = None, [], set()
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d,]+) \(.*?\)\s+PROGRAM TOTALS", line)
    if m:
        total = int(m.group(1).replace(",", ""))
    m = re.match(r"\s*([\d,]+) \(.*?\)\s+(\S+?):(\S+) \[(\S+)\]", line)
    if m and m.group(3) not in seen:
        seen.add(m.group(3))
        rows.append((int(m.group(1).replace(",", "")), m.group(3), m.group(4).rsplit("/", 1)[-1]))
print("callgrind: %s instructions in the connect phase, %d handshakes: %.0f per handshake" %
      (format(total, ","), n, total / n))
print("inclusive, per handshake (the largest):")
for ir, fn, obj in rows[:40]:
    if ir / n >= 100 and not fn.startswith("0x"):
        print("  %8.0f  %s (%s)" % (ir / n, fn, obj))
PY
echo "hs-callgrind.sh: files $BASE.{out*,txt,json,log,server.log}"
