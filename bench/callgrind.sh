#!/usr/bin/env bash
# Instructions per operation, counted by callgrind: stable whatever else the machine is doing,
# so a ratio between two builds (or with and without a feature) can be trusted where wall-clock
# figures on a shared VM cannot. Not a test.
#
#   bench/callgrind.sh [--egress BIN]... [--subscriber]
#   bench/callgrind.sh --squid [--egress BIN]
#   bench/callgrind.sh --profile SCENARIO [--egress BIN]
#
# For each egress-proxy binary (default: target/release/egress-proxy), egress-bench drives it
# under callgrind four times — T1 and T2 tunnels with a small bulk transfer, and a large and a
# small bulk transfer alone — and the differences give instructions per new tunnel and per MiB relayed, with
# start-up and fixed costs cancelled out. Only the proxy process is counted.
#
# --subscriber: egress embedded in egress-bench, without and with one event-stream subscriber;
# the whole process is counted (client included, the same in both), so the difference per
# tunnel is what the subscriber costs.
#
# --squid (instead of the table above): egress and Squid (`squid -N`: one process, no kids) on
# the same workloads, each under callgrind, two counts of each operation — per tunnel set-up
# (one client, a one-byte echo), per forwarded plain-HTTP request (one keep-alive client), per
# denial (CONNECT to a name on no allow list, 403), per MiB relayed (one tunnel) — and the
# ratio egress/Squid. Only the proxy process is counted.
#
# --profile SCENARIO (tunnels-one, forward, deny or bulk): where egress's instructions go in one
# scenario — callgrind_annotate's inclusive and self counts of the proxy process (one worker),
# driven as by --squid with a count large enough that start-up is a small part. The raw file is
# kept as target/callgrind-SCENARIO.out for callgrind_annotate or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || {
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind
}
binaries=(); subscriber=0; squid=0; profile=""
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --egress) binaries+=("$2"); shift 2 ;;
    --subscriber) subscriber=1; shift ;;
    --squid) squid=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/egress-proxy)
cargo build --release -q -p egress-bench
bench=target/release/egress-bench
T1=500; T2=1500; SMALL=$((1 << 20)); LARGE=$((65 << 20))
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# Squid runs as its own user (below), which must write its callgrind file here.
chmod 777 "$work"

# Total instructions (Ir) of the callgrind output files matching $1.
instructions() { cat "$@" | awk '/^summary:/ { s += $2 } END { print s }'; }

# Runs the plain egress contender only of egress-bench (--egress-only also starts the
# "observed" one; its files are told apart by the wrapper's counter).
run_proxy() { # binary tunnels bytes tag scenarios
  local wrapper="$work/egress-$4"
  cat >"$wrapper" <<WRAP
#!/bin/sh
n=\$(ls "$work" | grep -c "^cg-$4-" || true)
exec valgrind --tool=callgrind --log-file=/dev/null --callgrind-out-file="$work/cg-$4-\$n.out" "$(realpath "$1")" "\$@"
WRAP
  chmod +x "$wrapper"
  "$bench" --egress "$wrapper" --egress-only --runs 1 --scenarios "$5" --tunnels "$2" --bytes "$3" >/dev/null 2>"$work/log-$4"
  # cg-TAG-0 is plain egress (started first), cg-TAG-1 egress with metrics, audit log and the
  # admin listener (whose event ring subscribes to every outcome).
  echo "$(instructions "$work/cg-$4-0.out") $(instructions "$work/cg-$4-1.out")"
}

