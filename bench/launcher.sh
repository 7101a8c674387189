#!/usr/bin/env bash
# The launcher's start-up cost, not a test: `egress-run -- true` against bare bubblewrap, against
# bubblewrap with the mounts egress-run asks for (its floor: fresh /dev and /proc, private /tmp
# and /run, the working directory), and against srt (@anthropic-ai/sandbox-runtime, from npm,
# when npm is there). ROUNDS hyperfine runs (default 3) of RUNS each (default 100), interleaved
# so a noisy machine hits every contender alike; prints the median of the rounds' medians and
# the ratio to bare bwrap. Also egress-run linked statically (STATIC=0 leaves it out). Installs
# bubblewrap and hyperfine when missing (and srt's socat and ripgrep).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-100}"
rounds="${ROUNDS:-3}"
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for need in bwrap:bubblewrap hyperfine:hyperfine socat:socat rg:ripgrep; do
  command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cargo build --release -q -p egress-run
# The same binary linked statically (glibc's static-pie): no shared objects to load and bind at
# each of its two starts. Not the default build, so reported as a row of its own; STATIC=0
# leaves it out.
host=$(rustc -vV | sed -n 's/^host: //p')
static_exe=""
if [ "${STATIC:-1}" = 1 ] && [[ "$host" == *-linux-gnu ]]; then
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -q -p egress-run \
    --target "$host" --target-dir target/static 2>/dev/null
  static_exe="$PWD/target/static/$host/release/egress-run"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mounts="bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-net --unshare-cgroup-try --die-with-parent --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /run --bind $work $work --chdir $work --as-pid-1 true"
commands=(
  "bwrap --ro-bind / / --unshare-net true"
  "$mounts"
  "$PWD/target/release/egress-run -q -- true"
)
names=(bwrap "bwrap + egress-run's mounts" egress-run)
if [ -n "$static_exe" ]; then
  commands+=("$static_exe -q -- true")
  names+=("egress-run, static build")
fi
srt=""
if command -v npm >/dev/null 2>&1 && (cd "$work" && npm install -s --no-audit --no-fund @anthropic-ai/sandbox-runtime >/dev/null 2>&1); then
  srt="$work/node_modules/.bin/srt true"
else
  echo "srt (npm @anthropic-ai/sandbox-runtime) did not install: left out" >&2
fi
# srt writes into the working directory; every contender runs in a scratch one.
for round in $(seq "$rounds"); do
  (cd "$work" && hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/round-$round.json" "${commands[@]}" >/dev/null)
  if [ -n "$srt" ]; then
    # srt takes hundreds of milliseconds a start: fewer runs of it.
    (cd "$work" && hyperfine -N --warmup 2 --runs 20 --export-json "$work/srt-$round.json" "$srt" >/dev/null)
  fi
done
python3 - "$work" "$rounds" "${names[@]}" <<'PY'
import json, statistics, sys, os
work, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
per = {name: [] for name in names + ["srt"]}
for r in range(1, rounds + 1):
    for name, res in zip(names, json.load(open(f"{work}/round-{r}.json"))["results"]):
        per[name].append(res["median"])
    path = f"{work}/srt-{r}.json"
    if os.path.exists(path):
        per["srt"].append(json.load(open(path))["results"][0]["median"])
base = statistics.median(per["bwrap"])
print(f"| | median ms ({rounds} rounds) | vs bare bwrap | rounds' medians, ms |\n|---|---:|---:|---|")
for name, values in per.items():
    if values:
        m = statistics.median(values)
        each = ", ".join(f"{v * 1000:.1f}" for v in values)
        print(f"| {name} | {m * 1000:.1f} | {m / base:.2f} | {each} |")
PY
