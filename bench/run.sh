#!/usr/bin/env bash
# One command for the yardstick's scenarios (../shared/bench/README.md, RESULTS.md) against
# wshubd and the Node `ws` peer, side by side, same machine, same wsbench, one run:
#
#   bench/run.sh                 # REPS=3 (default) x {S1 S2L S3} x 4 targets, then the tables
#   REPS=1 bench/run.sh          # a quick look (~5 min; REPS=3 takes ~12-16 min with repeats)
#   bench/run.sh --asan          # ASan/UBSan correctness run at reduced scale (see README.md)
#   bench/run.sh --targets "wshub-B node-ws" --scenarios "S1"
#
# Targets (server CPUs / wsbench CPU):
#   wshub-B     wshubd, 1 worker, API B  /api/ws?token=JWT     (taskset -c 0   / -c 1)
#   wshub-C     wshubd, 1 worker, API C  /cable (Action Cable)  (taskset -c 0   / -c 1)
#   wshub-B-2w  wshubd, 2 workers, API B                        (taskset -c 0-1 / -c 1: shared core)
#   wshub-B-hist  as wshub-B with channel history on (WSHUB_HISTORY_SIZE=$HISTORY_SIZE, 100):
#               every event carries its stream position (issue 17). Not in the default targets:
#               bench/run.sh --targets "wshub-B wshub-B-hist" --scenarios S1 is the comparison.
#   node-ws     ../shared/bench/peers/node-ws (node http + ws)  (taskset -c 0   / -c 1)
#   uws         uWebSockets, bench/peers/uws/server.cpp built by bench/build-uws.sh from the snapshot
#               RESULTS.md used (outside the repository; UWS_PEER=/path: another uws-peer binary).
#               In the default targets when it builds; when build-uws.sh exits 2 (no snapshot) the
#               uws targets are skipped, said on stderr and in meta.md.       (taskset -c 0 / -c 1)
#   uws-z       uws-peer-z (zlib build, UWS_PEER_Z=/path) with UWS_COMPRESSION=shared:
#               uWS::SHARED_COMPRESSOR. Not in the default targets.
#   wshub-B-z   as wshub-B with WSHUB_WEBSOCKET_COMPRESSION=true (permessage-deflate). Not in the
#               default targets. Every *-z target is measured with bench/wsbench-z --deflate.
#   wshub-B-redis  two wshubd nodes (1 worker each) sharing channels through a redis-server
#               (WSHUB_BROKER=redis), API B as wshub-B; wsbench's subscribers AND its HTTP
#               publishes go to node A (wsbench has one URL), every publish goes through Redis;
#               node B holds one observer subscriber per channel (a second wsbench in idle
#               mode) so that Redis delivers every publish to two nodes. Node A, node B and
#               redis-server on CPU 0 (the server side keeps one core, as wshub-B), wsbench and
#               the observer on CPU 1 (REDIS_CPU, NODEB_CPU, OBSERVER_CPU to change it).
#               Not in the default targets: bench/run.sh --targets "wshub-B wshub-B-redis"
#               --scenarios "S1 S2L" is the issue-13 comparison.
# Scenarios: exactly the wsbench command lines of ../shared/bench/RESULTS.md (S1, S2, S2M, S2L,
# S3 are known; default "S1 S2L S3"), with the URL and the protocol flags of each target.
# S1Z (not in the defaults): S1's arguments with a ~1 KB compressible publish body, measured with
# bench/wsbench-z --deflate against every target (the uncompressed ones decline the offer):
#   bench/run.sh --targets "wshub-B-z uws-z wshub-B uws" --scenarios S1Z
# SP and SPF (not in the defaults; issue 18's two-worker scaling): publish-heavy, ~6.6 KB JSON
# bodies to 100 channels of one subscriber, saturated (SP) or at SPF_RATE publishes/s (SPF):
#   bench/run.sh --targets "wshub-B wshub-B-2w" --scenarios "SP SPF"
# wshub-E (/echo, no token) runs S3 only: the handshake rate without JWT verification.
# Every --deflate run is checked (bench/deflate_check.py): a *-z target must have negotiated on
# every connection and received compressed messages with wire bytes < plain bytes, any other
# target nothing compressed; a failed check fails the run (exit 1) and is listed in the anomalies.
#
# Binaries: bench/wsbench (bench/build-wsbench.sh); wshubd from `ninja -C build-release`
# (`meson setup build-release --buildtype=release` first when absent). When that build fails
# and WSHUB_BIN is set, WSHUB_BIN is used instead (SKIP_BUILD=1: use WSHUB_BIN, build nothing).
# --asan: build-asan (-Db_sanitize=address,undefined), fallback WSHUB_ASAN_BIN.
# The node-ws peer's dependencies are installed with `npm ci` into a temporary copy outside
# the repository (NODE_WS_DIR=dir: use an existing installed copy instead).
#
# wshubd runs as an operator would deploy it: the embedded default turns on the mock backend
# and channel history (for client developers), so both are turned off here unless set
# (WSHUB_HISTORY_SIZE=100 bench/run.sh ... measures S1 with history on).
# Environment: REPS (3), TARGETS, SCENARIOS, SERVER_CPU (0), BENCH_CPU (1), SERVER_CPUS_2W (0-1),
#   MAX_OTHER (10: a run in which other processes took more than this % of the two CPUs is
#   repeated, ATTEMPTS=2 attempts in all; the last attempt is kept either way), QUIET_PCT (10) and
#   QUIET_TRIES (30): before each run wait up to QUIET_TRIES s for the machine to be below
#   QUIET_PCT % busy. OUT=dir: where the results go (default bench/results/<mode>-<time>).
#   BESIDE='command': run beside each wsbench run (e.g. a traffic tap client: BESIDE='exec node
#   bench/tap-client.js api=echo'), started once the server answers with PORT and KEY in its
#   environment, pinned to BENCH_CPU, stopped (SIGTERM) after wsbench; output in OUT/<run>.beside.log.
#
# Files: OUT/<target>-<scenario>-<rep>.json (wsbench's JSON line), .log (its human summary),
# .server.log, .cmd (the exact wsbench command line), .run.json (exit codes, attempt, port);
# OUT/meta.md (binaries, versions, machine, perf availability), OUT/summary.md (the tables,
# bench/summarize.sh OUT). bench/results/latest points to the last OUT.
# Exit status: 0 when every run completed (and, with --asan, every check passed).
set -uo pipefail
{ # The whole script is one compound command: bash parses it completely before running it, so
  # editing this file while a run is in progress cannot change (or break) that run.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED_BENCH="$(realpath -m "${SHARED_BENCH:-$ROOT/../shared/bench}")"
WSBENCH="$HERE/wsbench"
WSBENCH_Z="$HERE/wsbench-z"

ORIG_CMD="bench/run.sh${*:+ $*}"
ASAN=0
DEFAULT_TARGETS=0
TARGETS=${TARGETS:-}
SCENARIOS=${SCENARIOS:-}
while [ $# -gt 0 ]; do
  case $1 in
    --asan) ASAN=1 ;;
    --targets) TARGETS=$2; shift ;;
    --scenarios) SCENARIOS=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$ASAN" = 1 ]; then
  TARGETS=${TARGETS:-"wshub-B wshub-C wshub-B-2w"}
  SCENARIOS=${SCENARIOS:-"S1 S2L"}
  REPS=${REPS:-1}
  MODE=asan
