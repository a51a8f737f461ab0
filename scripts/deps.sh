# shellcheck shell=bash
# Installs what building and testing wshub needs on Debian 12, and nothing that is already
# there (so a second run is fast and offline). Sourced by scripts/run and scripts/test.
WSHUB_DEB_PACKAGES=(
  gcc pkg-config meson ninja-build
  libuv1-dev node-llhttp libwslay-dev libssl-dev libjansson-dev libjwt-dev libcmocka-dev
  libhiredis-dev libsystemd-dev zlib1g-dev
  openssl curl procps
)

wshub_install_deps() {
  local missing=() p
  for p in "${WSHUB_DEB_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "wshub: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "wshub: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
      return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# Node.js >= 20 with npm runs the end-to-end and acceptance tests (the real client libraries).
wshub_check_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "wshub: node (>= 20) and npm are required for the tests" >&2
    return 1
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt 20 ]; then
    echo "wshub: node >= 20 is required for the tests (found $(node --version))" >&2
    return 1
  fi
}

# meson setup (once) and build. $1 = build dir, the rest = meson options.
wshub_build() {
  local dir="$1"
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >&2
  fi
  ninja -C "$dir" >&2
}

# The fuzz targets (tests/fuzz/) need clang and its libFuzzer/sanitizer runtimes (Debian 12:
# clang-14; the runtimes are only a Recommends of it). Own build dir: build-fuzz.
WSHUB_FUZZ_PACKAGES=(clang libclang-rt-14-dev)
wshub_build_fuzz() {
  wshub_install_deps "${WSHUB_FUZZ_PACKAGES[@]}" || return 1
  CC=clang wshub_build "${WSHUB_FUZZ_BUILD:-build-fuzz}" -Dfuzz=true
}
