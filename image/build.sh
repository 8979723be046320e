#!/usr/bin/env bash
# Builds the hkms appliance disk image: Debian 12 minbase with a kernel, the hkms package,
# SoftHSM2 for the demo profile, and first-boot units that create the tokens and the
# instance. BIOS boot through GRUB on a GPT disk; no network needed at run time.
#
#   image/build.sh                 -> target/image/hkms-appliance.qcow2
#
# Environment:
#   HKMS_DEB=path.deb       use this package instead of building one (scripts/package-deb.sh)
#   HKMS_IMAGE_DIR=dir      output directory (default target/image)
#   HKMS_IMAGE_CACHE=dir    cache of the debootstrapped base (default target/image-cache)
#   DEBIAN_MIRROR=url       Debian mirror (default http://deb.debian.org/debian)
# Needs root (chroot, loop-free image assembly) and scripts/install-image-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=${HKMS_IMAGE_DIR:-$repo/target/image}
cache=${HKMS_IMAGE_CACHE:-$repo/target/image-cache}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
disk_mib=2048
started=$(date +%s)
step() { echo "== [$(($(date +%s) - started))s] $*"; }

[[ $(id -u) == 0 ]] || { echo "image/build.sh must run as root" >&2; exit 1; }
bash scripts/install-image-deps.sh
mkdir -p "$out" "$cache"

deb=${HKMS_DEB:-}
if [[ -z $deb ]]; then
    step "building the hkms package"
    deb=$(bash scripts/package-deb.sh "$out" | tail -n1)
fi
[[ -f $deb ]] || { echo "no package at $deb" >&2; exit 1; }

work=$(mktemp -d /var/tmp/hkms-image.XXXXXX)
rootfs=$work/rootfs
mounts=()
cleanup() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# 1. The Debian base, cached by its package list.
packages=systemd-sysv,udev,kmod,e2fsprogs,linux-image-amd64,initramfs-tools,softhsm2,libssl3,openssl,ca-certificates
key=$(printf '%s %s %s' "$suite" "$packages" "$mirror" | sha256sum | cut -c1-16)
base=$cache/rootfs-$suite-$key.tar
if [[ ! -f $base ]]; then
    step "debootstrap $suite (minbase + kernel + SoftHSM2)"
    debootstrap --variant=minbase --include="$packages" "$suite" "$work/base" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log"; exit 1; }
    rm -rf "$work/base/var/cache/apt/archives/"*.deb "$work/base/var/lib/apt/lists/"*
    tar -C "$work/base" --numeric-owner -cf "$base.tmp" .
    mv "$base.tmp" "$base"
    rm -rf "$work/base"
else
    step "using cached base $(basename "$base")"
fi
mkdir "$rootfs"
tar -C "$rootfs" --numeric-owner -xf "$base"

# 2. The hkms package and the appliance configuration, inside the root file system.
step "installing $(basename "$deb")"
for m in proc sys dev; do
    mount --rbind "/$m" "$rootfs/$m"
    mounts+=("$rootfs/$m")
done
cp "$deb" "$rootfs/tmp/hkms.deb"
chroot "$rootfs" dpkg -i /tmp/hkms.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; exit 1; }
rm "$rootfs/tmp/hkms.deb"

files=$repo/image/files
install -m 0640 -g "$(chroot "$rootfs" getent group hkms | cut -d: -f3)" \
    "$files/hkmsd.toml" "$files/softhsm2.conf" "$files/gateway.toml" "$rootfs/etc/hkms/"
# The gateway's user id, created by the package, may relay application requests.
gateway_uid=$(chroot "$rootfs" id -u hkms-gateway)
printf '\n[access]\n# hkms-gateway (user hkms-gateway) relays application requests.\ngateway_uids = [%s]\n' \
    "$gateway_uid" >>"$rootfs/etc/hkms/hkmsd.toml"
install -d -m 0755 "$rootfs/usr/lib/hkms"
install -m 0755 "$files/firstboot-tokens.sh" "$files/firstboot-gateway.sh" \
    "$files/selftest.sh" "$rootfs/usr/lib/hkms/"
install -m 0644 "$files/hkms-firstboot.service" "$files/hkms-init.service" \
    "$files/hkms-gateway-firstboot.service" "$files/hkms-selftest.service" \
    "$rootfs/etc/systemd/system/"
