#!/usr/bin/env bash
# Sets up and runs a local hkms appliance on SoftHSM2 tokens:
#   - installs what is missing (scripts/install-deps.sh) and builds release binaries;
#   - on first run, creates two SoftHSM2 tokens with random PINs (files mode 0400), a
#     commented hkmsd config, and an instance (`hkms init`);
#   - on first run, creates the instance CA and the certificates the gateway needs;
#   - runs hkmsd and hkms-gateway (HTTPS, KMS instance API) until Ctrl-C (or SIGTERM), and
#     prints the endpoint and the CA bundle clients need.
#
# Nothing runs with more privilege than it needs, whoever starts the script:
#   - as root, it does what a production install does: it creates the service users
#     `hkms` and `hkms-gateway` if they are missing (hkms-gateway is a member of group hkms,
#     which may use hkmsd's socket), gives each only the files it needs, and hkmsd and the
#     gateway switch to them at start (`[hardening] run_as`). Root stays the operator, who
#     runs the `hkms` CLI. State lives in /var/lib/hkms-appliance.
#   - as an ordinary user, everything runs as that user, who is the operator. A gateway
#     uid may never be an operator, so the gateway reaches hkmsd over mutual TLS on
#     127.0.0.1 (a gateway client certificate of the instance CA) instead of the socket.
#     State lives in ./var.
#
# Environment:
#   HKMS_HOME          state directory (see above); delete it to start over
#   HKMS_MEMBERS       number of SoftHSM2 tokens (default 2)
#   HKMS_GATEWAY_PORT  HTTPS port of the gateway (default 18443)
#   HKMS_HKMSD_PORT    hkmsd's mutual-TLS port for the gateway, ordinary user only (18444)
#   HKMS_METRICS_PORT  hkmsd's metrics and health port on 127.0.0.1 (default 9464)
#   HKMS_GATEWAY_METRICS_PORT  the gateway's metrics and health port on 127.0.0.1 (9465)
#   HKMS_BIN_DIR       use hkmsd, hkms and hkms-gateway from this directory, not a build
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
members=${HKMS_MEMBERS:-2}
port=${HKMS_GATEWAY_PORT:-18443}
hkmsd_port=${HKMS_HKMSD_PORT:-18444}
metrics_port=${HKMS_METRICS_PORT:-9464}
gateway_metrics_port=${HKMS_GATEWAY_METRICS_PORT:-9465}
as_root=false
[[ $(id -u) -eq 0 ]] && as_root=true
if $as_root; then
    home=${HKMS_HOME:-/var/lib/hkms-appliance}
else
    home=${HKMS_HOME:-$root/var}
fi
mkdir -p "$home"
home=$(cd "$home" && pwd)
config=$home/hkmsd.toml
if [[ -f $config ]] && ! grep -q "^socket = \"$home/run/hkmsd.sock\"" "$config"; then
    echo "error: $home holds an appliance set up by an earlier version of this script" \
        "(its socket is not $home/run/hkmsd.sock). Delete $home to start over, or set" \
        "HKMS_HOME to another directory." >&2
    exit 1
fi

if [[ -n ${HKMS_BIN_DIR:-} ]]; then
    bash scripts/install-deps.sh --no-cargo
    bin=$(cd "$HKMS_BIN_DIR" && pwd)
else
    bash scripts/install-deps.sh
    echo "== building release binaries"
    cargo build --release --quiet --bin hkmsd --bin hkms --bin hkms-gateway
    bin=$root/target/release
fi

# --- identities -------------------------------------------------------------------------
if $as_root; then
    # The service users of a production install (systemd/sysusers.d/hkms.conf).
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    if ! getent group hkms >/dev/null; then
        groupadd --system hkms
    fi
    if ! getent passwd hkms >/dev/null; then
        echo "== creating service user hkms (runs hkmsd)"
        useradd --system --gid hkms --home-dir /nonexistent --no-create-home \
            --shell "$nologin" --comment "hkms key management daemon" hkms
    fi
    if ! getent group hkms-gateway >/dev/null; then
        groupadd --system hkms-gateway
    fi
    if ! getent passwd hkms-gateway >/dev/null; then
        echo "== creating service user hkms-gateway (runs hkms-gateway)"
        useradd --system --gid hkms-gateway --groups hkms --home-dir /nonexistent \
            --no-create-home --shell "$nologin" --comment "hkms gateway" hkms-gateway
    elif ! id -nG hkms-gateway | tr ' ' '\n' | grep -qx hkms; then
        usermod --append --groups hkms hkms-gateway
    fi
    gateway_uid=$(id -u hkms-gateway)
    # Every directory above $home must let the service users through.
    if ! runuser -u hkms -- test -x "$home"; then
        echo "error: user hkms cannot reach $home (a parent directory is closed to it);" \
            "set HKMS_HOME to a directory under an open path, such as /var/lib" >&2
        exit 1
    fi
