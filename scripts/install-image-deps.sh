#!/usr/bin/env bash
# Installs what the systemd unit tests, the Debian package and the appliance image need on
# a Debian 12 (bookworm) machine, idempotently:
#   systemd (systemd-analyze, systemd-sysusers, systemd-tmpfiles), dpkg-dev tools,
#   debootstrap, GRUB for BIOS (grub-pc-bin), e2fsprogs, fdisk (sfdisk), mtools, and
#   qemu-system-x86 from bookworm-backports (it must match the backports qemu-utils).
# Run as root. Packages already installed are left alone.
#
#   scripts/install-image-deps.sh               everything (image build and boot test)
#   scripts/install-image-deps.sh --units-only  systemd only (tests/systemd_units.rs)
set -euo pipefail
units_only=0
[[ ${1:-} == --units-only ]] && units_only=1

if [[ $(id -u) != 0 ]]; then
    echo "run as root (installs packages)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
wanted=(systemd)
((units_only)) || wanted+=(dpkg-dev debootstrap grub-pc-bin grub2-common e2fsprogs fdisk \
    mtools xz-utils python3)
for p in "${wanted[@]}"; do
    have "$p" || need+=("$p")
done
backports=()
if ((!units_only)); then
    for p in qemu-system-x86 qemu-system-common qemu-system-data seabios qemu-utils; do
        have "$p" || backports+=("$p")
    done
fi
# qemu-system-x86 must come from the same release as qemu-utils: use backports when
# qemu-utils is from there (or not installed yet).
utils_version=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [[ ${#backports[@]} -gt 0 && ( -z $utils_version || $utils_version == *bpo12* ) ]]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "== enabling bookworm-backports"
        cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
fi

if [[ ${#need[@]} -eq 0 && ${#backports[@]} -eq 0 ]]; then
    echo "== image dependencies present"
    exit 0
fi
apt-get update -qq
if [[ ${#need[@]} -gt 0 ]]; then
    echo "== installing ${need[*]}"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ ${#backports[@]} -gt 0 ]]; then
    echo "== installing ${backports[*]} (bookworm-backports)"
    if [[ -z $utils_version || $utils_version == *bpo12* ]]; then
        apt-get install -y -qq --no-install-recommends -t bookworm-backports "${backports[@]}" >/dev/null
    else
        apt-get install -y -qq --no-install-recommends "${backports[@]}" >/dev/null
    fi
fi
echo "== image dependencies installed"
