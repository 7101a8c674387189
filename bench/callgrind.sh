#!/usr/bin/env bash
# Instructions per operation, counted by callgrind: stable whatever else the machine is doing,
# so a ratio between two builds (or with and without a feature) can be trusted where wall-clock
# figures on a shared VM cannot. Not a test.
#
#   bench/callgrind.sh [--egress BIN]... [--subscriber]
#
# For each egress-proxy binary (default: target/release/egress-proxy), egress-bench drives it
# under callgrind three times — T1 and T2 tunnels with a small bulk transfer, and T1 tunnels with
# a large one — and the differences give instructions per new tunnel and per MiB relayed, with
# start-up and fixed costs cancelled out. Only the proxy process is counted.
#
# --subscriber: egress embedded in egress-bench, without and with one event-stream subscriber;
# the whole process is counted (client included, the same in both), so the difference per
# tunnel is what the subscriber costs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind
}
binaries=(); subscriber=0
while [ $# -gt 0 ]; do
  case "$1" in
    --egress) binaries+=("$2"); shift 2 ;;
    --subscriber) subscriber=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/egress-proxy)
cargo build --release -q -p egress-bench
bench=target/release/egress-bench
T1=500; T2=1500; SMALL=$((1 << 20)); LARGE=$((65 << 20))
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# Total instructions (Ir) of the callgrind output files matching $1.
instructions() { cat "$@" | awk '/^summary:/ { s += $2 } END { print s }'; }

# Runs the plain egress contender only of egress-bench (--egress-only also starts the
# "observed" one; its files are told apart by the wrapper's counter).
run_proxy() { # binary tunnels bytes tag
  local wrapper="$work/egress-$4"
  cat >"$wrapper" <<WRAP
#!/bin/sh
n=\$(ls "$work" | grep -c "^cg-$4-" || true)
exec valgrind --tool=callgrind --log-file=/dev/null --callgrind-out-file="$work/cg-$4-\$n.out" "$(realpath "$1")" "\$@"
WRAP
  chmod +x "$wrapper"
  "$bench" --egress "$wrapper" --egress-only --runs 1 --workers 1 --tunnels "$2" --bytes "$3" >/dev/null 2>"$work/log-$4"
  # cg-TAG-0 is plain egress (started first), cg-TAG-1 egress with metrics, audit log and the
  # admin listener (whose event ring subscribes to every outcome).
  echo "$(instructions "$work/cg-$4-0.out") $(instructions "$work/cg-$4-1.out")"
}

printf '| build | instructions per new tunnel | per MiB relayed | per new tunnel with metrics, audit and admin |\n|---|---:|---:|---:|\n'
for binary in "${binaries[@]}"; do
  tag=$(echo "$binary" | md5sum | cut -c1-8)
  read -r a a_obs < <(run_proxy "$binary" $T1 $SMALL "$tag-a")
  read -r b b_obs < <(run_proxy "$binary" $T2 $SMALL "$tag-b")
  read -r c _ < <(run_proxy "$binary" $T1 $LARGE "$tag-c")
  per_tunnel=$(( (b - a) / (T2 - T1) ))
  per_mib=$(( (c - a) / ((LARGE - SMALL) >> 20) ))
  observed=$(( (b_obs - a_obs) / (T2 - T1) ))
  printf '| %s | %s | %s | %s |\n' "$binary" "$per_tunnel" "$per_mib" "$observed"
done

if [ "$subscriber" = 1 ]; then
  printf '\n| embedded egress | instructions per new tunnel, proxy and client (median, range of 3) |\n|---|---:|\n'
  for case in "0 count" "1 count" "1 json"; do
    set -- $case
    # Threads park and wake with timing, so counts vary a little: three repetitions, median.
    results=()
    for rep in 1 2 3; do
      for tunnels in $T1 $T2; do
        valgrind --tool=callgrind --log-file=/dev/null --callgrind-out-file="$work/sub-$1-$2-$rep-$tunnels.out" \
          "$bench" --embedded-only "$1" --subscriber-work "$2" --runs 1 --workers 1 \
          --tunnels "$tunnels" --bytes $SMALL >/dev/null 2>&1
      done
      a=$(instructions "$work/sub-$1-$2-$rep-$T1.out"); b=$(instructions "$work/sub-$1-$2-$rep-$T2.out")
      results+=($(( (b - a) / (T2 - T1) )))
    done
    sorted=($(printf '%s\n' "${results[@]}" | sort -n))
    label="no subscriber"; [ "$1" = 0 ] || label="one subscriber ($2)"
    printf '| %s | %s (%s–%s) |\n' "$label" "${sorted[1]}" "${sorted[0]}" "${sorted[2]}"
  done
fi
