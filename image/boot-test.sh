#!/usr/bin/env bash
# Boot test of the appliance image: boots it in qemu (on a throw-away overlay, no network),
# waits for hkmsd and hkms-gateway to report ready on the serial console, lets the in-image
# self-test run (create a key, encrypt, decrypt, `hkmsd --check-hardening`,
# `hkms-gateway --check-hardening`, one HTTPS request to the gateway) and expects the
# machine to power itself off. Prints PASS or FAIL with the reason; exit status 0 only on PASS.
#
#   image/boot-test.sh [IMAGE]     (default target/image/hkms-appliance.qcow2)
#
# Environment: HKMS_BOOT_TIMEOUT seconds for the whole boot (default 420);
# HKMS_QEMU_ACCEL=kvm to use KVM (default tcg).
# The serial console is kept in target/image/boot-console.log.
set -euo pipefail
cd "$(dirname "$0")/.."
image=$(realpath "${1:-target/image/hkms-appliance.qcow2}")
limit=${HKMS_BOOT_TIMEOUT:-420}
[[ -f $image ]] || { echo "FAIL: no image at $image (run image/build.sh)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null ||
    { echo "FAIL: qemu-system-x86_64 missing (scripts/install-image-deps.sh)" >&2; exit 1; }

work=$(mktemp -d)
qemu_pid=
cleanup() {
    [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
console=$(dirname "$image")/boot-console.log
: >"$console"
qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$work/disk.qcow2"

# TCG by default: it works everywhere. HKMS_QEMU_ACCEL=kvm where KVM is usable.
accel=(-accel "${HKMS_QEMU_ACCEL:-tcg}")
echo "== booting $(basename "$image") (qemu ${accel[*]}, 2 vCPU, 1 GiB, no network)"
started=$(date +%s)
# The disk serial "hkms-selftest" makes udev start hkms-selftest.service in the guest.
qemu-system-x86_64 "${accel[@]}" -cpu max -smp 2 -m 1024 \
    -display none -monitor none -serial "file:$console" -no-reboot -nic none \
    -drive "file=$work/disk.qcow2,if=none,id=root,format=qcow2" \
    -device virtio-blk-pci,drive=root,serial=hkms-selftest 2>"$work/qemu.err" &
qemu_pid=$!

elapsed() { echo $(($(date +%s) - started)); }
ready_at=
gateway_at=
result=
while kill -0 "$qemu_pid" 2>/dev/null; do
    # Both units are Type=notify: "Started" appears once the daemon sent READY=1. The
    # console may lose that line once a getty holds it; the self-test reports readiness
    # too (systemctl is-active, true only after READY=1).
    if [[ -z $ready_at ]] && grep -aq -e "Started.*hkmsd.service" \
        -e "HKMS-SELFTEST: hkmsd ready" "$console"; then
        ready_at=$(elapsed)
        echo "== hkmsd ready after ${ready_at}s"
    fi
    # The console shortens long unit names; the self-test reports the gateway's readiness
    # (systemctl is-active, true only after its READY=1).
    if [[ -z $gateway_at ]] && grep -aq -e "Started.*hkms-gateway.service" \
        -e "HKMS-SELFTEST: gateway ready" "$console"; then
        gateway_at=$(elapsed)
        echo "== hkms-gateway ready after ${gateway_at}s"
    fi
    if [[ -z $result ]] && grep -aq "HKMS-SELFTEST: \(PASS\|FAIL\)" "$console"; then
        result=$(grep -a -m1 -o "HKMS-SELFTEST: \(PASS\|FAIL.*\)" "$console")
        echo "== self-test finished after $(elapsed)s"
    fi
    if grep -aq -e "Kernel panic" -e "^(initramfs)" -e "Failed to mount /dev/" "$console"; then
        tail -n 40 "$console" | tr -d '\r'
        echo "FAIL: the appliance did not boot (console: $console)"
        exit 1
    fi
    if (($(elapsed) > limit)); then
        echo "== timeout after ${limit}s; last console lines:"
        tail -n 40 "$console" | tr -d '\r'
        echo "FAIL: the appliance did not finish its self-test and power off in ${limit}s"
        exit 1
    fi
    sleep 1
done
wait "$qemu_pid" || true
qemu_pid=
if [[ -s $work/qemu.err ]]; then
    sed 's/^/   qemu: /' "$work/qemu.err"
fi
total=$(elapsed)
[[ -n $result ]] || result=$(grep -a -m1 -o "HKMS-SELFTEST: \(PASS\|FAIL.*\)" "$console" || true)

echo "== self-test output"
grep -a -E "HKMS-SELFTEST|^hkms(d|-gateway) pid|^  (ok|warn|fail) |^result:" "$console" | tr -d '\r' | sed 's/^/   /' || true
if [[ -z $ready_at ]]; then
    grep -aq -e "Started.*hkmsd.service" -e "HKMS-SELFTEST: hkmsd ready" "$console" || {
        tail -n 40 "$console" | tr -d '\r'
        echo "FAIL: hkmsd never reported ready (console: $console)"
        exit 1
    }
fi
grep -aq -e "Started.*hkms-gateway.service" -e "HKMS-SELFTEST: gateway ready" "$console" || {
    grep -a "hkms-gateway" "$console" | tail -n 20 | tr -d '\r'
    echo "FAIL: hkms-gateway never reported ready (console: $console)"
    exit 1
}
case $result in
"HKMS-SELFTEST: PASS")
    echo "PASS: booted, hkmsd ready after ${ready_at:-?}s, hkms-gateway after ${gateway_at:-?}s," \
        "self-test passed, powered off after ${total}s"
    ;;
"")
    tail -n 40 "$console" | tr -d '\r'
    echo "FAIL: the machine stopped without a self-test result (console: $console)"
    exit 1
    ;;
*)
    echo "FAIL: ${result#HKMS-SELFTEST: } (console: $console)"
    exit 1
    ;;
esac