# --squid: instructions of one proxy process (egress or squid) running one scenario of
# egress-bench with the given count option; prints the total.
count_one() { # proxy scenario option count
  local tag="$1-$2-$4" wrapper="$work/wrap-$1-$2-$4" program
  program=$(realpath "${binaries[0]}"); run_as=""
  if [ "$1" = squid ]; then
    program=$(command -v squid || echo /usr/sbin/squid)
    # Started as root, Squid would switch to its user after callgrind opened its output file
    # as root, and the counts would be lost at exit: start it as that user.
    [ "$(id -u)" -ne 0 ] || run_as="setpriv --reuid=proxy --regid=proxy --init-groups"
  fi
  cat >"$wrapper" <<WRAP
#!/bin/sh
exec $run_as valgrind --tool=callgrind --log-file=/dev/null --callgrind-out-file="$work/cg-$tag.out" "$program" "\$@"
WRAP
  chmod +x "$wrapper"
  # The chosen scenario's count; the others' are not used.
  local counts=(--tunnels 10 --requests 10 --denials 10 --bytes $SMALL) i
  for i in 0 2 4 6; do [ "${counts[$i]}" = "$3" ] && counts[$((i + 1))]=$4; done
  "$bench" --egress "$wrapper" --squid "$wrapper" --contenders "$1" --runs 1 --workers 1 \
    --scenarios "$2" "${counts[@]}" >/dev/null 2>"$work/log-$tag" ||
    { echo "egress-bench failed for $tag:" >&2; tail -5 "$work/log-$tag" >&2; exit 1; }
  instructions "$work/cg-$tag.out"
}

if [ -n "$profile" ]; then
  cargo build --release -q -p egress-proxy
  case "$profile" in
    tunnels-one) option=--tunnels; count=2000 ;;
    forward) option=--requests; count=4000 ;;
    deny) option=--denials; count=4000 ;;
    bulk) option=--bytes; count=$((256 << 20)) ;;
    *) echo "--profile: one of tunnels-one, forward, deny, bulk" >&2; exit 2 ;;
  esac
  total=$(count_one egress "$profile" "$option" "$count")
  out="target/callgrind-$profile.out"
  cp "$work/cg-egress-$profile-$count.out" "$out"
  echo "egress, $profile, $option $count: $total instructions ($((total / (count > 100000 ? count >> 20 : count))) per operation with start-up)"
  echo "== inclusive"
  callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '1,/^-- Auto/p' | grep -v "^--" | awk "NR <= 60"
  echo "== self"
  callgrind_annotate "$out" 2>/dev/null | sed -n '1,/^-- Auto/p' | grep -v "^--" | awk "NR <= 40"
  exit 0
fi

if [ "$squid" = 1 ]; then
  export PATH="$PATH:/usr/sbin"
  cargo build --release -q -p egress-proxy
  # Two counts of each operation (few: Squid under valgrind is slow); the difference divided
  # by the difference in count cancels start-up, shutdown and timers.
  ops=("tunnel set-up|tunnels-one|--tunnels|200|1000|1"
       "forwarded request|forward|--requests|400|2000|1"
       "denial|deny|--denials|400|2000|1"
       "MiB relayed|bulk|--bytes|$SMALL|$((33 << 20))|$((1 << 20))")
  printf '| instructions per | egress | squid | egress/squid |\n|---|---:|---:|---:|\n'
  for op in "${ops[@]}"; do
    IFS='|' read -r label scenario option low high unit <<<"$op"
    per=()
    for proxy in egress squid; do
      a=$(count_one $proxy "$scenario" "$option" "$low")
      b=$(count_one $proxy "$scenario" "$option" "$high")
      per+=($(( (b - a) * unit / (high - low) )))
    done
    printf '| %s | %s | %s | %s |\n' "$label" "${per[0]}" "${per[1]}" \
      "$(awk -v e="${per[0]}" -v s="${per[1]}" 'BEGIN { printf "%.2f", e / s }')"
  done
  exit 0
fi

printf '| build | instructions per new tunnel | per MiB relayed | per new tunnel with metrics, audit and admin |\n|---|---:|---:|---:|\n'
for binary in "${binaries[@]}"; do
  tag=$(echo "$binary" | md5sum | cut -c1-8)
  read -r a a_obs < <(run_proxy "$binary" $T1 $SMALL "$tag-a" bulk,tunnels-one)
  read -r b b_obs < <(run_proxy "$binary" $T2 $SMALL "$tag-b" bulk,tunnels-one)
  # Per MiB from runs without tunnels: the jitter of hundreds of tunnels would swamp it.
  read -r c _ < <(run_proxy "$binary" $T1 $LARGE "$tag-c" bulk)
  read -r d _ < <(run_proxy "$binary" $T1 $SMALL "$tag-d" bulk)
  per_tunnel=$(( (b - a) / (T2 - T1) ))
  per_mib=$(( (c - d) / ((LARGE - SMALL) >> 20) ))
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
          "$bench" --embedded-only "$1" --subscriber-work "$2" --runs 1 --scenarios bulk,tunnels-one \
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
