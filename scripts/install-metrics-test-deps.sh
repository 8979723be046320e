#!/usr/bin/env bash
# Installs the Prometheus Python client (its text-format parser reads hkmsd's and the
# gateway's /metrics in tests/metrics.rs) into a virtual environment of its own.
#
# Usage: scripts/install-metrics-test-deps.sh [VENV_DIR]
# Default VENV_DIR: $HKMS_METRICS_VENV, else ~/.cache/hkms/metrics-venv.
set -euo pipefail

venv="${1:-${HKMS_METRICS_VENV:-$HOME/.cache/hkms/metrics-venv}}"
client="prometheus-client==0.23.1"
check='import prometheus_client.parser; from importlib.metadata import version; assert version("prometheus-client") == "0.23.1"'

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "prometheus_client already installed in $venv"
    exit 0
fi

if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
    exit 2
fi

mkdir -p "$(dirname "$venv")"
# One installation at a time (tests running in parallel may all find it missing).
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "prometheus_client already installed in $venv"
    exit 0
fi
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$client"
"$venv/bin/python" -c "$check"
echo "prometheus_client installed in $venv"
