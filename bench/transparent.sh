#!/usr/bin/env bash
# The benchmark, not a test: new connections per second from a client namespace to an origin
# namespace through a gateway namespace running egress, intercepted (nftables REDIRECT to a
# redirect:// listener, the request named by its Host header) against explicit (curl -x to the
# same egress on the same gateway), and direct (plain forwarding, no egress) for scale. Each
# connection carries one plain-HTTP request with `Connection: close`.
#
# Needs root (it creates network namespaces, removed at exit), curl, python3, nft.
# Usage: bench/transparent.sh [--binary PATH] [--connections N] [--parallel P] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=target/release/egress-proxy
connections=2000
parallel=8
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || cargo build --release -p egress-proxy
# Bounded: at most 100,000 connections per measurement.
[ "$connections" -le 100000 ] || { echo "--connections at most 100000" >&2; exit 2; }

id="egb$$"
c="${id}c" g="${id}g" o="${id}o"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$c" "$g" "$o"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for n in "$c" "$g" "$o"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$c" link add c0 type veth peer name g0 netns "$g"
ip -n "$o" link add o0 type veth peer name g1 netns "$g"
ip -n "$c" addr add 198.18.1.2/24 dev c0
ip -n "$g" addr add 198.18.1.1/24 dev g0
ip -n "$g" addr add 198.18.2.1/24 dev g1
ip -n "$o" addr add 198.18.2.2/24 dev o0
for pair in "$c c0" "$g g0" "$g g1" "$o o0"; do set -- $pair; ip -n "$1" link set "$2" up; done
ip -n "$c" route add default via 198.18.1.1
ip -n "$o" route add default via 198.18.2.1
ip netns exec "$g" sysctl -qw net.ipv4.ip_forward=1

ip netns exec "$o" python3 bench/transparent/origin.py > "$work/origin.out" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/origin.out" 2>/dev/null && break; sleep 0.1; done

printf '127.0.0.1 localhost\n198.18.2.2 origin.test\n' > "$work/hosts"
cat > "$work/policy.yaml" <<YAML
listen: ["redirect://0.0.0.0:3129", "198.18.1.1:3128"]
allow: ["origin.test:80"]
address_guard: { allow_networks: [198.18.0.0/15] }
YAML
ip netns exec "$g" unshare -m --propagation private sh -c \
  'mount --bind "$0" /etc/hosts && exec "$1" -c "$2" --log-level warn' \
  "$work/hosts" "$(realpath "$binary")" "$work/policy.yaml" > "$work/egress.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  ip netns exec "$c" curl -s -o /dev/null -x http://198.18.1.1:3128 http://origin.test/ && break
  sleep 0.1
done

# One measurement: $connections requests, each on its own connection, $parallel at once.
measure() {
  local start end
  start=$(date +%s.%N)
  ip netns exec "$c" curl -s --no-progress-meter -o /dev/null --max-time 120 --parallel --parallel-max "$parallel" \
    -H 'Connection: close' "$@" "http://origin.test/[1-$connections]"
  end=$(date +%s.%N)
  echo "$connections / ($end - $start)" | bc -l
}
direct() { measure --noproxy '*' --resolve origin.test:80:198.18.2.2; }
intercepted() { measure --noproxy '*' --resolve origin.test:80:198.18.2.2; }
explicit() { measure -x http://198.18.1.1:3128; }

declare -A rates
run_all() {
  # Direct: no interception rule loaded yet (or flushed), so the gateway only forwards.
  rates[direct]+="$(direct) "
  ip netns exec "$g" "$binary" transparent-rules --gateway g0 --port 3129 --ports 80 \
    | ip netns exec "$g" nft -f -
  rates[intercepted]+="$(intercepted) "
  rates[explicit]+="$(explicit) "
  ip netns exec "$g" nft delete table inet egress
}
for _ in $(seq "$runs"); do run_all; done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "new connections/s (median of $runs runs of $connections, $parallel at once):"
for k in direct intercepted explicit; do
  printf '  %-12s %8.0f   (runs: %s)\n' "$k" "$(echo "${rates[$k]}" | median)" "${rates[$k]}"
done