else
  [ -n "$TARGETS" ] || DEFAULT_TARGETS=1
  TARGETS=${TARGETS:-"wshub-B wshub-C wshub-B-2w node-ws uws"}
  SCENARIOS=${SCENARIOS:-"S1 S2L S3"}
  REPS=${REPS:-3}
  MODE=perf
fi
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
SERVER_CPUS_2W=${SERVER_CPUS_2W:-0-1}
REDIS_CPU=${REDIS_CPU:-$SERVER_CPU}
NODEB_CPU=${NODEB_CPU:-$SERVER_CPU}
OBSERVER_CPU=${OBSERVER_CPU:-$BENCH_CPU}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
MAX_OTHER=${MAX_OTHER:-10}
ATTEMPTS=${ATTEMPTS:-2}
[ "$ASAN" = 1 ] && ATTEMPTS=1
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$HERE/results/$MODE-$STAMP}
mkdir -p "$OUT" || exit 1
OUT="$(cd "$OUT" && pwd)"

say() { echo "run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

TMPS=()
SPID=''
RPID='' BPID='' OPID='' CPUPID=''
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  stop_server
  for d in "${TMPS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- binaries
"$HERE/build-wsbench.sh" || die "cannot build wsbench"

# build_wshub DIR MESON_ARGS... -> prints the binary's path; falls back to $FALLBACK
build_wshub() {
  local dir=$1; shift
  local log rc=0
  log="$OUT/build-$(basename "$dir").log"
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    {
      if [ ! -f "$ROOT/$dir/build.ninja" ]; then
        (cd "$ROOT" && meson setup "$dir" "$@")
      fi &&
      ninja -C "$ROOT/$dir"
    } > "$log" 2>&1 || rc=$?
    if [ $rc -eq 0 ] && [ -x "$ROOT/$dir/wshubd" ]; then
      echo "$ROOT/$dir/wshubd"; return 0
    fi
    say "the build in $dir failed (last lines of $log):"
    grep -E 'error|FAILED|undefined reference' "$log" | tail -n 6 | sed 's/^/    /' >&2
  fi
  if [ -n "$FALLBACK" ]; then
    local b
    b="$(cd "$ROOT" && realpath "$FALLBACK")" || die "fallback binary $FALLBACK not found"
    [ -x "$b" ] || die "fallback binary $FALLBACK is not an executable"
    say "using the fallback binary $b"
    echo "$b"; return 0
  fi
  return 1
}
if [ "$ASAN" = 1 ]; then
  FALLBACK=${WSHUB_ASAN_BIN:-}
  BIN=$(build_wshub build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false) ||
    die "no ASan wshubd: fix the build or set WSHUB_ASAN_BIN"
  nm "$BIN" 2>/dev/null | grep -q __asan_init || say "WARNING: $BIN does not look like an ASan build"
else
  FALLBACK=${WSHUB_BIN:-}
  need_wshub=0
  for t in $TARGETS; do case $t in wshub-*) need_wshub=1 ;; esac; done
  BIN=
  if [ $need_wshub = 1 ]; then
    BIN=$(build_wshub build-release --buildtype=release) || die "no wshubd: fix the build or set WSHUB_BIN"
  fi
fi

# ---------------------------------------------------------------- the node-ws peer
NODE_DIR=
case " $TARGETS " in *" node-ws "*)
  if [ -n "${NODE_WS_DIR:-}" ]; then
    NODE_DIR="$(realpath "$NODE_WS_DIR")"
  else
    NODE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wshub-bench-node-ws.XXXXXX") && TMPS+=("$NODE_DIR")
    if ! { cp "$SHARED_BENCH/peers/node-ws/"{package.json,package-lock.json,server.js} "$NODE_DIR/" && chmod -R u+w "$NODE_DIR" &&
           (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) > "$OUT/npm-ci.log" 2>&1; }; then
      cat "$OUT/npm-ci.log" >&2; die "npm ci for the node-ws peer failed (NODE_WS_DIR=dir to use an installed copy)"
    fi
  fi
  { [ -f "$NODE_DIR/server.js" ] && [ -d "$NODE_DIR/node_modules/ws" ]; } || die "$NODE_DIR has no server.js or node_modules/ws"
  ;;
esac

