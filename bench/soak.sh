#!/usr/bin/env bash
# Soak (issue 11): mixed load on every API (bench/soak-load.js: churn, publishes, moderation,
# Flow, cable, slow consumers, garbage) against one wshubd on 127.0.0.1 for a given time, then
# the clients leave and the server is watched idle for --cooldown seconds. Every 10 s one row
# goes to soak.csv: the server's RSS (/proc/PID/status VmRSS), descriptors (/proc/PID/fd),
# threads, CPU seconds, /metrics counters (connections, pool bytes, refusals, HTTP 4xx/5xx,
# slow-consumer closes, suppressed log lines), the size of its log, and the load's operations
# and unexpected errors. soak.png plots them (gnuplot, bench/soak.gp).
#
#   bench/soak.sh [--duration 30m] [--asan] [--workers 2] [--scale 1] [--warmup S]
#                 [--cooldown 70] [--prime 30] [--out DIR]
#
# Phases: cold (a sample before any client), then --prime seconds of the same load (not sampled:
# what the process allocates once, e.g. the libuv thread pool, OpenSSL's state, the first pool
# pages), idle (60 s; its last sample is the baseline), load, after (the clients have left).
#
# Verdict (verdict.txt, and the exit code: 0 pass, 1 fail, 2 could not run):
#   - flat after warm-up: over the load after the warm-up (--warmup, default a third of the
#     duration, at most 300 s), the median RSS and the median descriptor count of the last
#     half are within 10% of those of the first quarter;
#   - recovered: the last sample, at least 60 s after the clients left, is within 10% of the
#     baseline (idle after the priming run), RSS and descriptors; the cold sample is shown too;
#   - the server answered /healthz at every sample, was never wedged (the load's operations
#     grew in every interval), exited 0 on SIGTERM, and its log has no sanitizer report;
#   - unexpected client errors at most 0.5% of the operations.
# --asan runs build-asan/wshubd (ASAN_OPTIONS=quarantine_size_mb=8, leaks checked at exit):
# a sanitizer report fails; the RSS checks are printed but do not count (ASan's allocator,
# quarantine and shadow do not give memory back like glibc's); descriptors still count.
#
# Flow thread histories are state kept by design (flow.history_limit entries per thread):
# the soak sets flow.history_limit to 5 on its 20 threads so that what it measures after the
# clients leave is what the server should have given back, not what it is meant to keep.
set -uo pipefail
# The whole script is one block, read before it runs: editing the file during a 30-minute run
# (a git checkout, say) must not change what the running soak does next.
{
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh

DURATION=1800 ASAN=0 WORKERS=2 SCALE=1 WARMUP="" COOLDOWN=70 PRIME=30 OUT=""
seconds() { # 30m, 90s, 1h, 600 -> seconds
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;; *m) echo $(( ${1%m} * 60 )) ;; *s) echo "${1%s}" ;; *) echo "$1" ;;
  esac
}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$(seconds "$2"); shift 2 ;;
    --asan) ASAN=1; shift ;;
    --workers) WORKERS=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --warmup) WARMUP=$(seconds "$2"); shift 2 ;;
    --cooldown) COOLDOWN=$(seconds "$2"); shift 2 ;;
    --prime) PRIME=$(seconds "$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || [ "$DURATION" -lt 30 ]; then echo "soak: --duration must be at least 30 s" >&2; exit 2; fi
if ! [[ "$COOLDOWN" =~ ^[0-9]+$ ]] || [ "$COOLDOWN" -lt 60 ]; then echo "soak: --cooldown must be at least 60 s" >&2; exit 2; fi
if ! [[ "$PRIME" =~ ^[0-9]+$ ]] || [ "$PRIME" -lt 1 ]; then echo "soak: --prime must be at least 1 s" >&2; exit 2; fi
[ -n "$WARMUP" ] || WARMUP=$(( DURATION / 3 < 300 ? DURATION / 3 : 300 ))

# ------------------------------------------------------------------ what it needs
wshub_check_node || exit 2
if [ ! -d tests/e2e/node_modules/ws ]; then
  (cd tests/e2e && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2 || exit 2
fi
if ! command -v gnuplot >/dev/null 2>&1; then
  wshub_install_deps gnuplot-nox || echo "soak: no gnuplot (Debian gnuplot-nox): no plot" >&2
fi
if [ -n "${WSHUB_BIN:-}" ]; then
  BIN=$(realpath "$WSHUB_BIN") || exit 2
elif [ "$ASAN" = 1 ]; then
  wshub_build build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 2
  BIN="$ROOT/build-asan/wshubd"
else
  wshub_build build || exit 2
  BIN="$ROOT/build/wshubd"
fi

OUT=${OUT:-"$ROOT/bench/results/soak-$(date +%Y%m%d-%H%M%S)$([ "$ASAN" = 1 ] && echo -asan)"}
mkdir -p "$OUT" || exit 2
CSV="$OUT/soak.csv" LOG="$OUT/server.log" STATUS="$OUT/client.json"
PORT=$(fresh_port) || { echo "soak: no free port" >&2; exit 2; }
SECRET="soak-secret-$RANDOM$RANDOM" APIKEY="soak-api-$RANDOM$RANDOM" MODKEY="soak-mod-$RANDOM$RANDOM"

echo "soak: $BIN on 127.0.0.1:$PORT, $WORKERS workers; priming ${PRIME}s + 60s idle, load ${DURATION}s" \
     "(warm-up ${WARMUP}s, scale $SCALE), then ${COOLDOWN}s idle; results in $OUT"

# ------------------------------------------------------------------ server
SERVER_PID="" LOAD_PID=""
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 2' INT TERM

env WSHUB_LISTEN="127.0.0.1:$PORT" WSHUB_PUBLIC_URL="http://127.0.0.1:$PORT" WSHUB_WORKERS="$WORKERS" \
    WSHUB_JWT_SECRET="$SECRET" WSHUB_API_KEY="$APIKEY" WSHUB_MODERATION_KEYS="$MODKEY" \
    WSHUB_LOG_LEVEL=info WSHUB_FLOW_HISTORY_LIMIT=5 \
    ASAN_OPTIONS="quarantine_size_mb=8:detect_leaks=1:halt_on_error=1:abort_on_error=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$BIN" >"$LOG" 2>&1 &
SERVER_PID=$!
ready=0
for _ in $(seq 1 200); do
  if curl -sf -m 1 "http://127.0.0.1:$PORT/healthz" >/dev/null; then ready=1; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ "$ready" != 1 ]; then echo "soak: wshubd did not become ready:" >&2; tail -20 "$LOG" >&2; exit 2; fi

# ------------------------------------------------------------------ sampling
# metric NAME [LABEL_REGEX]: the sum of the samples of NAME (whose labels match) in $METRICS.
metric() { awk -v n="$1" -v l="${2:-}" '$1 ~ "^"n"([{]|$)" && (l == "" || $1 ~ l) { s += $2 } END { printf "%d", s }' <<<"$METRICS"; }
echo "t,phase,rss_kb,fds,threads,cpu_s,tcp_open,ws_open,pool_pages,pool_objects,refused,http_4xx,http_5xx,slow_closes,log_suppressed,log_bytes,client_ops,client_errors,healthz" >"$CSV"
T0=$(date +%s)
sample() { # phase
  local t rss fds thr cpu ops errs hz
  t=$(( $(date +%s) - T0 ))
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "$t,$1,,,,,,,,,,,,,,,,,0" >>"$CSV"; return 1
  fi
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null)
  thr=$(awk '/^Threads:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null)
  fds=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$SERVER_PID/stat" 2>/dev/null)
  hz=0
  METRICS=$(curl -sf -m 5 "http://127.0.0.1:$PORT/metrics") && hz=1
  [ "$hz" = 1 ] && { curl -sf -m 5 "http://127.0.0.1:$PORT/healthz" >/dev/null || hz=0; }
  ops="" errs=""
  if [ -f "$STATUS" ]; then
    read -r ops errs < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["ops"], s["errors"])' "$STATUS" 2>/dev/null)
  fi
  echo "$t,$1,$rss,$fds,$thr,$cpu,$(metric wshub_tcp_connections_open),$(metric wshub_connections_open)," \
"$(metric wshub_state_pool_bytes 'pages'),$(metric wshub_state_pool_bytes 'objects'),$(metric wshub_handshake_failures_total)," \
"$(metric wshub_http_responses_total '4xx'),$(metric wshub_http_responses_total '5xx'),$(metric wshub_slow_consumer_closes_total)," \
"$(metric wshub_log_lines_suppressed_total),$(stat -c %s "$LOG"),${ops},${errs},$hz" | tr -d ' ' >>"$CSV"
}
# Sleeps until T0 + k*10 s: rows stay 10 s apart whatever a sample costs.
next_tick() { local now; now=$(( $(date +%s) - T0 )); sleep $(( 10 - now % 10 )); }

