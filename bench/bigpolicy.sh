#!/usr/bin/env bash
# A million rules: how long `egress-proxy check FILE` takes to load and compile a policy of
# 1,000,000 allow names (exact, `.domain` and `*.domain` mixed, some with ports), 10,000 deny
# names and 10,000 allow CIDRs, and its peak memory. Not a test.
#
#   bench/bigpolicy.sh [--runs N] [--egress BIN] [--keep DIR] [--profile]
#
# Prints the median wall time, CPU time (user + system) and peak RSS of N runs (default 5) with
# their range, from /usr/bin/time -v. --egress measures another build (default:
# target/release/egress-proxy, built here). --keep writes the policy to DIR and leaves it there
# (config/benches/matcher.rs builds the same shape of policy itself). --profile also records one
# run with perf (callgrind when perf is missing) and prints where the time goes.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5; binary=""; keep=""; profile=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --egress) binary="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --profile) profile=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time
}
if [ -z "$binary" ]; then
  cargo build --release -q -p egress-proxy --bin egress-proxy
  binary=target/release/egress-proxy
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
dir="${keep:-$work}"; mkdir -p "$dir"
policy="$dir/bigpolicy.yaml"

# Seeded, so every run and every build reads the same file. Names are random labels under a
# few thousand registrable domains, so parents are shared as in real lists.
python3 - "$policy" <<'PY'
import random, sys
rng = random.Random(20)
letters = "abcdefghijklmnopqrstuvwxyz0123456789"
def label(lo=3, hi=12):
    return rng.choice(letters[:26]) + "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi) - 1))
tlds = ["com", "net", "org", "io", "dev", "example", "co.uk", "de"]
bases = [f"{label()}.{rng.choice(tlds)}" for _ in range(5000)]
def name(depth):
    return ".".join([label() for _ in range(depth)] + [rng.choice(bases)])
ports = ["", "", "", "", "", "", "", ":443", ":80,443", ":8000-8999", ":*"]
with open(sys.argv[1], "w") as out:
    out.write("listen: 127.0.0.1:3128\nmode: enforce\nallow:\n")
    for i in range(1_000_000):
        kind = i % 3
        prefix = ("", ".", "*.")[kind]
        out.write(f"  - \"{prefix}{name(rng.randint(1, 3))}{rng.choice(ports)}\"\n")
    for i in range(10_000):
        if i % 10 == 9:
            out.write(f"  - \"fd{rng.randrange(256):02x}:{rng.randrange(65536):x}::/{rng.choice([32, 48, 64])}\"\n")
        else:
            a, b, c = rng.randrange(1, 224), rng.randrange(256), rng.randrange(256)
            out.write(f"  - {a}.{b}.{c}.0/{rng.choice([16, 20, 24, 28, 32])}\n")
    out.write("deny:\n")
    for i in range(10_000):
        out.write(f"  - \"{('', '.', '*.')[i % 3]}{name(rng.randint(1, 2))}\"\n")
PY
printf 'policy: %s (%s lines, %s MB)\n' "$policy" "$(wc -l <"$policy")" "$(( $(stat -c %s "$policy") / 1000000 ))"
"$binary" check "$policy" | head -4

seconds=(); cpu=(); rss=()
for _ in $(seq "$runs"); do
  /usr/bin/time -v "$binary" check "$policy" >/dev/null 2>"$work/time"
  seconds+=("$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$work/time")")
  # CPU time (user + system) as well: on a shared machine it moves far less than wall time.
  cpu+=("$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$work/time")")
  rss+=("$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$work/time")")
done
# median (range) of the arguments
summarise() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s (%s-%s)", m, v[1], v[NR] }'; }
echo "egress-proxy check, $runs runs: wall $(summarise "${seconds[@]}") s, cpu $(summarise "${cpu[@]}") s, peak RSS $(summarise "${rss[@]}") MB"

[ "$profile" -eq 1 ] || exit 0
if command -v perf >/dev/null; then
  perf record -q -g -o "$work/perf.data" "$binary" check "$policy" >/dev/null 2>&1
  perf report -q -i "$work/perf.data" --no-children --percent-limit 2 --stdio -g none 2>/dev/null | head -40
else
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$binary" check "$policy" >/dev/null 2>&1
  callgrind_annotate "$work/cg.out" 2>/dev/null | head -40
fi
