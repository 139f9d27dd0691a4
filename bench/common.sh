# Shared set-up for the benchmark scripts (sourced, not run): tool and
# root checks, a release build, a scratch directory, and namespaces that
# are removed with everything in them when the script exits.

# bench_setup NAME PACKAGES TOOL... : checks, builds, sets NETVM and WORK.
bench_setup() {
  local name=$1 packages=$2
  shift 2
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench/$name.sh needs $tool: apt-get install -y $packages" >&2; exit 1; }
  done
  [ "$(id -u)" = 0 ] || { echo "bench/$name.sh must run as root (it creates network namespaces)" >&2; exit 1; }
  cargo build --release --locked -q -p netvm
  NETVM=$PWD/target/release/netvm
  WORK=$(mktemp -d "/tmp/netvm-bench-$name.XXXXXX")
  BENCH_NAMESPACES=()
  trap bench_cleanup EXIT
}

# bench_netns NAME : creates a namespace (loopback up) removed at exit.
bench_netns() {
  ip netns add "$1"
  BENCH_NAMESPACES+=("$1")
  ip -n "$1" link set lo up
}

bench_cleanup() {
  for ns in "${BENCH_NAMESPACES[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
