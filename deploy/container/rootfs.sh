#!/bin/sh
# Lays out the image's files under OUT: the static egress-proxy BINARY, the image's policy, the
# CA roots, the state directory (the admin token), and a passwd/group naming the non-root user the image runs as. The Containerfile's
# build stage runs it; so does tests/deploy.rs, on a binary built by tests/run.sh, to build the
# same image without pulling a builder image.
#
#   deploy/container/rootfs.sh OUT BINARY
set -eu
out=$1
binary=$2
here=$(dirname "$0")
install -D -m 0755 "$binary" "$out/egress-proxy"
install -D -m 0644 "$here/policy.yaml" "$out/etc/egress/policy.yaml"
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
install -d -m 0700 -o 65532 -g 65532 "$out/var/lib/egress"
printf 'egress:x:65532:65532:egress:/:/egress-proxy\n' > "$out/etc/passwd"
printf 'egress:x:65532:\n' > "$out/etc/group"
