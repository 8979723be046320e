#!/usr/bin/env bash
# Runs the whole hkms test suite on a fresh Debian 12 machine: installs what is
# missing, checks formatting and lints, builds everything (including the
# fault-injecting PKCS#11 module the failover tests load), and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build"
cargo build --workspace --quiet
echo "== tests"
cargo test --workspace 2>&1
