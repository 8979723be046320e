#!/usr/bin/env bash
# Installs Tencent Cloud's official Python SDKs for KMS and SSM and the tccli
# command line into their own virtual environment, for the interoperability
# tests of the Tencent Cloud API 3.0 front (tests/tencent_sdk.rs). Versions are
# pinned so every run talks to hkms with the same client code.
#
# tccli pulls the SDK of every Tencent Cloud service (about 650 MB); the
# environment is made once and reused while it imports what the tests need.
#
# Usage: scripts/install-tencent-sdk-deps.sh [VENV_DIR]
# Default VENV_DIR: $HKMS_TENCENT_VENV, else ~/.cache/hkms/tencent-venv.
set -euo pipefail

venv="${1:-${HKMS_TENCENT_VENV:-$HOME/.cache/hkms/tencent-venv}}"
packages=(
    "tencentcloud-sdk-python-common==3.1.195"
    "tencentcloud-sdk-python-kms==3.1.192"
    "tencentcloud-sdk-python-ssm==3.1.194"
    "tencentcloud-sdk-python==3.1.195"
    "tccli==3.1.189.1"
)
check='import tencentcloud.kms.v20190118.kms_client, tencentcloud.ssm.v20190923.ssm_client, tccli'

ready() {
    [ -x "$venv/bin/python" ] && [ -x "$venv/bin/tccli" ] && "$venv/bin/python" -c "$check" 2>/dev/null
}

if ready; then
    echo "Tencent Cloud SDKs already installed in $venv"
    exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
    exit 2
fi
mkdir -p "$(dirname "$venv")"
# One installation at a time; tests that waited find it done.
exec 9>"$venv.lock"
flock 9
if ready; then
    echo "Tencent Cloud SDKs already installed in $venv"
    exit 0
fi
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
"$venv/bin/python" -c "$check"
echo "Tencent Cloud SDKs and tccli installed in $venv"