load() { # seconds status-file
  node bench/soak-load.js --port "$PORT" --duration "$1" --secret "$SECRET" --api-key "$APIKEY" \
       --mod-key "$MODKEY" --scale "$SCALE" --status "$2"
}
sleep 5
sample cold
died=0
STATUS_MAIN=$STATUS STATUS="$OUT/prime.json"
load "$PRIME" "$STATUS" >"$OUT/prime.out" 2>&1 || echo "soak: the priming load exited non-zero (see $OUT/prime.out)" >&2
PRIME_END=$(( $(date +%s) - T0 ))
STATUS=$STATUS_MAIN
while [ "$died" = 0 ] && [ $(( $(date +%s) - T0 - PRIME_END )) -lt 60 ]; do
  next_tick
  sample idle || died=1
done
# The last idle sample is the baseline.
sed -i '$ s/,idle,/,baseline,/' "$CSV"
[ "$died" = 1 ] && { echo "soak: the server died while priming" >&2; tail -20 "$LOG" >&2; exit 1; }
node bench/soak-load.js --port "$PORT" --duration "$DURATION" --secret "$SECRET" --api-key "$APIKEY" \
     --mod-key "$MODKEY" --scale "$SCALE" --status "$STATUS" >"$OUT/client.out" 2>"$OUT/client.err" &