# ---------------------------------------------------------------- the uWebSockets peer
# built outside the repository from the snapshot of RESULTS.md (bench/build-uws.sh); exit 2 of
# the build = no snapshot here: the uws targets are skipped (stderr and meta.md say so)
UWS_BIN='' UWS_BIN_Z='' UWS_NOTE='' UWS_BUILD=''
case " $TARGETS " in *" uws "*|*" uws-z "*)
  rc=0
  UWS_BUILD=$("$HERE/build-uws.sh" 2> "$OUT/build-uws.log") || rc=$?
  if [ "$rc" = 0 ]; then
    UWS_BIN=${UWS_PEER:-$UWS_BUILD/uws-peer}
    UWS_BIN_Z=${UWS_PEER_Z:-$UWS_BUILD/uws-peer-z}
  else
    [ "$rc" = 2 ] || [ "$DEFAULT_TARGETS" = 1 ] || { cat "$OUT/build-uws.log" >&2; die "the uWebSockets peer did not build (exit $rc)"; }
    UWS_BIN=${UWS_PEER:-} UWS_BIN_Z=${UWS_PEER_Z:-}
    keep='' skipped=''
    for t in $TARGETS; do
      case $t in
        uws) if [ -n "$UWS_BIN" ]; then keep+=" $t"; else skipped+=" $t"; fi ;;
        uws-z) if [ -n "$UWS_BIN_Z" ]; then keep+=" $t"; else skipped+=" $t"; fi ;;
        *) keep+=" $t" ;;
      esac
    done
    TARGETS=${keep# }
    UWS_NOTE="bench/build-uws.sh exited $rc ($(tail -n 1 "$OUT/build-uws.log"))${skipped:+; SKIPPED:$skipped}${UWS_BIN:+; UWS_PEER used}${UWS_BIN_Z:+; UWS_PEER_Z used}"
    say "$UWS_NOTE"
  fi
  for b in $UWS_BIN $UWS_BIN_Z; do [ -x "$b" ] || die "uWebSockets peer $b is not an executable"; done
  ;;
esac

# ---------------------------------------------------------------- credentials
SECRET=bench-secret-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
KEY=bench-key-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
ORIGIN=http://bench
TOKEN_B='' TOKEN_C=''
if [ -n "$BIN" ]; then
  # API B: the token may subscribe to every conversation:* channel (PROTOCOLS.md §B)
  TOKEN_B=$("$BIN" token --sub bench --ttl 2h --secret "$SECRET" --claim channels='["conversation:*"]') || die "wshubd token failed"
  # API C: community_member_id names the member; Chats::RoomChannel rooms are open (§C)
  TOKEN_C=$("$BIN" token --sub bench --ttl 2h --secret "$SECRET" --claim community_member_id=1) || die "wshubd token failed"
fi

# ---------------------------------------------------------------- descriptors
NEED=$((10000 + 512))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$NEED" ]; then
  ulimit -Hn "$NEED" 2>/dev/null || die "the open-file hard limit is $HARD, S2L/S3 need $NEED"
  HARD=$NEED
fi
ulimit -Sn "$HARD" || die "cannot raise the open-file soft limit to $HARD"

# ---------------------------------------------------------------- meta
perf_line() {
  local o
  if ! command -v perf >/dev/null; then echo "perf: not installed"; return; fi
  local o sw
  o=$(perf stat -e instructions true 2>&1)
  o=$(printf '%s\n' "$o" | grep -E 'instructions' | sed 's/  */ /g;s/^ //')
  sw=$(perf stat -e cpu-clock true 2>&1)
  case $sw in *"not supported"*) sw="not supported" ;; *cpu-clock*) sw=usable ;; *) sw=unusable ;; esac
  echo "\`perf stat -e instructions true\`: ${o:-no output} (\`<not supported>\` = no hardware PMU counters); software event cpu-clock: $sw; perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null); $(perf --version 2>/dev/null)"
}
{
  echo "# bench/run.sh $MODE run $STAMP"
  echo
  echo "- command: \`$ORIG_CMD\` (REPS=$REPS, targets: $TARGETS; scenarios: $SCENARIOS)"
  echo "- repository: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null) ($(cd "$ROOT" && git status --porcelain 2>/dev/null | grep -c . ) paths modified or untracked in the work tree)"
  if [ -n "$BIN" ]; then
    case $BIN in
      "$ROOT"/build-release/wshubd|"$ROOT"/build-asan/wshubd) how="built here" ;;
      *) how="FALLBACK binary (SKIP_BUILD=${SKIP_BUILD:-0}; build log: $(for f in "$OUT"/build-*.log; do [ -e "$f" ] && printf '%s ' "${f##*/}"; done))" ;;
    esac
    echo "- wshubd: \`$BIN\` ($how; $("$BIN" --version 2>/dev/null), sha256 $(sha256sum "$BIN" | cut -c1-16), mtime $(stat -c %y "$BIN" | cut -d. -f1))"
  fi
  echo "- wsbench: \`$WSBENCH\` from \`$SHARED_BENCH/wsbench.c\` (sha256 $(sha256sum "$SHARED_BENCH/wsbench.c" | cut -c1-16))"
  [ -n "$UWS_BIN$UWS_BIN_Z" ] && echo "- uWebSockets peer (bench/peers/uws/server.cpp): uws \`${UWS_BIN:--}\`, uws-z \`${UWS_BIN_Z:--}\` (zlib, UWS_COMPRESSION=shared); $(sed 's/$/;/' "$UWS_BUILD/uws-commits.txt" 2>/dev/null | tr '\n' ' ')"
  [ -n "$UWS_NOTE" ] && echo "- **uWebSockets: $UWS_NOTE**"
  case " $TARGETS $SCENARIOS " in *"-z "*|*" S1Z "*)
    echo "- wsbench-z: \`$WSBENCH_Z\` = the same source + bench/wsbench-deflate.patch (sha256 $(sha256sum "$HERE/wsbench-deflate.patch" | cut -c1-16)), -lz; runs with --deflate for S1Z and every *-z target" ;;
  esac
  [ -n "$NODE_DIR" ] && echo "- node-ws peer: node $(node --version), ws $(node -e "process.stdout.write(require('$NODE_DIR/node_modules/ws/package.json').version)")"
  echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), tcp_congestion_control=$(cat /proc/sys/net/ipv4/tcp_congestion_control), tcp_tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse)"
  echo "- pinning: 1-worker targets and node-ws: server CPU $SERVER_CPU, wsbench CPU $BENCH_CPU; wshub-B-2w: server CPUs $SERVER_CPUS_2W, wsbench CPU $BENCH_CPU"
  case " $TARGETS " in *" wshub-B-redis "*)
    echo "- wshub-B-redis: node A CPU $SERVER_CPU, node B CPU $NODEB_CPU, redis-server CPU $REDIS_CPU ($("$REDIS_SERVER" --version 2>/dev/null | cut -d' ' -f1-3)), observer wsbench CPU $OBSERVER_CPU, wsbench CPU $BENCH_CPU; subscribers and HTTP publishes on node A (wsbench has one URL)" ;;
  esac
  echo "- perf: $(perf_line)"
} > "$OUT/meta.md"
cat "$OUT/meta.md" >&2

