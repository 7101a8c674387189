#!/usr/bin/env bash
# egress-run's capture, measured (not a test): start-up with capture (the default) against
# `--no-capture` (the path without it, as before) and bare bubblewrap, with hyperfine; then,
# inside one sandbox, new connections per second and bulk throughput through the proxy port (a
# client honouring HTTPS_PROXY: CONNECT tunnels) against captured connections (a client
# ignoring it), and directly from the host for reference. The origin (bench/capture/origin.py)
# runs in a network namespace of the script's own behind a veth pair: captured connections need
# a destination off loopback. Needs root (the namespace) and hyperfine. ROUNDS (default 3)
# interleaved rounds; RUNS (default 100) start-ups a round; CONNECTIONS (default 2000) and
# BULK_MIB (default 1024) per measurement. EGRESS_RUN: the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-3}"
runs="${RUNS:-100}"
connections="${CONNECTIONS:-2000}"
bulk="${BULK_MIB:-1024}"
exe="${EGRESS_RUN:-}"
if [ -z "$exe" ]; then
  cargo build --release -q -p egress-run
  exe="$PWD/target/release/egress-run"
fi
work=$(mktemp -d)
ns="egb$$"
cleanup() {
  [ -n "${origin:-}" ] && kill "$origin" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip link del "v$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cp bench/capture/origin.py bench/capture/client.py "$work/"
chmod 755 "$work"
# The origin: 10.214.0.2:8000 in a namespace of its own, reached over a veth from the host.
ip netns add "$ns"
ip link add "v$ns" type veth peer name eth0 netns "$ns"
ip addr add 10.214.0.1/30 dev "v$ns"
ip link set "v$ns" up
ip -n "$ns" addr add 10.214.0.2/30 dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
ip netns exec "$ns" python3 "$work/origin.py" 10.214.0.2 8000 &
origin=$!
for _ in $(seq 100); do
  python3 -c 'import socket; socket.create_connection(("10.214.0.2", 8000), 1)' 2>/dev/null && break
  sleep 0.05
done
cd "$work"
echo "## start-up (hyperfine, $rounds rounds of $runs runs, median of the rounds' medians)"
for round in $(seq "$rounds"); do
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/start-$round.json" \
    "bwrap --ro-bind / / --unshare-net true" \
    "$exe -q --no-capture -- true" \
    "$exe -q -- true" >/dev/null
done
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
names = ["bare bwrap", "egress-run --no-capture", "egress-run (capture)"]
per = {n: [] for n in names}
for r in range(1, rounds + 1):
    for n, res in zip(names, json.load(open(f"{work}/start-{r}.json"))["results"]):
        per[n].append(res["median"] * 1000)
base = statistics.median(per["egress-run --no-capture"])
print("| | median ms | vs --no-capture | rounds' medians, ms |\n|---|---:|---:|---|")
for n, v in per.items():
    m = statistics.median(v)
    print(f"| {n} | {m:.1f} | {m / base:.2f} | {', '.join(f'{x:.1f}' for x in v)} |")
PY
echo
echo "## connections ($connections new connections in sequence, then one of $bulk MiB; median of $rounds rounds)"
allow="--allow 10.214.0.2:8000"
for round in $(seq "$rounds"); do
  echo "direct $(python3 client.py direct 10.214.0.2 8000 "$connections" "$bulk")" >>"$work/rates"
  # shellcheck disable=SC2086
  "$exe" -q $allow -- python3 client.py proxy 10.214.0.2 8000 "$connections" "$bulk" | sed 's/^/proxy /' >>"$work/rates"
  # shellcheck disable=SC2086
  "$exe" -q $allow -- python3 client.py captured 10.214.0.2 8000 "$connections" "$bulk" | sed 's/^/captured /' >>"$work/rates"
done
python3 - "$work/rates" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rate, mib = line.split()
    rows.setdefault(name, ([], []))
    rows[name][0].append(float(rate)); rows[name][1].append(float(mib))
proxy = [statistics.median(v) for v in rows["proxy"]]
print("| | new connections/s | vs proxy variables | bulk MiB/s | vs proxy variables |\n|---|---:|---:|---:|---:|")
label = {"direct": "direct, from the host", "proxy": "proxy variables (CONNECT to 127.0.0.1:3128)", "captured": "captured"}
for name in ["direct", "proxy", "captured"]:
    rate, mib = (statistics.median(v) for v in rows[name])
    print(f"| {label[name]} | {rate:.0f} | {rate / proxy[0]:.2f} | {mib:.0f} | {mib / proxy[1]:.2f} |")
PY