LOAD_PID=$!
LOAD_T0=$(( $(date +%s) - T0 ))
while kill -0 "$LOAD_PID" 2>/dev/null; do
  next_tick
  kill -0 "$LOAD_PID" 2>/dev/null || break
  sample load || { died=1; break; }
  [ -t 2 ] && printf '\r  t=%s %s RSS %s kB, %s fds, %s TCP, ops %s, errors %s ' \
    $(tail -1 "$CSV" | cut -d, -f1-4,7,17,18 | tr , ' ') >&2
done
[ "$died" = 1 ] && kill "$LOAD_PID" 2>/dev/null
wait "$LOAD_PID"; load_rc=$?; LOAD_PID=""
LOAD_END=$(( $(date +%s) - T0 ))
[ -t 2 ] && echo >&2
if [ "$died" = 0 ]; then
  while [ $(( $(date +%s) - T0 - LOAD_END )) -lt "$COOLDOWN" ]; do
    next_tick
    sample after || { died=1; break; }
  done
fi

# ------------------------------------------------------------------ stop, verdict, plot
exit_code=""
if kill -0 "$SERVER_PID" 2>/dev/null; then
  kill -TERM "$SERVER_PID"
  for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID"
fi
wait "$SERVER_PID" 2>/dev/null; exit_code=$?; SERVER_PID=""

python3 - "$CSV" "$LOG" "$STATUS" "$WARMUP" "$LOAD_T0" "$LOAD_END" "$ASAN" "$exit_code" "$died" "$load_rc" "$DURATION" \
  >"$OUT/verdict.txt" <<'PY'
import csv, json, re, statistics, sys
path, log, status, warmup, load_t0, load_end, asan, exit_code, died, load_rc, duration = sys.argv[1:]
warmup, load_t0, load_end, duration = int(warmup), int(load_t0), int(load_end), int(duration)
asan, died = asan == "1", died == "1"
rows = list(csv.DictReader(open(path)))
num = lambda r, k: float(r[k]) if r.get(k) not in (None, "") else None
checks = []  # (ok, counts, text)
def check(ok, text, counts=True): checks.append((bool(ok), counts, text))

base = [r for r in rows if r["phase"] == "baseline"]
load = [r for r in rows if r["phase"] == "load"]
after = [r for r in rows if r["phase"] == "after"]
check(not died, "the server stayed up to the end" if not died else "the server DIED during the soak")
check(all(r["healthz"] == "1" for r in rows), "/healthz and /metrics answered at every sample")
check(exit_code == "0", f"exit status on SIGTERM: {exit_code}")
text = open(log, errors="replace").read()
m = re.search(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer|WARNING: ThreadSanitizer)", text)
check(not m, "no sanitizer report in the server log" if not m else f"sanitizer report in the server log: {m.group(1)}")
check(load_rc == "0", f"the load client exited {load_rc}")

