#!/usr/bin/env bash
# Installs what hkms needs to build, run and test on Debian 12, if it is missing:
# SoftHSM2 (the PKCS#11 token used by the demo profile and the tests), OpenSC's
# pkcs11-tool (to inspect tokens), and the OpenSSL headers for the openssl crate.
# protoc comes from the protoc-bin-vendored crate, so no system protobuf is needed.
set -euo pipefail

packages=(softhsm2 opensc libssl-dev pkg-config python3-venv openssl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "Installing: ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# --no-cargo: prebuilt binaries will be used (run-appliance.sh with HKMS_BIN_DIR).
if [[ ${1:-} != --no-cargo ]] && ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed; install the Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi
if command -v cargo >/dev/null; then
    echo "Dependencies present: ${packages[*]}, cargo $(cargo --version | cut -d' ' -f2)"
else
    echo "Dependencies present: ${packages[*]}"
fi
