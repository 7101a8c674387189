#!/usr/bin/env bash
# The benchmark, not a test: a client namespace reaches an origin namespace through a gateway
# namespace, and each way of getting there is measured in the same run, interleaved:
#   direct       plain forwarding, no proxy (for scale)
#   intercepted  nftables REDIRECT to egress's redirect:// listener, named by the Host header
#   explicit     curl -x to the same egress on the same gateway
#   squid-icpt   nftables REDIRECT to Squid's `http_port ... intercept` (the same rules, Squid's port)
#   squid        curl -x to that Squid
# Two figures each: new connections per second (one plain-HTTP request per connection, with
# `Connection: close`) and bulk throughput (one large response on one connection). Then the same
# over TLS to port 443 (a test CA made here): direct, egress intercepting (named by SNI), egress
# explicit (CONNECT), Squid intercepting with `ssl_bump peek` then `splice` by SNI, Squid explicit.
# Squid's ssl_bump needs Debian's squid-openssl build, which conflicts with the squid package the
# suite installs: its binary is unpacked here from `apt-get download` (cached in
# target/bench-squid-openssl) and runs beside the installed one's data files.
#
# Needs root (it creates network namespaces, removed at exit), curl, python3, nft, squid, bc,
# openssl.
# Usage: bench/transparent.sh [--binary PATH] [--connections N] [--parallel P] [--runs R] [--bulk-mb M]
# KEEP_WORK=1 keeps the work directory (configurations, logs, certificates) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=target/release/egress-proxy
connections=2000
parallel=8
runs=3
bulk_mb=256
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --bulk-mb) bulk_mb=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || cargo build --release -p egress-proxy
# Bounded: at most 100,000 connections per measurement.
[ "$connections" -le 100000 ] || { echo "--connections at most 100000" >&2; exit 2; }
[ "$bulk_mb" -le 4096 ] || { echo "--bulk-mb at most 4096" >&2; exit 2; }

# Squid with TLS support, unpacked once (the package conflicts with the installed squid).
squid_tls=target/bench-squid-openssl/usr/sbin/squid
if [ ! -x "$squid_tls" ]; then
  mkdir -p target/bench-squid-openssl
  (cd target/bench-squid-openssl && apt-get download squid-openssl >/dev/null 2>&1 &&
    dpkg -x squid-openssl_*.deb . && rm squid-openssl_*.deb)
fi
squid_tls=$(realpath "$squid_tls")

id="egb$$"
c="${id}c" g="${id}g" o="${id}o"
work=$(mktemp -d)
chmod 0777 "$work" # Squid drops root for its own user, which writes its log here
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$c" "$g" "$o"; do ip netns del "$n" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
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

# A test CA, the origin's certificate for origin.test, and the one Squid's TLS port must have.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=origin.test \
  -keyout "$work/origin.key" -out "$work/origin.csr" 2>/dev/null
printf 'subjectAltName=DNS:origin.test\n' > "$work/san"
openssl x509 -req -in "$work/origin.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -extfile "$work/san" -out "$work/origin.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=squid \
  -keyout "$work/squid.pem" -out "$work/squid.crt" 2>/dev/null
