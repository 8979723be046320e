#!/bin/sh
# Self-test of a booted appliance: create a key, encrypt, decrypt, the hardening reports of
# the running hkmsd and hkms-gateway, and one HTTPS request to the gateway. Prints "HKMS-SELFTEST: PASS" or "HKMS-SELFTEST: FAIL: why".
set -u
say() { echo "HKMS-SELFTEST: $*"; }
fail() { say "FAIL: $*"; exit 1; }
json() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n1; }
hkms() { /usr/bin/hkms --config /etc/hkms/hkmsd.toml "$@"; }

# hkmsd: ready (its unit is Type=notify: active only after its READY=1). The console's
# "Started" line for it may be lost once a getty holds the console, so it is said here.
i=0
until systemctl is-active --quiet hkmsd.service; do
    i=$((i + 1))
    [ "$i" -le 120 ] || fail "hkmsd did not become ready within 120 s"
    sleep 1
done
say "hkmsd ready (READY=1 received by systemd)"
i=0
until hkms --json status 2>/dev/null | grep -q '"InstanceId": *"hkms-'; do
    i=$((i + 1))
    [ "$i" -le 120 ] || fail "the instance was not created within 120 s"
    sleep 1
done
say "instance ready"
key=$(hkms --json key create --description "boot self-test" | json KeyId)
[ -n "$key" ] || fail "key create"
say "key $key created"
blob=$(hkms --json encrypt --key-id "$key" --plaintext "hkms self-test" | json CiphertextBlob)
[ -n "$blob" ] || fail "encrypt"
plain=$(hkms --json decrypt --ciphertext-blob "$blob" | json Plaintext)
[ "$plain" = "$(printf 'hkms self-test' | base64)" ] || fail "decrypt returned '$plain'"
say "encrypt/decrypt round trip ok"
report=$(/usr/bin/hkmsd --config /etc/hkms/hkmsd.toml --check-hardening)
status=$?
printf '%s\n' "$report"
[ "$status" -eq 0 ] || fail "hardening report"
echo "$report" | grep -q 'ok    memory lock' || fail "memory is not locked"
echo "$report" | grep -q 'ok    dumpable' || fail "hkmsd is dumpable"
say "hkmsd hardened"

# The gateway: ready, hardened, and answering HTTPS with the instance CA's certificate.
i=0
until systemctl is-active --quiet hkms-gateway.service; do
    i=$((i + 1))
    [ "$i" -le 120 ] || fail "hkms-gateway did not become ready within 120 s"
    sleep 1
done
say "gateway ready (READY=1 received by systemd)"
report=$(/usr/bin/hkms-gateway --config /etc/hkms/gateway.toml --check-hardening)
status=$?
printf '%s\n' "$report"
[ "$status" -eq 0 ] || fail "gateway hardening report"
echo "$report" | grep -q 'ok    dumpable' || fail "hkms-gateway is dumpable"
echo "$report" | grep -q 'ok    user' || fail "hkms-gateway runs as root"
bundle=$(ls /etc/hkms/ca/PrivateKmsCA_*.pem 2>/dev/null | head -n1)
[ -n "$bundle" ] || fail "no CA bundle in /etc/hkms/ca"
host=$(hostname)
answer=$(printf 'POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$host" |
    timeout 30 openssl s_client -connect 127.0.0.1:443 -tls1_2 -servername "$host" \
        -verify_hostname "$host" -CAfile "$bundle" -verify_return_error -ign_eof 2>&1)
echo "$answer" | grep -q "Verify return code: 0 (ok)" || {
    printf '%s\n' "$answer" | tail -n 20
    fail "TLS 1.2 handshake with the gateway did not verify with $bundle"
}
line=$(echo "$answer" | grep -a -m1 "^HTTP/1.1 ")
[ -n "$line" ] || fail "no HTTP answer from the gateway"
say "gateway HTTPS round trip ok (TLS 1.2, verified for $host with the CA bundle): $line"
say "PASS"
