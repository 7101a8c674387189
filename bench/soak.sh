#!/usr/bin/env bash
# The soak, not a test: mixed load (CONNECT, plain HTTP keep-alive GET/POST, SOCKS5, denials)
# through the real egress-proxy while its policy file is replaced, broken and rewritten in place
# and SIGHUP is sent; every answer is checked against the policy in force, RSS and descriptors
# are followed. Loopback only, bounded in time. Exit 0 only when nothing was wrong.
#   bench/soak.sh [--minutes 8] [--loops 16] [--out DIR] [--seed 1]   (see --help)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p egress-proxy -p egress-bench
exec target/release/egress-soak --egress target/release/egress-proxy "$@"
