#!/usr/bin/env bash
# Sets up and runs a local hkms appliance on SoftHSM2 tokens:
#   - installs what is missing (scripts/install-deps.sh) and builds release binaries;
#   - on first run, creates two SoftHSM2 tokens with random PINs (files mode 0600),
#     a commented hkmsd config, and an instance (`hkms init`);
#   - on first run, creates the instance CA and the gateway's certificate;
#   - runs hkmsd and hkms-gateway (HTTPS, KMS instance API) until Ctrl-C, and prints the
#     endpoint and the CA bundle clients need.
# State lives in $HKMS_HOME (default: ./var). Delete it to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
home=${HKMS_HOME:-$root/var}
members=${HKMS_MEMBERS:-2}

bash scripts/install-deps.sh
echo "== building release binaries"
cargo build --release --quiet --bin hkmsd --bin hkms --bin hkms-gateway
bin=$root/target/release

mkdir -p "$home"
chmod 700 "$home"
export SOFTHSM2_CONF=$home/softhsm2.conf
if [[ ! -f $SOFTHSM2_CONF ]]; then
    echo "== creating $members SoftHSM2 tokens in $home/tokens"
    mkdir -p "$home/tokens" "$home/pins"
    chmod 700 "$home/tokens" "$home/pins"
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$home" >"$SOFTHSM2_CONF"
    (
        umask 077
        for i in $(seq 1 "$members"); do
            openssl rand -hex 12 >"$home/pins/user-$i"
            openssl rand -hex 12 >"$home/pins/so-$i"
            softhsm2-util --init-token --free --label "hkms-$i" \
                --so-pin "$(cat "$home/pins/so-$i")" --pin "$(cat "$home/pins/user-$i")" >/dev/null
        done
    )
fi
config=$home/hkmsd.toml
if [[ ! -f $config ]]; then
    sed -n '1,/^# One \[\[member\]\]/p' scripts/hkmsd.example.toml |
        sed -e "s|^socket = .*|socket = \"$home/hkmsd.sock\"|" \
            -e "s|^path = .*|path = \"$home/store\"|" \
            -e "s|^# gateway_uids = .*|gateway_uids = [$(id -u)]|" >"$config"
    for i in $(seq 1 "$members"); do
        cat >>"$config" <<TOML

[[member]]
name = "hsm-$i"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "hkms-$i"
pin_file = "$home/pins/user-$i"
profile = "softhsm2"
max_sessions = 8
TOML
    done
fi

export HKMS_SOCKET=$home/hkmsd.sock
# hkmsd refuses to keep running as root unless told to: a production install runs it as
# the hkms service user (systemd/, or [hardening] run_as). This local demo instance,
# started by whoever runs the script, keeps that user; as root, say so explicitly.
root_flag=()
[[ $(id -u) -eq 0 ]] && root_flag=(--allow-root)
"$bin/hkmsd" --config "$config" "${root_flag[@]}" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
    [[ -S $HKMS_SOCKET ]] && break
    kill -0 $daemon 2>/dev/null || { echo "hkmsd failed to start" >&2; exit 1; }
    sleep 0.1
done
if ! "$bin/hkms" --json status | grep -q '"Initialized": true'; then
    echo "== initialising the instance"
    "$bin/hkms" init --so-pin-file "$home/pins/so-1"
fi
"$bin/hkms" status

# The instance CA and the gateway's certificate (first run only). The root CA key goes to
# $home/offline: on a real appliance, move it to offline storage.
port=${HKMS_GATEWAY_PORT:-18443}
if [[ ! -f $home/ca/root.pem ]]; then
    echo "== creating the instance CA and the gateway certificate"
    mkdir -p "$home/offline" "$home/gateway"
    chmod 700 "$home/offline" "$home/gateway"
    "$bin/hkms" ca init --dir "$home/ca" --root-key-out "$home/offline/root-ca.key"
    "$bin/hkms" ca issue-gateway --dir "$home/ca" --dns "localhost,$(hostname)" --ip 127.0.0.1 \
        --cert-out "$home/gateway/gateway.pem" --key-out "$home/gateway/gateway.key"
fi
bundle=$("$bin/hkms" --json ca export --dir "$home/ca" --output-dir "$home" |
    sed -n 's/.*"CaBundleFile": "\(.*\)".*/\1/p')
gwconfig=$home/gateway.toml
if [[ ! -f $gwconfig ]]; then
    cat >"$gwconfig" <<TOML
# hkms-gateway for this local appliance (see scripts/hkms-gateway.example.toml).
[hkmsd]
socket = "$HKMS_SOCKET"
[tls]
certificate = "$home/gateway/gateway.pem"
private_key = "$home/gateway/gateway.key"
[private]
listen = "127.0.0.1:$port"
TOML
fi
"$bin/hkms-gateway" --config "$gwconfig" &
gateway=$!
trap 'kill $gateway $daemon 2>/dev/null; wait $gateway $daemon 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 $gateway 2>/dev/null || { echo "hkms-gateway failed to start" >&2; exit 1; }
    sleep 0.1
done
cat <<MSG

hkmsd and hkms-gateway are running.
  KMS instance API endpoint: https://localhost:$port
  CA bundle for clients:     $bundle
In another shell:
  export HKMS_SOCKET=$HKMS_SOCKET
  $bin/hkms key create --description demo
  $bin/hkms encrypt --key-id <KeyId> --plaintext 'hello'
  $bin/hkms decrypt --ciphertext-blob <CiphertextBlob>
To call it from an application with an official SDK, see "Applications" in README.md.
Press Ctrl-C to stop.
MSG
wait $daemon