fi

# Owner, group and mode of a path (as root; an ordinary user owns everything already).
own() {
    local owner=$1 mode=$2
    shift 2
    $as_root && chown "$owner" "$@"
    chmod "$mode" "$@"
}

# --- tokens, PINs, hkmsd's configuration (first run) ------------------------------------
if $as_root; then own root:hkms 0750 "$home"; else chmod 0700 "$home"; fi
export SOFTHSM2_CONF=$home/softhsm2.conf
if [[ ! -f $SOFTHSM2_CONF ]]; then
    echo "== creating $members SoftHSM2 tokens in $home/tokens"
    mkdir -p "$home/tokens" "$home/pins"
    printf '# SoftHSM2 tokens of this appliance (file-backed; for tests and demos).\n' >"$SOFTHSM2_CONF"
    printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$home" >>"$SOFTHSM2_CONF"
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
# hkmsd's user owns the tokens and reads its PINs; SO PINs stay the operator's.
own root:hkms 0640 "$SOFTHSM2_CONF"
if $as_root; then chown -R hkms:hkms "$home/tokens"; fi
chmod 0700 "$home/tokens"
own root:hkms 0750 "$home/pins"
own hkms:hkms 0400 "$home"/pins/user-*
own root:root 0400 "$home"/pins/so-*
mkdir -p "$home/store" "$home/run" "$home/audit"
own hkms:hkms 0700 "$home/store"
own hkms:hkms 0700 "$home/audit"
own hkms:hkms 0750 "$home/run"

if [[ ! -f $config ]]; then
    edits=(-e "s|^socket = .*|socket = \"$home/run/hkmsd.sock\"|"
        -e "s|^path = .*|path = \"$home/store\"|"
        -e "s|^listen = \"127.0.0.1:9464\"|listen = \"127.0.0.1:$metrics_port\"|")
    if $as_root; then
        edits+=(-e "s|^# gateway_uids = .*|gateway_uids = [$gateway_uid]|"
            -e 's|^# run_as = "hkms"|run_as = "hkms"|')
    else
        edits+=(-e "s|^operator_uids = .*|operator_uids = [$(id -u)]|")
    fi
    sed -n '1,/^# One \[\[member\]\]/p' scripts/hkmsd.example.toml | sed "${edits[@]}" >"$config"
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
own root:hkms 0640 "$config"

# --- hkmsd --------------------------------------------------------------------------------
export HKMS_SOCKET=$home/run/hkmsd.sock
daemon=
gateway=
stop_all() {
    set +e
    [[ -n $gateway ]] && kill "$gateway" 2>/dev/null
    [[ -n $daemon ]] && kill "$daemon" 2>/dev/null
    wait 2>/dev/null
    return 0
}
# Ctrl-C or SIGTERM stops both services. Further signals are ignored from then on, so a
# second one cannot cut the clean-up short.
trap stop_all EXIT
trap 'trap "" INT TERM; exit 130' INT
trap 'trap "" INT TERM; exit 143' TERM

start_daemon() {
    "$bin/hkmsd" --config "$config" &
    daemon=$!
    for _ in $(seq 1 100); do
        [[ -S $HKMS_SOCKET ]] && "$bin/hkms" --json status >/dev/null 2>&1 && return 0
        kill -0 "$daemon" 2>/dev/null || { echo "hkmsd failed to start" >&2; exit 1; }
        sleep 0.1
    done
    echo "hkmsd did not answer on $HKMS_SOCKET" >&2
    exit 1
}
stop_daemon() {
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    daemon=
}

start_daemon
if ! "$bin/hkms" --json status | grep -q '"Initialized": true'; then
    echo "== initialising the instance"
    "$bin/hkms" init --so-pin-file "$home/pins/so-1"
fi
"$bin/hkms" status

# --- the instance CA and certificates (first run) -----------------------------------------
# The root CA key goes to $home/offline: on a real appliance, move it to offline storage.
mkdir -p "$home/gateway" "$home/offline"
own root:root 0700 "$home/offline"
if [[ ! -f $home/ca/root.pem ]]; then
    echo "== creating the instance CA and the gateway certificate"
    "$bin/hkms" ca init --dir "$home/ca" --root-key-out "$home/offline/root-ca.key"
    "$bin/hkms" ca issue-gateway --dir "$home/ca" --dns "localhost,$(hostname)" --ip 127.0.0.1 \
        --cert-out "$home/gateway/gateway.pem" --key-out "$home/gateway/gateway.key"
fi
own root:root 0700 "$home/ca"
bundle=$("$bin/hkms" --json ca export --dir "$home/ca" --output-dir "$home" |
    sed -n 's/.*"CaBundleFile": "\(.*\)".*/\1/p')
own root:root 0644 "$bundle"

