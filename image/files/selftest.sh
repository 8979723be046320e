#!/bin/sh
# Self-test of a booted appliance: create a key, encrypt, decrypt, and the hardening report
# of the running hkmsd. Prints "HKMS-SELFTEST: PASS" or "HKMS-SELFTEST: FAIL: why".
set -u
say() { echo "HKMS-SELFTEST: $*"; }
fail() { say "FAIL: $*"; exit 1; }
json() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n1; }
hkms() { /usr/bin/hkms --config /etc/hkms/hkmsd.toml "$@"; }

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
say "PASS"