# ---------------------------------------------------------------- helpers
scenario_args() {
  if [ "$ASAN" = 1 ]; then
    case $1 in # reduced scale: correctness under the sanitizers, not speed
      S1)  echo "-n 200 -c 1 -k 50 -m saturate -p http -w 16 -P 4 -d 3" ;;
      S2L) echo "-n 200 -c 20 -k 50 -m fixed -r 500 -p http -P 4 -d 3" ;;
      S3)  echo "-n 1000 -c 100 -k 50 -m idle --hold 3" ;;
      *)   echo "unknown scenario $1" >&2; return 1 ;;
    esac
    return
  fi
  case $1 in # ../shared/bench/RESULTS.md, "Scenarios and exact commands"
    S1)  echo "-n 1000 -c 1 -k 200 -m saturate -p http -w 16 -P 4 -d 10" ;;
    S2)  echo "-n 10000 -c 100 -k 200 -m fixed -r 2000 -p http -P 16 -d 10" ;;
    S2M) echo "-n 10000 -c 100 -k 200 -m fixed -r 1000 -p http -P 16 -d 10" ;;
    S2L) echo "-n 10000 -c 100 -k 200 -m fixed -r 500 -p http -P 16 -d 10" ;;
    S3)  echo "-n 10000 -c 100 -k 200 -m idle --hold 10" ;;
    S1Z) echo "-n 1000 -c 1 -k 200 -m saturate -p http -w 16 -P 4 -d 10" ;; # + --deflate, s1z_template
    # Publish-heavy (issue 18, two workers): ~6.6 KB JSON bodies (sp_template) to 100 channels
    # of one subscriber each; the server parses and checks every body, the bench only sends it
    # and reads one delivery, so the server is the limit (bench at 15-30 % of its core).
    # SP saturates; SPF offers SPF_RATE publishes/s (default 18000, above what one worker
    # holds here: about 13,600/s).
    SP)  echo "-n 100 -c 100 -k 100 -m saturate -p http -w 128 -P 16 -d 10" ;;
    SPF) echo "-n 100 -c 100 -k 100 -m fixed -r ${SPF_RATE:-18000} -p http -P 32 -d 10" ;;
    *)   echo "unknown scenario $1" >&2; return 1 ;;
  esac
}

# S1Z's publish body: S1's, plus ~1 KB of English-like text that deflate can shrink (wshubd
# never compresses a message under 64 bytes, so S1's body would test nothing). {ts} and {seq}
# stay in front: wsbench reads the first "ts": after inflating.
S1Z_TEXT="The committee met on Tuesday morning to review the quarterly report. Everyone agreed that the numbers looked better than expected, although several members pointed out that the spring figures had been revised twice. The chair asked for a short summary of the changes before the next meeting, and the secretary promised to circulate the notes by Friday. After a brief discussion of the budget for the new office, the meeting moved on to the question of the annual conference, which will again be held in the autumn. Several speakers have already confirmed, and the programme committee expects to publish the full list of talks in the coming weeks. The members thanked the organisers for their work and asked them to keep the registration fee at the same level as last year. Finally, the chair reminded everyone that the library will be closed for two weeks in August while the reading room is repainted, and that books can be returned by post during that time."
# s1z_template TARGET: the publish body in the target's shape (wshub-C publishes to a cable queue)
s1z_template() {
  local ch='"channel":"{ch}","event":"notification"'
  [ "$1" = wshub-C ] && ch='"channel":"chat-room-{chn}-channel","event":"newMessage"'
  printf '{%s,"data":{"ts":{ts},"seq":{seq},"text":"%s"}}' "$ch" "$S1Z_TEXT"
}

# SP and SPF's publish body: S1Z's text six times (~6.6 KB), {ts} and {seq} in front.
sp_template() {
  local t=$S1Z_TEXT
  S1Z_TEXT="$t $t $t $t $t $t" s1z_template "$1"
}