if ! $as_root && [[ ! -f $home/gateway/hkmsd-client.pem ]]; then
    # The gateway's way in: mutual TLS on 127.0.0.1 (hkmsd's server certificate, and a
    # gateway client certificate that may relay signed requests and nothing else).
    echo "== creating the certificates for the gateway-to-hkmsd link (127.0.0.1:$hkmsd_port)"
    mkdir -p "$home/hkmsd-tls"
    chmod 0700 "$home/hkmsd-tls"
    "$bin/hkms" ca issue-gateway --dir "$home/ca" --dns localhost --ip 127.0.0.1 \
        --cert-out "$home/hkmsd-tls/hkmsd.pem" --key-out "$home/hkmsd-tls/hkmsd.key" >/dev/null
    "$bin/hkms" ca issue-gateway-client --dir "$home/ca" --name local-gateway \
        --cert-out "$home/gateway/hkmsd-client.pem" \
        --key-out "$home/gateway/hkmsd-client.key" >/dev/null
fi
if ! $as_root && ! grep -q '^tcp = ' "$config"; then
    echo "== hkmsd: listening on 127.0.0.1:$hkmsd_port for the gateway (mutual TLS); restarting"
    sed -i -e "s|^# tcp = .*|tcp = \"127.0.0.1:$hkmsd_port\"|" \
        -e "s|^# tls_cert = .*|tls_cert = \"$home/hkmsd-tls/hkmsd.pem\"|" \
        -e "s|^# tls_key = .*|tls_key = \"$home/hkmsd-tls/hkmsd.key\"|" \
        -e "s|^# gateway_ca = .*|gateway_ca = \"$bundle\"|" "$config"
    stop_daemon
    start_daemon
fi

# --- the gateway --------------------------------------------------------------------------
gwconfig=$home/gateway/gateway.toml
if [[ ! -f $gwconfig ]]; then
    {
        echo "# hkms-gateway for this local appliance (see scripts/hkms-gateway.example.toml)."
        echo "[hkmsd]"
        if $as_root; then
            echo "# hkmsd's socket: the gateway user reaches it as a member of group hkms."
            echo "socket = \"$HKMS_SOCKET\""
        else
            echo "# hkmsd over mutual TLS on loopback (a gateway may never be an operator, and"
            echo "# the operator is the user running this appliance)."
            echo "endpoint = \"https://localhost:$hkmsd_port\""
            echo "client_cert = \"$home/gateway/hkmsd-client.pem\""
            echo "client_key = \"$home/gateway/hkmsd-client.key\""
            echo "ca = \"$bundle\""
        fi
        echo "[tls]"
        echo "certificate = \"$home/gateway/gateway.pem\""
        echo "private_key = \"$home/gateway/gateway.key\""
        echo "[private]"
        echo "listen = \"127.0.0.1:$port\""
        echo "[observability]"
        echo "# Metrics and health (GET /metrics, /health/live, /health/ready), loopback only."
        echo "listen = \"127.0.0.1:$gateway_metrics_port\""
        if $as_root; then
            echo "[hardening]"
            echo "# Started as root, the gateway switches to its service user once it listens."
            echo "run_as = \"hkms-gateway\""
        fi
    } >"$gwconfig"
fi
# The gateway's files: its user reads them, nobody else does.
own root:hkms-gateway 0750 "$home/gateway"
own root:hkms-gateway 0640 "$home/gateway"/*
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_open "$port"; then
    echo "error: port $port is in use; set HKMS_GATEWAY_PORT to a free port" >&2
    exit 1
fi
"$bin/hkms-gateway" --config "$gwconfig" &
gateway=$!
for _ in $(seq 1 100); do
    kill -0 "$gateway" 2>/dev/null || { echo "hkms-gateway failed to start" >&2; exit 1; }
    port_open "$port" && break
    sleep 0.1
done
whoami_of() { ps -o user= -p "$1" 2>/dev/null | tr -d ' '; }
cat <<MSG

hkmsd and hkms-gateway are running (hkmsd as $(whoami_of "$daemon"), the gateway as $(whoami_of "$gateway")).
  KMS instance API endpoint: https://localhost:$port
  Metrics and health:        http://127.0.0.1:$metrics_port/metrics (hkmsd), http://127.0.0.1:$gateway_metrics_port/metrics (gateway)
  CA bundle for clients:     $bundle
In another shell, as $(id -un) (the operator):
  export HKMS_SOCKET=$HKMS_SOCKET
  $bin/hkms key create --description demo
  $bin/hkms encrypt --key-id <KeyId> --plaintext 'hello'
  $bin/hkms decrypt --ciphertext-blob <CiphertextBlob>
To call it from an application with an official SDK, see "Applications" in README.md.
Press Ctrl-C to stop.
MSG
# Until Ctrl-C, or until either service stops: then the other is stopped too.
wait -n "$daemon" "$gateway" || true
echo "hkmsd or hkms-gateway stopped; stopping the other" >&2
exit 1
