# shellcheck shell=bash
# Docker helpers for scripts/docker-test (sourced): a Docker daemon (the one that answers, or a
# private dockerd started here), the local Debian 12 base image made with debootstrap (no
# image registry is needed), and the wshub image. Everything started here is recorded so that
# wshub_docker_stop ends exactly that.
#
# The private dockerd keeps all traffic on loopback: --bridge=none --iptables=false, and every
# build and container uses the host's network (the machine's network is left as it was).
# Caches (stable across runs, so that a rerun builds in seconds):
#   $WSHUB_DOCKER_CACHE/debian12-minbase.tar   the trimmed debootstrap root filesystem
#   $WSHUB_DOCKER_CACHE/dockerd                the private daemon's data root (images, layers)

WSHUB_DOCKER_CACHE="${WSHUB_DOCKER_CACHE:-/var/cache/wshub-docker}"
WSHUB_DOCKER_BASE="${WSHUB_DOCKER_BASE:-wshub-local/debian:12-minbase}"
# shellcheck disable=SC2034  # used by scripts/docker-test
WSHUB_DOCKER_PACKAGES=(docker.io docker-compose debootstrap)
WSHUB_DOCKERD="${WSHUB_DOCKERD:-dockerd}"   # the daemon binary started when none answers
WSHUB_DOCKERD_PID=""
WSHUB_DOCKERD_RUN=""
WSHUB_DOCKER_WHY=""   # why wshub_docker_start failed

# The Debian mirror of this machine (its apt sources), for debootstrap and for the image.
wshub_debian_mirror() {
  local m
  m=$(grep -hoE '(https?://[^ ]+/debian)/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        2>/dev/null | head -1 | tr -d ' ')
  [ -n "$m" ] || m=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null)
  echo "${m:-http://deb.debian.org/debian}"
}

# True when a Docker daemon answers on DOCKER_HOST (or the default socket).
wshub_docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

# Uses the daemon that answers, else starts a private dockerd under a temporary directory
# (data root in the cache). Returns 1 with the reason on stderr when none can be started.
wshub_docker_start() {
  if wshub_docker_answers; then
    echo "docker: using the daemon at ${DOCKER_HOST:-unix:///var/run/docker.sock}" >&2
    return 0
  fi
  if ! command -v "$WSHUB_DOCKERD" >/dev/null 2>&1; then
    WSHUB_DOCKER_WHY="$WSHUB_DOCKERD is not installed (Debian package docker.io)"
    echo "docker: $WSHUB_DOCKER_WHY" >&2
    return 1
  fi
  WSHUB_DOCKERD_RUN=$(mktemp -d /tmp/wshub-dockerd.XXXXXX)
  mkdir -p "$WSHUB_DOCKER_CACHE/dockerd"
  export DOCKER_HOST="unix://$WSHUB_DOCKERD_RUN/docker.sock"
  "$WSHUB_DOCKERD" --data-root "$WSHUB_DOCKER_CACHE/dockerd" --exec-root "$WSHUB_DOCKERD_RUN/exec" \
    --pidfile "$WSHUB_DOCKERD_RUN/dockerd.pid" -H "$DOCKER_HOST" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    >"$WSHUB_DOCKERD_RUN/dockerd.log" 2>&1 &
  WSHUB_DOCKERD_PID=$!
  for _ in $(seq 60); do
    wshub_docker_answers && { echo "docker: started a private dockerd (pid $WSHUB_DOCKERD_PID, $DOCKER_HOST)" >&2; return 0; }
    kill -0 "$WSHUB_DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  WSHUB_DOCKER_WHY="a private dockerd exited or did not answer within 30 s (last log line: $(tail -1 "$WSHUB_DOCKERD_RUN/dockerd.log"))"
  echo "docker: a private dockerd did not answer within 30 s; its log:" >&2
  tail -15 "$WSHUB_DOCKERD_RUN/dockerd.log" >&2
  wshub_docker_stop
  return 1
}

# Stops the private dockerd (if this script started one): SIGTERM, SIGKILL after 20 s.
wshub_docker_stop() {
  [ -n "$WSHUB_DOCKERD_PID" ] || return 0
  kill -TERM "$WSHUB_DOCKERD_PID" 2>/dev/null
  for _ in $(seq 40); do
    kill -0 "$WSHUB_DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$WSHUB_DOCKERD_PID" 2>/dev/null; then
    echo "docker: dockerd $WSHUB_DOCKERD_PID did not stop in 20 s: SIGKILL" >&2
    kill -KILL "$WSHUB_DOCKERD_PID" 2>/dev/null
  fi
  wait "$WSHUB_DOCKERD_PID" 2>/dev/null
  WSHUB_DOCKERD_PID=""
  # dockerd leaves its network namespace mount (exec/netns/default) behind.
  awk -v d="$WSHUB_DOCKERD_RUN/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount "$m"; done
  rm -rf "${WSHUB_DOCKERD_RUN:?}"
}

# Makes the trimmed Debian 12 root filesystem tarball (debootstrap minbase, the machine's
# mirror; about 30 s), once: what Debian's debian:12-slim is, without a registry.
wshub_docker_rootfs() {
  local tar="$WSHUB_DOCKER_CACHE/debian12-minbase.tar" root mirror
  [ -s "$tar" ] && return 0
  mirror=$(wshub_debian_mirror)
  root=$(mktemp -d /tmp/wshub-rootfs.XXXXXX) || return 1
  echo "docker: debootstrap --variant=minbase bookworm from $mirror" >&2
  if ! nice debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
    tail -20 "$root.log" >&2
    rm -rf "$root" "$root.log"
    return 1
  fi
  # As debian:12-slim: no docs, man pages or locales now or from later installs, no apt cache.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true"; Acquire::CompressionTypes::Order:: "gz";
APT::Install-Recommends "false";
EOF
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "${root:?}"/usr/share/man/* "${root:?}"/usr/share/info/* "${root:?}"/usr/share/locale/* \
    "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/cache/apt/* "${root:?}"/var/cache/debconf/*-old \
    "${root:?}"/var/log/* "${root:?}"/tmp/* "${root:?}"/dev/*
  : >"$root/etc/hostname"
  mkdir -p "$WSHUB_DOCKER_CACHE"
  tar --numeric-owner -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
  rm -rf "$root" "$root.log"
}

# The base image in the daemon: imported from the cached tarball (made first if need be).
wshub_docker_base() {
  docker image inspect "$WSHUB_DOCKER_BASE" >/dev/null 2>&1 && return 0
  wshub_docker_rootfs || return 1
  docker import --change 'CMD ["bash"]' "$WSHUB_DOCKER_CACHE/debian12-minbase.tar" \
    "$WSHUB_DOCKER_BASE" >/dev/null
}

# Builds docker/Dockerfile on the local base. $1 = tag.
wshub_docker_build() {
  nice docker build --network host --build-arg BASE="$WSHUB_DOCKER_BASE" \
    -f docker/Dockerfile -t "$1" . >&2
}
