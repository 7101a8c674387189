#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a fixed time each, starting from the committed
# seeds, and prints executions and coverage per target. A crash stops that target and leaves
# the input in fuzz/artifacts/<target>/; the script then exits non-zero.
#
#   fuzz/run.sh                       # every target, 10 minutes each, all at once
#   fuzz/run.sh --seconds 60 host     # one target, one minute
#   fuzz/run.sh --parallel 2          # at most two targets at a time
set -euo pipefail
cd "$(dirname "$0")"

seconds=600
parallel=7
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --parallel) parallel="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(http_head http_framing socks5_handshake client_hello client_hello_records host policy_load)
fi

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz build -O

mkdir -p logs
run_one() {
  local target="$1"
  mkdir -p "corpus/$target"
  # The working corpus (ignored by git) grows; the seeds stay as committed.
  cargo +nightly fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    >"logs/$target.log" 2>&1
}

status=0
pids=()
for target in "${targets[@]}"; do
  run_one "$target" & pids+=("$!:$target")
  while [[ $(jobs -rp | wc -l) -ge $parallel ]]; do wait -n || true; done
done
for entry in "${pids[@]}"; do
  wait "${entry%%:*}" || { echo "CRASH or error in ${entry#*:}: see fuzz/logs/${entry#*:}.log and fuzz/artifacts/"; status=1; }
done

printf '%-18s %12s %8s %8s %8s\n' target executions exec/s cov corpus
for target in "${targets[@]}"; do
  log="logs/$target.log"
  execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | awk '{print $2}' | tail -1)
  rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  printf '%-18s %12s %8s %8s %8s\n' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${corp:-?}"
done
exit $status
