#!/usr/bin/env bash
# Installs the official KMS instance SDK for Python and Alibaba's Secrets
# Manager Client for Python (which reads secrets through that SDK) into their
# own virtual environment, for the interoperability tests (tests/sdk/).
#
# The SDK installs generic top-level modules (openapi, sdk, ...) and cannot
# sign with cryptography 42 or later; the Secrets Manager Client pins
# cryptography <= 38.0.3 and multidict 5.1.0, which has no wheel for current
# Pythons (installed as pure Python here, so no compiler or headers are needed).
# So they never go into the system Python, and an environment made for the SDK
# alone is made again.
#
# Usage: scripts/install-sdk-test-deps.sh [VENV_DIR]
# Default VENV_DIR: $HKMS_SDK_VENV, else ~/.cache/hkms/sdk-venv.
set -euo pipefail

venv="${1:-${HKMS_SDK_VENV:-$HOME/.cache/hkms/sdk-venv}}"
sdk="alibabacloud-dkms-gcs==1.0.2"
secrets_client="aliyun-secret-manager-client==0.1.5"
check='import sdk.client, openapi.models, alibaba_cloud_secretsmanager_client.secret_manager_cache_client_builder'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "SDK already installed in $venv"
    exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
    exit 2
fi

mkdir -p "$(dirname "$venv")"
# One installation at a time (tests running in parallel may all find it missing); the
# ones that waited find it done.
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "SDK already installed in $venv"
    exit 0
fi
python3 -m venv --clear "$venv"
MULTIDICT_NO_EXTENSIONS=1 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$sdk" \
    "$secrets_client" "alibabacloud-dkms-transfer-python==0.1.2" \
    "cryptography>=38,<42" "pyOpenSSL<23.3"
"$venv/bin/python" -c "$check"'; import cryptography; print("SDK and Secrets Manager Client installed in '"$venv"' (cryptography", cryptography.__version__ + ")")'
