#!/usr/bin/env bash
# A million rules reloaded under load: egress-proxy runs the policy of bench/bigpolicy.sh (plus
# one entry for a loopback origin), 64 clients open CONNECT tunnels through it and fetch a page,
# and the policy is reloaded (SIGHUP) several times meanwhile. Every request must be answered
# 200: a tunnel dropped or an allowed request refused during a reload fails the run. Not a test.
#
#   bench/bigreload.sh [--requests N] [--clients C] [--reloads R] [--egress BIN]
#
# Prints the requests made, the failures (must be 0), the reloads applied, how long each took
# (SIGHUP to its "policy reloaded" line) and the proxy's peak RSS. Loopback only; bounded by
# --requests and a 300 s deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=20000; clients=64; reloads=5; binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) requests="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --reloads) reloads="$2"; shift 2 ;;
    --egress) binary="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$requests" -le 200000 ] || { echo "--requests at most 200000" >&2; exit 2; }
if [ -z "$binary" ]; then
  cargo build --release -q -p egress-proxy --bin egress-proxy
  binary=target/release/egress-proxy
fi
work=$(mktemp -d)
. bench/common.sh
origin_port=$(port); proxy_port=$(port)

# The origin: a threaded HTTP server answering every GET with a short page.
python3 - "$origin_port" > "$work/origin.out" 2>&1 <<'PY' &
import http.server, sys
class Page(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Page)
server.request_queue_size = 1024
print("ready", flush=True)
server.serve_forever()
PY
pids+=($!)

# The million-rule policy, then the origin's entry and the guard's exception for it.
bench/bigpolicy.sh --runs 1 --egress "$binary" --keep "$work" > "$work/generate.out"
policy="$work/bigpolicy.yaml"
python3 - "$policy" "$origin_port" <<'PY'
import sys
path, port = sys.argv[1], sys.argv[2]
text = open(path).read()
# First in the allow list, so the origin is allowed whatever the rest says.
text = text.replace("allow:\n", f"allow:\n  - \"127.0.0.1:{port}\"\n", 1)
text += "address_guard: {allow_networks: [127.0.0.1/32]}\n"
open(path, "w").write(text)
PY
for _ in $(seq 100); do grep -q ready "$work/origin.out" && break; sleep 0.1; done

"$binary" --config "$policy" --listen "127.0.0.1:$proxy_port" --log-format json --log-level info \
  > /dev/null 2> "$work/egress.log" &
proxy=$!
pids+=($proxy)
for _ in $(seq 300); do grep -q '"listening"' "$work/egress.log" && break; sleep 0.1; done
grep -q '"listening"' "$work/egress.log" || { echo "egress did not start" >&2; exit 1; }

# The load: $requests tunnels from $clients clients at once, each a CONNECT and a GET in it.
started=$(date +%s.%N)
seq "$requests" | timeout 300 xargs -P "$clients" -I{} curl -s -o /dev/null --max-time 30 \
  -w '%{http_code}\n' -p -x "http://127.0.0.1:$proxy_port" "http://127.0.0.1:$origin_port/{}" \
  > "$work/codes" &
load=$!

# Reloads while the load runs, each waited for (its log line) before the next.
durations=()
for i in $(seq "$reloads"); do
  before=$(grep -c '"policy reloaded"' "$work/egress.log" || true)
  sent=$(date +%s.%N)
  kill -HUP "$proxy"
  for _ in $(seq 600); do
    [ "$(grep -c '"policy reloaded"' "$work/egress.log" || true)" -gt "$before" ] && break
    sleep 0.05
  done
  [ "$(grep -c '"policy reloaded"' "$work/egress.log" || true)" -gt "$before" ] ||
    { echo "reload $i was not applied within 30 s" >&2; exit 1; }
  durations+=("$(echo "$(date +%s.%N) - $sent" | bc -l)")
  kill -0 "$load" 2>/dev/null || { echo "the load ended before reload $i: raise --requests" >&2; exit 1; }
done
wait "$load" || true
ended=$(date +%s.%N)

made=$(wc -l < "$work/codes")
ok=$(grep -c '^200$' "$work/codes" || true)
peak=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$proxy/status")
printf 'requests %d of %d in %.1f s, answered 200: %d, failures: %d\n' "$made" "$requests" \
  "$(echo "$ended - $started" | bc -l)" "$ok" "$((requests - ok))"
printf 'reloads applied under load: %d, each (SIGHUP to its log line, s): %s\n' "$reloads" \
  "$(printf '%.2f ' "${durations[@]}")"
echo "egress peak RSS: ${peak} MB"
[ "$ok" -eq "$requests" ] || { sort "$work/codes" | uniq -c >&2; exit 1; }
