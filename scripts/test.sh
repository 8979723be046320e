#!/usr/bin/env bash
# Runs the whole hkms test suite on a fresh Debian 12 machine: installs what is
# missing (Kryoptic is built from source once per machine), checks formatting and
# lints, builds everything (including the fault-injecting PKCS#11 module the failover
# tests load), builds the appliance image and boots it in qemu to its self-test
# (HKMS_SKIP_IMAGE=1 skips that), and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Kryoptic, the second PKCS#11 implementation (tests/mixed_cluster.rs): built from crates.io
# on a machine's first run, then taken from its cache.
bash scripts/install-kryoptic.sh
# systemd-analyze, for the unit checks in tests/systemd_units.rs.
bash scripts/install-image-deps.sh --units-only
echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build"
cargo build --workspace --quiet
if [[ ${HKMS_SKIP_IMAGE:-0} != 1 ]]; then
    # The appliance image: build it (with the .deb) and boot it in qemu to a self-test.
    echo "== appliance image"
    bash image/build.sh
    bash image/boot-test.sh
fi
echo "== tests"
cargo test --workspace 2>&1