# target_setup NAME PORT: sets SRV_CPUS, SRV_KIND, WORKERS, URL, PROTO (wsbench protocol flags)
target_setup() {
  local p=$2
  PROTO=()
  SRV_ENV=()
  case $1 in
    wshub-B|wshub-B-2w|wshub-B-hist|wshub-B-z)
      SRV_KIND=wshub; WORKERS=1; SRV_CPUS=$SERVER_CPU
      [ "$1" = wshub-B-2w ] && { WORKERS=2; SRV_CPUS=$SERVER_CPUS_2W; }
      [ "$1" = wshub-B-hist ] && SRV_ENV=(WSHUB_HISTORY_SIZE="${HISTORY_SIZE:-100}")
      [ "$1" = wshub-B-z ] && SRV_ENV=(WSHUB_WEBSOCKET_COMPRESSION=true)
      URL="ws://127.0.0.1:$p/api/ws?token=$TOKEN_B"
      # default subscribe template {"type":"subscribe","data":{"channel":"{ch}"}}, ack "subscribed",
      # publish body {"channel":"{ch}",...}: {ch} = conversation:c<k>
      PROTO=(--channel-prefix conversation:c --pub-header "Authorization: Bearer $KEY") ;;
    wshub-C)
      SRV_KIND=wshub; WORKERS=1; SRV_CPUS=$SERVER_CPU
      URL="ws://127.0.0.1:$p/cable?token=$TOKEN_C"
      # Connection i subscribes to Chats::RoomChannel chat_room_id (i % C), i.e. the hub queue
      # chat-room-<k>-channel (PROTOCOLS.md §C); publish k goes to chat-room-(k % C)-channel.
      # wsbench names its channels <prefix><k> (no suffix), so both templates use {chn}; the
      # identifier is a JSON string inside JSON, hence the \" (wsbench copies templates verbatim,
      # only {i} {ch} {chn} {ts} {seq} are expanded; other braces stay as they are).
      PROTO=(-H "Origin: $ORIGIN" -H 'Sec-WebSocket-Protocol: actioncable-v1-json'
             --channel-prefix chat-room-
             --sub-template '{"command":"subscribe","identifier":"{\"channel\":\"Chats::RoomChannel\",\"chat_room_id\":{chn}}"}'
             --ack confirm_subscription
             --pub-template '{"channel":"chat-room-{chn}-channel","event":"newMessage","data":{"ts":{ts},"seq":{seq}}}'
             --pub-header "Authorization: Bearer $KEY") ;;
    wshub-B-redis)
      SRV_KIND=wshub-redis; WORKERS=1; SRV_CPUS=$SERVER_CPU
      URL="ws://127.0.0.1:$p/api/ws?token=$TOKEN_B"
      PROTO=(--channel-prefix conversation:c --pub-header "Authorization: Bearer $KEY") ;;
    wshub-E)
      # /echo: no token, no subscription, every message sent back (so the subscribe template
      # comes back as its own ack). S3 only: the handshake rate without JWT, against uws.
      SRV_KIND=wshub; WORKERS=1; SRV_CPUS=$SERVER_CPU
      URL="ws://127.0.0.1:$p/echo"
      PROTO=(--ack subscribe) ;;
    node-ws)
      SRV_KIND=node; WORKERS=; SRV_CPUS=$SERVER_CPU
      URL="ws://127.0.0.1:$p/ws" ;;
    uws|uws-z)
      SRV_KIND=uws; WORKERS=; SRV_CPUS=$SERVER_CPU; SRV_BIN=$UWS_BIN
      [ "$1" = uws-z ] && { SRV_BIN=$UWS_BIN_Z; SRV_ENV=(UWS_COMPRESSION=shared); }
      URL="ws://127.0.0.1:$p/ws" ;;
    *) die "unknown target $1 (wshub-B wshub-C wshub-B-2w wshub-B-hist wshub-B-z wshub-B-redis wshub-E node-ws uws uws-z)" ;;
  esac
}


# before each run: an idle machine (lib.sh wait_quiet), said when it took a while
quiet_before_run() {
  if wait_quiet "${QUIET_TRIES:-30}"; then
    [ "$QUIET_WAITED" -gt 0 ] && say "  (waited ${QUIET_WAITED}s for an idle machine)"
  else
    say "  WARNING: the machine is still ${QUIET_BUSY}% busy before the run"
  fi
  return 0
}

stop_server() {
  SERVER_RC=
  local rc
  [ -n "${OPID:-}" ] && { stop_pid "$OPID"; OPID=; }
  [ -n "${CPUPID:-}" ] && { stop_pid "$CPUPID"; CPUPID=; }
  if [ -n "${SPID:-}" ]; then stop_pid "$SPID"; SERVER_RC=$?; SPID=; fi
  # wshub-B-redis: node B's exit status counts too (the first non-zero one is kept)
  if [ -n "${BPID:-}" ]; then stop_pid "$BPID"; rc=$?; BPID=; [ "${SERVER_RC:-0}" = 0 ] && SERVER_RC=$rc; fi
  [ -n "${RPID:-}" ] && { stop_pid "$RPID"; RPID=; }
  return 0
}

