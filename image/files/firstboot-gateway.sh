#!/bin/sh
# First boot of the hkms appliance, once the instance exists: creates the instance CA and
# the gateway's certificate for this host name and 127.0.0.1. The root CA key goes to
# /root/hkms-root.key (0400): move it offline. The CA bundle for clients is written to
# /etc/hkms/ca.
set -eu
umask 077
hkms() { /usr/bin/hkms --config /etc/hkms/hkmsd.toml "$@"; }
host=$(hostname)
hkms --json ca init --dir /etc/hkms/ca --root-key-out /root/hkms-root.key >/dev/null
install -d -m 0750 -o root -g hkms-gateway /etc/hkms/gateway
hkms --json ca issue-gateway --dir /etc/hkms/ca --dns "$host" --dns localhost --ip 127.0.0.1 \
    --cert-out /etc/hkms/gateway/gateway.pem --key-out /etc/hkms/gateway/gateway.key >/dev/null
chown hkms-gateway:hkms-gateway /etc/hkms/gateway/gateway.pem /etc/hkms/gateway/gateway.key
chmod 0400 /etc/hkms/gateway/gateway.key
chmod 0444 /etc/hkms/gateway/gateway.pem
hkms --json ca export --dir /etc/hkms/ca --output-dir /etc/hkms/ca >/dev/null
chmod 0755 /etc/hkms/ca
chmod 0644 /etc/hkms/ca/PrivateKmsCA_*.pem
echo "hkms first boot: instance CA and gateway certificate for $host created"