# After the warm-up, and not the last seconds, while the clients are leaving.
post = [r for r in load if warmup <= int(r["t"]) - load_t0 <= duration - 5]
for key, what, counts in (("rss_kb", "RSS", not asan), ("fds", "descriptors", True)):
    if len(post) < 4:
        check(False, f"{what} flat after warm-up: only {len(post)} samples after the {warmup}s warm-up (run longer)", counts)
        continue
    q = max(1, len(post) // 4)
    first = statistics.median(num(r, key) for r in post[:q])
    last = statistics.median(num(r, key) for r in post[len(post) // 2:])
    xs = [int(r["t"]) for r in post]; ys = [num(r, key) for r in post]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 60 if den else 0
    check(last <= first * 1.10, f"{what} flat after warm-up: median {last:.0f} over the last half vs {first:.0f} over the "
          f"first quarter ({(last / first - 1) * 100:+.1f}%, limit +10%; trend {slope:+.1f}/min)", counts)
if base and after:
    b, a = base[0], after[-1]
    since = int(a["t"]) - load_end
    for key, what, counts in (("rss_kb", "RSS", not asan), ("fds", "descriptors", True)):
        bv, av = num(b, key), num(a, key)
        ok = since >= 60 and av is not None and av <= bv * 1.10
        check(ok, f"{what} back near the baseline {since}s after the clients left: {av:.0f} vs {bv:.0f} "
              f"({(av / bv - 1) * 100:+.1f}%, limit +10%)", counts)
else:
    check(False, "no baseline or no sample after the clients left")
cold = [r for r in rows if r["phase"] == "cold"]
if cold and base:
    check(True, f"cold start (before the priming run): RSS {cold[0]['rss_kb']} kB, {cold[0]['fds']} descriptors; "
          f"baseline after priming: RSS {base[0]['rss_kb']} kB, {base[0]['fds']} descriptors", False)
try:
    s = json.load(open(status))
except Exception:
    s = {"ops": 0, "errors": 0, "by": {"errors": {}}}
ops, errs = s.get("ops", 0), s.get("errors", 0)
check(ops > 0 and errs <= ops * 0.005, f"client: {ops} operations, {errs} unexpected errors "
      f"({errs / max(ops, 1) * 100:.3f}%, limit 0.5%) {json.dumps(s.get('by', {}).get('errors', {}))}")
prev = None
wedged = []
for r in load:
    o = num(r, "client_ops")
    if prev is not None and o is not None and o <= prev: wedged.append(r["t"])
    if o is not None: prev = o
check(not wedged, "operations grew in every 10 s interval of the load" if not wedged else f"no progress at t={','.join(wedged)}")

fail = [c for c in checks if c[1] and not c[0]]
for ok, counts, txt in checks:
    print(f"{('ok  ' if ok else 'FAIL') if counts else 'info'}  {txt}")
last_err = s.get("last_errors") or {}
for k, v in last_err.items(): print(f"      last {k}: {v}")
peak = max((num(r, "rss_kb") or 0 for r in rows), default=0)
print(f"peak RSS {peak / 1024:.1f} MB; log {num(rows[-1], 'log_bytes') or 0:.0f} bytes, "
      f"{num(rows[-1], 'log_suppressed') or 0:.0f} lines suppressed; slow-consumer closes "
      f"{num(rows[-1], 'slow_closes') or 0:.0f}")
print("VERDICT: " + ("PASS" if not fail else f"FAIL ({len(fail)} of {sum(1 for c in checks if c[1])} checks)"))
sys.exit(1 if fail else 0)
PY
verdict=$?
cat "$OUT/verdict.txt"
if command -v gnuplot >/dev/null 2>&1; then
  gnuplot -e "csv='$CSV'; png='$OUT/soak.png'; load_t0=$LOAD_T0; load_end=$LOAD_END; title='wshub soak $(basename "$OUT")'" \
    bench/soak.gp 2>"$OUT/gnuplot.err" && echo "plot: $OUT/soak.png" || echo "soak: gnuplot failed (see $OUT/gnuplot.err)" >&2
fi
exit "$verdict"
}