# wshub_node PORT CPUS LOG [VAR=value...]: starts one wshubd (1 worker) in a fresh directory, pinned;
# prints nothing, sets NODE_PID
wshub_node() {
  local p=$1 cpus=$2 log=$3 rundir; shift 3
  rundir=$(mktemp -d "${TMPDIR:-/tmp}/wshub-bench-run.XXXXXX") && TMPS+=("$rundir")
  # no config/wshub.json in the run directory: the embedded default plus these variables
  (cd "$rundir" && exec env WSHUB_LISTEN="127.0.0.1:$p" WSHUB_WORKERS="$WORKERS" WSHUB_LOG_LEVEL=warn \
    WSHUB_JWT_SECRET="$SECRET" WSHUB_API_KEY="$KEY" WSHUB_CABLE_ALLOWED_ORIGINS="$ORIGIN" \
    WSHUB_MOCK_ENABLED="${WSHUB_MOCK_ENABLED:-false}" WSHUB_HISTORY_SIZE="${WSHUB_HISTORY_SIZE:-0}" \
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$@" taskset -c "$cpus" "$BIN") > "$log" 2>&1 &
  NODE_PID=$!
}

# wait_http PID PORT PATH: until GET PATH answers 200 (15 s); 1 when it does not or PID exits
wait_http() {
  local code
  for _ in $(seq 1 150); do
    kill -0 "$1" 2>/dev/null || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$2$3" 2>/dev/null)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# wshub-B-redis: redis-server on a fresh port (a plain child, no persistence), node B on a fresh
# port, node A (SPID) on PORT; both nodes with WSHUB_BROKER=redis and /readyz = 200
start_cluster() {
  local p=$1 log=$2 rlog=${2%.server.log}.redis.log blog=${2%.server.log}.nodeB.log
  { REDIS_PORT=$(fresh_port) && NODEB_PORT=$(fresh_port); } || { say "  no free port"; return 1; }
  # fresh_port runs in a subshell here, so it cannot remember its own answers: no duplicates
  while [ "$NODEB_PORT" = "$REDIS_PORT" ] || [ "$NODEB_PORT" = "$p" ] || [ "$REDIS_PORT" = "$p" ]; do
    REDIS_PORT=$(fresh_port) && NODEB_PORT=$(fresh_port) || return 1
  done
  taskset -c "$REDIS_CPU" "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --protected-mode yes --loglevel warning > "$rlog" 2>&1 &
  RPID=$!
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$RPID" 2>/dev/null || break
    sleep 0.05
  done
  [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] || { say "  redis-server did not start:"; tail -n 5 "$rlog" >&2; stop_server; return 1; }
  local ru="redis://127.0.0.1:$REDIS_PORT/0"
  wshub_node "$NODEB_PORT" "$NODEB_CPU" "$blog" WSHUB_BROKER=redis WSHUB_REDIS_URL="$ru"; BPID=$NODE_PID
  wshub_node "$p" "$SRV_CPUS" "$log" WSHUB_BROKER=redis WSHUB_REDIS_URL="$ru"; SPID=$NODE_PID
  wait_http "$BPID" "$NODEB_PORT" /readyz || { say "  node B not ready:"; tail -n 5 "$blog" >&2; stop_server; return 1; }
  wait_http "$SPID" "$p" /readyz || { say "  node A not ready:"; tail -n 5 "$log" >&2; stop_server; return 1; }
  return 0
}

# the observer on node B: one subscriber per channel (wsbench idle mode, held for the whole run);
# returns once Redis has every channel subscribed (node B's subscriptions: node A has none yet)
start_observer() {
  local c=$1 log=$2 n
  taskset -c "$OBSERVER_CPU" "$WSBENCH" -u "ws://127.0.0.1:$NODEB_PORT/api/ws?token=$TOKEN_B" -n "$c" -c "$c" -k "$c" \
    -m idle --hold 240 --channel-prefix conversation:c -q --label observer > "$log" 2>&1 &
  OPID=$!
  for _ in $(seq 1 100); do
    n=$(redis-cli -p "$REDIS_PORT" pubsub channels '*' 2>/dev/null | grep -c .)
    [ "$n" -ge "$c" ] && return 0
    kill -0 "$OPID" 2>/dev/null || break
    sleep 0.1
  done
  say "  the observer did not subscribe $c channel(s) on node B: $(tail -n 3 "$log" | tr '\n' ' ')"
  return 1
}

# start_server TARGET PORT LOG: starts the server pinned, waits until it answers, sets SPID
start_server() {
  local t=$1 p=$2 log=$3 rundir code ok=
  target_setup "$t" "$p"
  if [ "$SRV_KIND" = wshub-redis ]; then
    start_cluster "$p" "$log" || return 1
    ok=1
  elif [ "$SRV_KIND" = wshub ]; then
    rundir=$(mktemp -d "${TMPDIR:-/tmp}/wshub-bench-run.XXXXXX") && TMPS+=("$rundir")
    # no config/wshub.json in the run directory: the embedded default plus these variables
    (cd "$rundir" && exec env WSHUB_LISTEN="127.0.0.1:$p" WSHUB_WORKERS="$WORKERS" WSHUB_LOG_LEVEL=warn \
      WSHUB_JWT_SECRET="$SECRET" WSHUB_API_KEY="$KEY" WSHUB_CABLE_ALLOWED_ORIGINS="$ORIGIN" \
    WSHUB_MOCK_ENABLED="${WSHUB_MOCK_ENABLED:-false}" WSHUB_HISTORY_SIZE="${WSHUB_HISTORY_SIZE:-0}" \
      ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
      "${SRV_ENV[@]}" taskset -c "$SRV_CPUS" "$BIN") > "$log" 2>&1 &
  elif [ "$SRV_KIND" = uws ]; then
    (exec env "${SRV_ENV[@]}" taskset -c "$SRV_CPUS" "$SRV_BIN" "$p") > "$log" 2>&1 &
  else
    (cd "$NODE_DIR" && exec taskset -c "$SRV_CPUS" node server.js "$p") > "$log" 2>&1 &
  fi
  SPID=$!
  for _ in $(seq 1 150); do
    [ -n "$ok" ] && break
    kill -0 "$SPID" 2>/dev/null || { say "  the server exited at start:"; tail -n 20 "$log" >&2; SPID=; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$p/healthz" 2>/dev/null)
    # wshubd: GET /healthz answers 200; the node peer has no /healthz (404 = it listens)
    if [ "$SRV_KIND" = wshub ] && [ "$code" = 200 ]; then ok=1; break; fi
    # the peers have no /healthz: any answer (404) means it listens
    if [ "$SRV_KIND" != wshub ] && [ "$code" != 000 ] && [ -n "$code" ]; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || { say "  the server did not answer on port $p within 15 s"; stop_server; return 1; }
  local exe want
  exe=$(readlink -f "/proc/$SPID/exe" 2>/dev/null)
  case $SRV_KIND in
    node) want=$(readlink -f "$(command -v node)") ;;
    uws) want=$(readlink -f "$SRV_BIN") ;;
    *) want=$(readlink -f "$BIN") ;;
  esac
  [ "$exe" = "$want" ] || { say "  pid $SPID runs '$exe', not $want"; stop_server; return 1; }
  return 0
}

# Other processes' CPU during the run, in % of one CPU: the larger of (a) the increase of
# utime+stime of every process outside this script's tree, kernel threads excepted, over the
# wsbench run (bench/proc_cpu.py; exact, but blind to processes that start and exit inside the
# window) and (b) wsbench's machine_busy_pct over the measured phase minus server and bench
# (sees everything, but tick-sampled: it under-reports bursty work, see proc_cpu.py).
# Prints: other_pct machine_pct '<json from proc_cpu.py>'
other_load() {
  python3 - "$1" "$2" "${3:-0}" <<'PY'
import json, sys
proc = {}
try:
    proc = json.loads(sys.argv[2])
except Exception:
    pass
mach = None
try:
    d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
    c = d["cpu"].get("publish") or d["cpu"]["connect"]
    m = c.get("machine_busy_pct", [])
    if len(m) >= 2:
        # argv[3]: the target's own further processes (wshub-B-redis: node B, redis, observer)
        mach = max(sum(m) - max(c["server_pct"], 0) - max(c["bench_pct"], 0) - float(sys.argv[3]), 0)
except Exception:
    pass
vals = [v for v in (proc.get("other_pct"), mach) if v is not None]
print(int(round(max(vals))) if vals else 100, "null" if mach is None else round(mach, 1), json.dumps(proc) if proc else "{}")
PY
}