install -m 0644 "$files/99-hkms-selftest.rules" "$rootfs/etc/udev/rules.d/"
chroot "$rootfs" systemctl enable hkmsd.service hkms-firstboot.service hkms-init.service \
    hkms-gateway-firstboot.service hkms-gateway.socket hkms-gateway.service >/dev/null 2>&1

echo hkms >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 hkms\n' >"$rootfs/etc/hosts"
uuid=$(cat /proc/sys/kernel/random/uuid)
printf 'UUID=%s / ext4 defaults,errors=remount-ro 0 1\n' "$uuid" >"$rootfs/etc/fstab"
# A fresh machine id on first boot; no root password (log in through the console is off).
: >"$rootfs/etc/machine-id"
chroot "$rootfs" passwd -l root >/dev/null
# No network at run time, no package caches in the image.
rm -rf "$rootfs/var/cache/apt/"*.bin "$rootfs/var/lib/apt/lists/"*

kernel=$(cd "$rootfs/boot" && ls vmlinuz-* | sort -V | tail -n1)
initrd=initrd.img-${kernel#vmlinuz-}
[[ -f $rootfs/boot/$initrd ]] || { echo "no initramfs for $kernel" >&2; exit 1; }
install -d "$rootfs/boot/grub"
cat >"$rootfs/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
menuentry "hkms appliance" {
    search --no-floppy --fs-uuid --set=root $uuid
    linux /boot/$kernel root=UUID=$uuid ro console=tty0 console=ttyS0,115200 systemd.show_status=1
    initrd /boot/$initrd
}
CFG
for m in "${mounts[@]}"; do umount -l "$m"; done
mounts=()

# 3. The disk: GPT with a BIOS boot partition (GRUB core) and the ext4 root file system,
#    assembled without loop devices.
step "assembling the disk"
# 1 MiB GPT and BIOS boot partition at the start, 1 MiB left for the backup GPT at the end.
root_mib=$((disk_mib - 3))
truncate -s "${root_mib}M" "$work/root.img"
mkfs.ext4 -q -F -L hkms-root -U "$uuid" -d "$rootfs" "$work/root.img" "${root_mib}M"
truncate -s "${disk_mib}M" "$work/disk.raw"
sfdisk -q "$work/disk.raw" <<PARTS
label: gpt
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name=bios
start=4096, size=${root_mib}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
PARTS
dd if="$work/root.img" of="$work/disk.raw" bs=1M seek=2 conv=notrunc,sparse status=none

grub_dir=/usr/lib/grub/i386-pc
install -d "$work/grub"
cat >"$work/grub/early.cfg" <<CFG
search --no-floppy --fs-uuid --set=root $uuid
set prefix=(\$root)/boot/grub
CFG
grub-mkimage -O i386-pc -d "$grub_dir" -c "$work/grub/early.cfg" -p /boot/grub \
    -o "$work/grub/core.img" \
    biosdisk part_gpt ext2 search search_fs_uuid normal linux configfile echo serial terminal test
cp "$grub_dir/boot.img" "$work/grub/"
# grub-bios-setup guesses a root device from the file system holding -d; give it a small
# loop-mounted scratch file system (it cannot work from a directory on an unknown disk).
truncate -s 4M "$work/scratch.img"
mkfs.ext2 -q -F "$work/scratch.img"
install -d "$work/scratch"
mount -o loop "$work/scratch.img" "$work/scratch"
mounts+=("$work/scratch")
cp "$work/grub/boot.img" "$work/grub/core.img" "$work/scratch/"
"$grub_dir/grub-bios-setup" -d "$work/scratch" "$work/disk.raw" 2>"$work/grub.log" ||
    { cat "$work/grub.log"; exit 1; }
umount "$work/scratch"
mounts=()

step "converting to qcow2"
qemu-img convert -O qcow2 "$work/disk.raw" "$out/hkms-appliance.qcow2.tmp"
mv "$out/hkms-appliance.qcow2.tmp" "$out/hkms-appliance.qcow2"
step "image ready: $out/hkms-appliance.qcow2 ($(du -h "$out/hkms-appliance.qcow2" | cut -f1))"
