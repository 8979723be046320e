#!/usr/bin/env bash
# Installs the official KMS instance SDK for Python into its own virtual
# environment, for the interoperability tests (tests/sdk/).
#
# The SDK installs generic top-level modules (openapi, sdk, ...) and needs
# cryptography 41.x (it cannot sign with 42 or later), so it never goes into
# the system Python.
#
# Usage: scripts/install-sdk-test-deps.sh [VENV_DIR]
# Default VENV_DIR: $HKMS_SDK_VENV, else ~/.cache/hkms/sdk-venv.
set -euo pipefail

venv="${1:-${HKMS_SDK_VENV:-$HOME/.cache/hkms/sdk-venv}}"
sdk="alibabacloud-dkms-gcs==1.0.2"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sdk.client, openapi.models' 2>/dev/null; then
    echo "SDK already installed in $venv"
    exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
    exit 2
fi

mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$sdk" \
    "cryptography>=41,<42" "pyOpenSSL<23.3"
"$venv/bin/python" -c 'import sdk.client, openapi.models; import cryptography; print("SDK installed in '"$venv"' (cryptography", cryptography.__version__ + ")")'