# ---------------------------------------------------------------- the runs
FAILED=0
RUNS=0
T0=$(date +%s)
run_one() {
  local t=$1 sc=$2 rep=$3 base="$OUT/$1-$2-$3" args port attempt brc other
  args=$(scenario_args "$sc") || { FAILED=$((FAILED + 1)); return; }
  for attempt in $(seq 1 "$ATTEMPTS"); do
    port=$(fresh_port) || die "no free port"
    [ "$ASAN" = 1 ] || quiet_before_run
    if ! start_server "$t" "$port" "$base.server.log"; then
      FAILED=$((FAILED + 1))
      echo "{\"target\":\"$t\",\"scenario\":\"$sc\",\"rep\":$rep,\"attempt\":$attempt,\"port\":$port,\"start_failed\":true}" > "$base.run.json"
      return
    fi
    local cluster=
    if [ "$SRV_KIND" = wshub-redis ]; then
      cluster=1
      # shellcheck disable=SC2086
      start_observer "$(set -- $args; while [ $# -gt 0 ]; do [ "$1" = -c ] && { echo "$2"; break; }; shift; done)" "$base.observer.log" ||
        { stop_server; FAILED=$((FAILED + 1)); echo "{\"target\":\"$t\",\"scenario\":\"$sc\",\"rep\":$rep,\"attempt\":$attempt,\"port\":$port,\"start_failed\":true}" > "$base.run.json"; return; }
      rm -f "$base.cpu.jsonl"
      python3 "$HERE/cluster_cpu.py" sample "$base.cpu.jsonl" nodeA="$SPID" nodeB="$BPID" redis="$RPID" observer="$OPID" &
      CPUPID=$!
    fi
    local bpid=
    if [ -n "${BESIDE:-}" ]; then
      : > "$base.beside.log" # appended to (O_APPEND): the metrics below land after its lines
      (cd "$ROOT" && PORT=$port KEY=$KEY exec taskset -c "$BENCH_CPU" bash -c "$BESIDE") >> "$base.beside.log" 2>&1 &
      bpid=$!
    fi
    sleep 0.5
    # S1Z and every *-z target: wsbench-z --deflate (after PROTO: S1Z's --pub-template wins)
    local zargs=() wsb=$WSBENCH
    case "$t $sc" in *"-z "*|*" S1Z") wsb=$WSBENCH_Z; zargs=(--deflate) ;; esac
    [ "$sc" = S1Z ] && zargs+=(--pub-template "$(s1z_template "$t")")
    case $sc in SP|SPF) zargs+=(--pub-template "$(sp_template "$t")") ;; esac
    # shellcheck disable=SC2206
    local cmd=(taskset -c "$BENCH_CPU" "$wsb" -u "$URL" $args "${PROTO[@]}" "${zargs[@]}" --pid "$SPID" --label "$t-$sc-$rep")
    printf '%q ' "${cmd[@]}" > "$base.cmd"; echo >> "$base.cmd"
    say "[$t $sc #$rep$([ "$attempt" -gt 1 ] && echo " attempt $attempt")] port $port, server pid $SPID (CPUs $SRV_CPUS${WORKERS:+, $WORKERS worker(s)})${cluster:+; node B port $NODEB_PORT pid $BPID (CPU $NODEB_CPU), redis-server port $REDIS_PORT pid $RPID (CPU $REDIS_CPU), observer pid $OPID (CPU $OBSERVER_CPU)}"
    say "  $(sed -E 's/token=[A-Za-z0-9._-]+/token=<JWT>/; s/Bearer\\? [A-Za-z0-9-]+/Bearer <key>/g; s/The\\ committee[^"]*time\./<S1Z_TEXT, about 1 KB>/' "$base.cmd")"
    python3 "$HERE/proc_cpu.py" snap $$ > "$OUT/.procs0" 2>/dev/null
    local t0 t1; t0=$(date +%s.%N)
    timeout 300 "${cmd[@]}" > "$base.json" 2> "$base.log"
    brc=$?
    t1=$(date +%s.%N)
    # the server's own share of the latency (wshub_fanout_delivery_seconds), before it stops
    is_peer=0
    case $SRV_KIND in node|uws) is_peer=1 ;; esac
    [ $is_peer = 0 ] && curl -s --max-time 5 "http://127.0.0.1:$port/metrics" |
      python3 "$HERE/fanout_metrics.py" > "$base.fanout.json" 2>/dev/null
    [ $is_peer = 0 ] && [ -n "$bpid" ] && curl -s --max-time 5 "http://127.0.0.1:$port/metrics" |
      grep -E '^wshub_mock_tap' >> "$base.beside.log"
    [ -n "$bpid" ] && stop_pid "$bpid"
    local extra=0
    if [ -n "$cluster" ]; then
      # where the time goes: every process's CPU over the publish window, Redis's own count of
      # PUBLISH calls and µs, both nodes' broker metrics
      stop_pid "$CPUPID"; CPUPID=
      python3 "$HERE/cluster_cpu.py" window "$base.cpu.jsonl" "$t0" "$base.json" > "$base.cluster.json" 2>/dev/null
      { echo "# redis INFO commandstats + stats"; redis-cli -p "$REDIS_PORT" info commandstats; redis-cli -p "$REDIS_PORT" info stats | grep -E 'pubsub|total_commands|instantaneous'
        echo "# node A /metrics (broker)"; curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | grep -E '^wshub_broker'
        echo "# node B /metrics (broker)"; curl -s --max-time 5 "http://127.0.0.1:$NODEB_PORT/metrics" | grep -E '^wshub_broker'
      } > "$base.redis-stats.txt" 2>&1
      extra=$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1])); print(round(sum((d.get(k) or {}).get("pct",0) for k in ("nodeB","redis","observer"))))' "$base.cluster.json" 2>/dev/null || echo 0)
    fi
    python3 "$HERE/proc_cpu.py" snap $$ > "$OUT/.procs1" 2>/dev/null
    local procj; procj=$(python3 "$HERE/proc_cpu.py" diff "$OUT/.procs0" "$OUT/.procs1" "$(echo "$t1 - $t0" | bc)" 2>/dev/null)
    rm -f "$OUT/.procs0" "$OUT/.procs1"
    stop_server
    RUNS=$((RUNS + 1))
    say "  wsbench rc=$brc, server rc=$SERVER_RC | $(grep -E '^(deliveries|latency|handshakes|server rss|errors)' "$base.log" | tr '\n' '|' | cut -c1-400)"
    local ol other mach procs
    [ -n "$procj" ] || procj='{}'
    ol=$(other_load "$base.json" "$procj" "$extra")
    read -r other mach procs <<< "$ol"
    # a --deflate run: the compressed targets must have received compressed frames, the others none
    local dcheck=null
    if [ "$wsb" = "$WSBENCH_Z" ]; then
      dcheck=$(python3 "$HERE/deflate_check.py" "$t" "$base.json")
      if [ -n "$dcheck" ]; then
        say "  DEFLATE CHECK FAILED [$t $sc #$rep]: $dcheck"
        FAILED=$((FAILED + 1))
      else
        say "  deflate check ok: $(python3 -c 'import json,sys; z=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["deflate"]; print("%d conns negotiated, %d of %d messages compressed, %d wire / %d plain bytes" % (z["negotiated"], z["compressed_messages"], z["messages"], z["wire_bytes"], z["plain_bytes"]))' "$base.json")"
      fi
      dcheck=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1] or "ok"))' "$dcheck")
    fi
    # node and uWS exit on SIGTERM by the signal (no handler): 143 is their normal stop
    echo "{\"target\":\"$t\",\"scenario\":\"$sc\",\"rep\":$rep,\"attempt\":$attempt,\"port\":$port,\"bench_rc\":$brc,\"server_rc\":${SERVER_RC:-null},\"server_rc_normal\":$([ $is_peer = 1 ] && echo '[0,143]' || echo '[0]'),\"deflate_check\":$dcheck,\"other_load_pct\":$other,\"other_machine_pct\":$mach,\"other_procs\":$procs,\"wall_s\":$(echo "$t1 - $t0" | bc),\"server_cpus\":\"$SRV_CPUS\",\"bench_cpu\":\"$BENCH_CPU\",\"workers\":${WORKERS:-null}}" > "$base.run.json"
    [ "$other" -gt 5 ] && say "  other load ${other}% of a CPU (machine estimate ${mach}%; processes: $procs)"
    [ "$brc" = 0 ] || FAILED=$((FAILED + 1))
    sleep 1
    if [ "$other" -le "$MAX_OTHER" ] || [ "$attempt" = "$ATTEMPTS" ]; then
      [ "$other" -gt "$MAX_OTHER" ] && say "  other load ${other}% during the run: kept (last attempt)"
      break
    fi
    say "  other load ${other}% during the run: rejected, repeating"
    [ -n "$dcheck" ] && [ "$dcheck" != null ] && [ "$dcheck" != '"ok"' ] && FAILED=$((FAILED - 1))
    for f in json log server.log cmd run.json fanout.json cluster.json redis-stats.txt observer.log nodeB.log redis.log cpu.jsonl; do [ -e "$base.$f" ] && mv "$base.$f" "$base.$f.rejected$attempt"; done
    [ "$brc" = 0 ] || FAILED=$((FAILED - 1))
  done
}

