#!/usr/bin/env bash
# The benchmark, not a test: direct loopback vs egress-proxy vs Squid vs tinyproxy, one run.
# Installs Squid and tinyproxy when missing. Extra arguments go to egress-bench (see --help).
#   bench/run.sh --all-modes [ARGS]: the whole comparison in one command: the table unpinned,
#   then pinned (--pin), then instructions per operation against Squid (bench/callgrind.sh --squid).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ] || missing+=(squid)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/sbin/tinyproxy ] || missing+=(tinyproxy)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The packages may start system-wide daemons on fixed ports; the benchmark runs its own.
  $sudo systemctl stop squid tinyproxy 2>/dev/null || true
fi
export PATH="$PATH:/usr/sbin"
cargo build --release -p egress-proxy -p egress-bench
if [ "${1:-}" = --all-modes ]; then
  shift
  target/release/egress-bench --egress target/release/egress-proxy "$@"
  target/release/egress-bench --egress target/release/egress-proxy --pin "$@"
  exec bench/callgrind.sh --squid
fi
exec target/release/egress-bench --egress target/release/egress-proxy "$@"