cat "$work/squid.crt" >> "$work/squid.pem"
chmod 0644 "$work"/*.pem "$work"/*.key

ip netns exec "$o" python3 bench/transparent/origin.py "$bulk_mb" "$work/origin.pem" "$work/origin.key" > "$work/origin.out" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/origin.out" 2>/dev/null && break; sleep 0.1; done

printf '127.0.0.1 localhost\n198.18.2.2 origin.test\n' > "$work/hosts"
cat > "$work/policy.yaml" <<YAML
listen: ["redirect://0.0.0.0:3129", "198.18.1.1:3128"]
allow: ["origin.test:80,443"]
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

# Squid on the same gateway: an explicit port and an intercepting one, same allowlist, no cache,
# no access log (egress logs at warn).
cat > "$work/squid.conf" <<CONF
http_port 198.18.1.1:3138
http_port 0.0.0.0:3139 intercept
acl origin dstdomain origin.test
http_access allow origin
http_access deny all
hosts_file $work/hosts
cache deny all
cache_mem 8 MB
access_log none
cache_log $work/squid-cache.log
pid_filename $work/squid.pid
coredump_dir $work
shutdown_lifetime 0 seconds
max_filedescriptors 20000
CONF
ip netns exec "$g" squid -N -f "$work/squid.conf" > "$work/squid.out" 2>&1 &
pids+=($!)
# Squid for intercepted TLS: peek at the ClientHello, splice when its SNI is allowed, end the
# rest (as egress decides by SNI without decrypting).
cat > "$work/squid-tls.conf" <<CONF
http_port 127.0.0.1:3141
https_port 0.0.0.0:3140 intercept ssl-bump tls-cert=$work/squid.pem generate-host-certificates=off name=tlsicpt
acl tlsicpt myportname tlsicpt
acl step1 at_step SslBump1
acl origin_sni ssl::server_name origin.test
http_access allow tlsicpt
http_access deny all
ssl_bump peek step1
ssl_bump splice origin_sni
ssl_bump terminate all
hosts_file $work/hosts
cache deny all
cache_mem 8 MB
access_log none
cache_log $work/squid-tls-cache.log
pid_filename $work/squid-tls.pid
coredump_dir $work
shutdown_lifetime 0 seconds
max_filedescriptors 20000
CONF
ip netns exec "$g" "$squid_tls" -N -f "$work/squid-tls.conf" > "$work/squid-tls.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  ip netns exec "$g" ss -ltnH 'sport = :3140' | grep -q . && break
  sleep 0.1
done
for _ in $(seq 100); do
  ip netns exec "$c" curl -s -o /dev/null -x http://198.18.1.1:3138 http://origin.test/ && break
  sleep 0.1
done

# One measurement: $connections requests, each on its own connection, $parallel at once.
measure() {
  local start end ok
  start=$(date +%s.%N)
  ip netns exec "$c" curl -s --no-progress-meter -o /dev/null --max-time 120 --parallel --parallel-max "$parallel" \
    -w '%{http_code}\n' -H 'Connection: close' "$@" "$scheme://origin.test/[1-$connections]" > "$work/codes"
  end=$(date +%s.%N)
  # Every request must have been answered by the origin: a refusal is fast and would count.
  ok=$(grep -c '^200$' "$work/codes" || true)
  [ "$ok" -eq "$connections" ] || { echo "only $ok of $connections answered 200 ($*)" >&2; exit 1; }
  echo "$connections / ($end - $start)" | bc -l
}
# One bulk transfer: $bulk_mb MiB in one response, in MiB/s.
bulk() {
  local out
  out=$(ip netns exec "$c" curl -sS -o /dev/null --max-time 120 \
    -w '%{http_code} %{size_download} %{speed_download}' "$@" "$scheme://origin.test/bulk")
  [ "${out% *}" = "200 $((bulk_mb << 20))" ] || { echo "bulk transfer failed: $out ($*)" >&2; exit 1; }
  echo "${out##* } / 1048576" | bc -l
}
to_origin=(--noproxy '*' --resolve origin.test:80:198.18.2.2 --resolve origin.test:443:198.18.2.2)
# The interception rules, diverting port PORTS (default 80) to PORT (egress's redirect://
# listener or Squid's).
divert_to() {
  ip netns exec "$g" "$binary" transparent-rules --gateway g0 --port "$1" --ports "${2:-80}" \
    | ip netns exec "$g" nft -f -
}
undivert() { ip netns exec "$g" nft delete table inet egress; }

declare -A rates speeds
contenders=(direct intercepted explicit squid-icpt squid
  tls-direct tls-intercepted tls-explicit tls-squid-icpt tls-squid)
# One contender, measured: its rule set loaded first (none for direct and the explicit ones).
measure_one() {
  scheme=http
  case "$1" in tls-*) scheme=https ;; esac
  case "$1" in
    tls-direct) set -- tls-direct "${to_origin[@]}" --cacert "$work/ca.pem" ;;
    tls-intercepted) divert_to 3129 443; set -- tls-intercepted "${to_origin[@]}" --cacert "$work/ca.pem" ;;
    tls-explicit) set -- tls-explicit -x http://198.18.1.1:3128 --cacert "$work/ca.pem" ;;
    tls-squid-icpt) divert_to 3140 443; set -- tls-squid-icpt "${to_origin[@]}" --cacert "$work/ca.pem" ;;
    tls-squid) set -- tls-squid -x http://198.18.1.1:3138 --cacert "$work/ca.pem" ;;
    direct) set -- direct "${to_origin[@]}" ;;
    intercepted) divert_to 3129; set -- intercepted "${to_origin[@]}" ;;
    explicit) set -- explicit -x http://198.18.1.1:3128 ;;
    squid-icpt) divert_to 3139; set -- squid-icpt "${to_origin[@]}" ;;
    squid) set -- squid -x http://198.18.1.1:3138 ;;
  esac
  local name=$1; shift
  rates[$name]+="$(measure "$@") "
  speeds[$name]+="$(bulk "$@") "
  case "$name" in *intercepted | *squid-icpt) undivert ;; esac
}
# A rotated order each run: no contender always follows the same one or runs first.
for run in $(seq 0 $((runs - 1))); do
  for k in $(seq 0 $((${#contenders[@]} - 1))); do
    measure_one "${contenders[$(((k + run) % ${#contenders[@]}))]}"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'; }
# Median, the range of the runs, and the ratio of medians to Squid's intercept (the peer).
table() {
  local -n values=$1
  for k in "${contenders[@]}"; do
    local peer=squid-icpt
    case "$k" in tls-*) peer=tls-squid-icpt ;; esac
    local m p; m=$(echo "${values[$k]}" | median); p=$(echo "${values[$peer]}" | median)
    printf '  %-16s %8.0f   range %-12s %5.2fx %s\n' "$k" "$m" \
      "$(echo "${values[$k]}" | range)" "$(echo "$m / $p" | bc -l)" "$peer"
  done
}
echo "new connections/s (median of $runs runs of $connections, $parallel at once):"
table rates
echo "bulk MiB/s (median of $runs transfers of $bulk_mb MiB):"
table speeds