# Interleaved (rep, scenario, target) so that slow drift of the machine hits every target alike.
for rep in $(seq 1 "$REPS"); do
  for sc in $SCENARIOS; do
    for t in $TARGETS; do
      # /echo has no channels: only the idle scenario means something there
      [ "$t" = wshub-E ] && [ "$sc" != S3 ] && continue
      run_one "$t" "$sc" "$rep"
    done
  done
done
say "$RUNS runs in $(( $(date +%s) - T0 )) s; results in $OUT"
ln -sfn "$(basename "$OUT")" "$HERE/results/latest" 2>/dev/null || true

# ---------------------------------------------------------------- ASan checks
if [ "$ASAN" = 1 ]; then
  CHECK_FAIL=0
  for f in "$OUT"/*.json; do
    case $f in *.run.json) continue ;; esac
    base=${f%.json}
    msg=$(python3 - "$f" "$base.run.json" <<'PY'
import json, sys
bad = []
try:
    d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except Exception:
    print("no JSON line from wsbench"); sys.exit()
r = json.load(open(sys.argv[2]))
if d.get("connected") != d.get("conns"): bad.append("connected %s of %s" % (d.get("connected"), d.get("conns")))
if d.get("subscribed") != d.get("conns"): bad.append("subscribed %s of %s" % (d.get("subscribed"), d.get("conns")))
if d.get("mode") != "idle":
    if not d.get("deliveries"): bad.append("no deliveries")
    if d.get("lost"): bad.append("lost %s" % d["lost"])
    if d.get("dup"): bad.append("dup %s" % d["dup"])
e = d.get("errors", {})
if e.get("total"): bad.append("errors " + ", ".join("%s=%s" % kv for kv in e.items() if kv[1]))
if r.get("bench_rc") != 0: bad.append("wsbench exit %s" % r.get("bench_rc"))
if r.get("server_rc") != 0: bad.append("wshubd exit %s after SIGTERM" % r.get("server_rc"))
print("; ".join(bad))
PY
)
    san=$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer|WARNING: ThreadSanitizer' "$base.server.log" | head -n 3)
    [ -n "$san" ] && msg="${msg:+$msg; }sanitizer report in $(basename "$base.server.log"): $san"
    if [ -n "$msg" ]; then
      say "ASAN CHECK FAILED $(basename "$base"): $msg"; CHECK_FAIL=1
    else
      say "asan check ok $(basename "$base"): $(python3 -c "import json,sys;d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]);print('%d conns, %d deliveries, lost 0, dup 0, errors 0, no sanitizer report, wshubd exit 0'%(d['connected'],d['deliveries']))" "$f")"
    fi
  done
  [ "$FAILED" -gt 0 ] && CHECK_FAIL=1
  "$HERE/summarize.sh" "$OUT" > "$OUT/summary.md"
  cat "$OUT/summary.md"
  if [ "$CHECK_FAIL" = 0 ]; then say "ASan run: every check passed"; exit 0; fi
  say "ASan run: FAILED (see above; files in $OUT)"; exit 1
fi

"$HERE/summarize.sh" "$OUT" > "$OUT/summary.md"
cat "$OUT/summary.md"
say "tables: $OUT/summary.md"
[ "$FAILED" = 0 ] || { say "$FAILED run(s) failed (wsbench exit status or server start)"; exit 1; }
exit 0
}
