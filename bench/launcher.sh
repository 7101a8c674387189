#!/usr/bin/env bash
# The launcher's start-up cost, not a test: `egress-run -- true` against bare bubblewrap and
# against srt (@anthropic-ai/sandbox-runtime, from npm, when npm is there), in one hyperfine
# run. Prints medians and ratios to bare bwrap. Installs bubblewrap and hyperfine when missing
# (and srt's socat and ripgrep).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-100}"
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
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
commands=(
  "bwrap --ro-bind / / --unshare-net true"
  "$PWD/target/release/egress-run -q -- true"
)
names=(bwrap egress-run)
if command -v npm >/dev/null 2>&1 && (cd "$work" && npm install -s --no-audit --no-fund @anthropic-ai/sandbox-runtime >/dev/null 2>&1); then
  commands+=("$work/node_modules/.bin/srt true")
  names+=(srt)
else
  echo "srt (npm @anthropic-ai/sandbox-runtime) did not install: left out" >&2
fi
# srt writes into the working directory; every contender runs in a scratch one.
(cd "$work" && hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/result.json" "${commands[@]}" >/dev/null)
python3 - "$work/result.json" "${names[@]}" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
names = sys.argv[2:]
base = results[0]["median"]
print(f"| | median ms | vs bare bwrap |\n|---|---:|---:|")
for name, r in zip(names, results):
    print(f"| {name} | {r['median'] * 1000:.1f} | {r['median'] / base:.2f} |")
PY
