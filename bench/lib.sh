# shellcheck shell=bash
# What the bench scripts share (sourced by run.sh, moderation.sh, idle.sh and callgrind.sh).

# A fresh port: never used by this script and with no socket at all on it (a TIME_WAIT left
# by an earlier run would make the kernel reject some SYNs: PAWS, see ../shared/bench/README.md).
declare -gA USED_PORTS=()
fresh_port() {
  local p
  for _ in $(seq 1 500); do
    p=$((20000 + RANDOM % 12000))
    [ -n "${USED_PORTS[$p]:-}" ] && continue
    if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
      USED_PORTS[$p]=1; echo "$p"; return 0
    fi
  done
  return 1
}

# wshub_bin ROOT: prints the wshubd to measure: $WSHUB_BIN, or build-release/wshubd (set up
# with --buildtype=release and built when needed). Build output goes to stderr.
wshub_bin() {
  local root=$1
  if [ -n "${WSHUB_BIN:-}" ]; then
    (cd "$root" && realpath "$WSHUB_BIN") || { echo "bench: WSHUB_BIN=$WSHUB_BIN not found" >&2; return 1; }
    return 0
  fi
  if [ ! -f "$root/build-release/build.ninja" ]; then
    (cd "$root" && meson setup build-release --buildtype=release) >&2 || return 1
  fi
  ninja -C "$root/build-release" >&2 || return 1
  echo "$root/build-release/wshubd"
}

# wait_quiet TRIES: waits (at most TRIES seconds) until the machine is at most $QUIET_PCT
# (default 10) percent busy over one second. Sets QUIET_WAITED (seconds waited) and QUIET_BUSY
# (the last reading); returns 1 when the machine never got quiet.
wait_quiet() {
  local a b
  QUIET_BUSY=0
  QUIET_WAITED=0
  while [ "$QUIET_WAITED" -lt "$1" ]; do
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    QUIET_BUSY=$(echo "$a $b" | awk '{d=$4-$2; print (d>0)? int(100*($3-$1)/d) : 0}')
    [ "$QUIET_BUSY" -le "${QUIET_PCT:-10}" ] && return 0
    QUIET_WAITED=$((QUIET_WAITED + 1))
  done
  return 1
}

# stop_pid PID: stops a server this shell started, by PID only: SIGTERM, SIGKILL after 10 s.
# Returns the server's exit status.
stop_pid() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "bench: server $pid ignored SIGTERM for 10 s: SIGKILL" >&2; kill -KILL "$pid" 2>/dev/null; }
  fi
  wait "$pid" 2>/dev/null
}

# wait_healthz PORT PID: waits (every 0.2 s, at most 30 s: valgrind starts slowly) until the
# server PID answers GET /healthz on 127.0.0.1:PORT; returns 1 if it exits or never answers.
wait_healthz() {
  local port=$1 pid=$2
  for _ in $(seq 1 150); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
