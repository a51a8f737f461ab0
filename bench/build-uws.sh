#!/usr/bin/env bash
# Builds the uWebSockets peer (bench/peers/uws/server.cpp) against a snapshot of uWebSockets and
# uSockets that stays OUTSIDE the repository: nothing fetched is copied into or committed to it.
#
#   bench/build-uws.sh [-f]        # -f: rebuild even when up to date
#
# Sources (the commits of ../shared/bench/RESULTS.md by default):
#   UWS_GIT / USOCKETS_GIT   git directories to `git archive HEAD` from (default
#                            /work/.mirror/uNetworking+uWebSockets/repo, .../uNetworking+uSockets/repo)
#   UWS_SRC / USOCKETS_SRC   checked-out trees instead (used as they are, not copied)
#   UWS_BUILD_DIR            where the export and the binaries go (default
#                            $ROOT/../bench-peers/uws-<uWS commit>, beside the repository)
# Output in UWS_BUILD_DIR:
#   uws-peer     -DUWS_NO_ZLIB: exactly RESULTS.md's build (LIBUS_NO_SSL, epoll)
#   uws-peer-z   linked with zlib (-lz): UWS_COMPRESSION=shared runs uWS::SHARED_COMPRESSOR
#   uws-commits.txt  both commits, the compiler and the flags
# Prints the build directory on stdout. Exit 2 (with a message) when the snapshots are not
# there: bench/run.sh then skips the uws targets.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SRV="$HERE/peers/uws/server.cpp"
FORCE=0
[ "${1:-}" = -f ] && FORCE=1

say() { echo "build-uws: $*" >&2; }

UWS_GIT=${UWS_GIT:-/work/.mirror/uNetworking+uWebSockets/repo}
USOCKETS_GIT=${USOCKETS_GIT:-/work/.mirror/uNetworking+uSockets/repo}

# src_commit NAME SRC GIT: the commit of a tree (SRC, when set) or of a git dir's HEAD
src_commit() {
  local name=$1 src=$2 git=$3
  if [ -n "$src" ]; then
    [ -d "$src" ] || { say "$name $src is not a directory"; return 2; }
    git -C "$src" rev-parse HEAD 2>/dev/null || echo "tree-$(find "$src" -type f \( -name '*.h' -o -name '*.c' \) -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-12)"
  else
    git --git-dir="$git" rev-parse HEAD 2>/dev/null || { say "no $name snapshot at $git (set ${name}_GIT to a git dir or ${name}_SRC to a checked-out tree)"; return 2; }
  fi
}
UWS_COMMIT=$(src_commit UWS "${UWS_SRC:-}" "$UWS_GIT") || exit 2
US_COMMIT=$(src_commit USOCKETS "${USOCKETS_SRC:-}" "$USOCKETS_GIT") || exit 2

BUILD=$(realpath -m "${UWS_BUILD_DIR:-$ROOT/../bench-peers/uws-${UWS_COMMIT:0:12}}")
case $BUILD/ in "$ROOT"/*) say "UWS_BUILD_DIR $BUILD is inside the repository: fetched code stays outside it"; exit 1 ;; esac

CFLAGS_US=(-O2 -DLIBUS_NO_SSL -DLIBUS_USE_EPOLL)
CXXFLAGS=(-O2 -std=c++20 -DLIBUS_NO_SSL -DLIBUS_USE_EPOLL)
STAMP="uws $UWS_COMMIT usockets $US_COMMIT server $(sha256sum "$SRV" | cut -c1-16) $(basename "$0") $(sha256sum "$0" | cut -c1-16)"
if [ "$FORCE" = 0 ] && [ -x "$BUILD/uws-peer" ] && [ -x "$BUILD/uws-peer-z" ] && [ "$(cat "$BUILD/.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "$BUILD"
  exit 0
fi

mkdir -p "$BUILD"
# the sources: a fresh export per build (a tree given as *_SRC is used in place)
if [ -n "${UWS_SRC:-}" ]; then UWS_DIR=$(realpath "$UWS_SRC"); else
  UWS_DIR=$BUILD/uWebSockets; rm -rf "$UWS_DIR"; mkdir -p "$UWS_DIR"
  git --git-dir="$UWS_GIT" archive HEAD src LICENSE | tar -x -C "$UWS_DIR"
fi
if [ -n "${USOCKETS_SRC:-}" ]; then US_DIR=$(realpath "$USOCKETS_SRC"); else
  US_DIR=$BUILD/uSockets; rm -rf "$US_DIR"; mkdir -p "$US_DIR"
  git --git-dir="$USOCKETS_GIT" archive HEAD src LICENSE | tar -x -C "$US_DIR"
fi
[ -f "$UWS_DIR/src/App.h" ] || { say "$UWS_DIR/src/App.h not found"; exit 2; }
[ -f "$US_DIR/src/libusockets.h" ] || { say "$US_DIR/src/libusockets.h not found"; exit 2; }

say "building in $BUILD (uWebSockets ${UWS_COMMIT:0:12}, uSockets ${US_COMMIT:0:12})"
OBJ=$BUILD/obj; rm -rf "$OBJ"; mkdir -p "$OBJ"
# uSockets' C sources, epoll backend, no SSL (its crypto/ and io_uring/ parts are not needed)
for f in "$US_DIR"/src/*.c "$US_DIR"/src/eventing/epoll_kqueue.c; do
  gcc "${CFLAGS_US[@]}" -I"$US_DIR/src" -c "$f" -o "$OBJ/$(basename "${f%.c}").o"
done
INC=(-I"$UWS_DIR/src" -I"$US_DIR/src")
g++ "${CXXFLAGS[@]}" -DUWS_NO_ZLIB "${INC[@]}" "$SRV" "$OBJ"/*.o -o "$BUILD/uws-peer.tmp"
g++ "${CXXFLAGS[@]}" "${INC[@]}" "$SRV" "$OBJ"/*.o -lz -o "$BUILD/uws-peer-z.tmp"
mv -f "$BUILD/uws-peer.tmp" "$BUILD/uws-peer"
mv -f "$BUILD/uws-peer-z.tmp" "$BUILD/uws-peer-z"
{
  echo "uWebSockets $UWS_COMMIT ($( [ -n "${UWS_SRC:-}" ] && echo "tree $UWS_DIR" || echo "git archive of $UWS_GIT"); $(git --git-dir="$UWS_GIT" describe --tags "$UWS_COMMIT" 2>/dev/null || echo no tag))"
  echo "uSockets $US_COMMIT ($( [ -n "${USOCKETS_SRC:-}" ] && echo "tree $US_DIR" || echo "git archive of $USOCKETS_GIT"); $(git --git-dir="$USOCKETS_GIT" describe --tags "$US_COMMIT" 2>/dev/null || echo no tag))"
  echo "compiler: $(gcc --version | head -n1) / $(g++ --version | head -n1)"
  echo "uSockets: gcc ${CFLAGS_US[*]} (src/*.c, src/eventing/epoll_kqueue.c)"
  echo "uws-peer: g++ ${CXXFLAGS[*]} -DUWS_NO_ZLIB"
  echo "uws-peer-z: g++ ${CXXFLAGS[*]} ... -lz (zlib $(dpkg-query -W -f '${Version}' zlib1g-dev 2>/dev/null || echo '?'))"
  echo "server: bench/peers/uws/server.cpp sha256 $(sha256sum "$SRV" | cut -c1-16)"
} > "$BUILD/uws-commits.txt"
echo "$STAMP" > "$BUILD/.stamp"
say "built $BUILD/uws-peer and $BUILD/uws-peer-z"
echo "$BUILD"
