#!/usr/bin/env bash
# Builds the hkms Debian package for offline installs: release binaries (hkmsd, hkms, and
# hkms-gateway when the source tree has it),
# systemd units with their sysusers.d/tmpfiles.d entries, the HSM drop-ins, HSM profiles
# and the example configuration.
#
#   scripts/package-deb.sh [OUTPUT_DIR]      (default: target/debian)
#
# Environment: CARGO_TARGET_DIR as for cargo; HKMS_SKIP_BUILD=1 packages the binaries
# already in the target directory.
# Install with `apt install ./hkms_<version>_<arch>.deb` (or dpkg -i); then write
# /etc/hkms/hkmsd.toml and the PIN files and `systemctl enable --now hkmsd`.
# Prints the path of the package on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-$root/target/debian}
target=${CARGO_TARGET_DIR:-$root/target}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
bins=(hkmsd hkms)
[[ -f src/bin/hkms-gateway.rs ]] && bins+=(hkms-gateway)
if [[ ${HKMS_SKIP_BUILD:-0} != 1 ]]; then
    echo "== building release binaries: ${bins[*]}" >&2
    cargo build --release --locked --quiet "${bins[@]/#/--bin=}"
fi
for b in hkmsd hkms; do
    [[ -x $target/release/$b ]] || { echo "missing $target/release/$b" >&2; exit 1; }
done
# The test clock (src/clock.rs) exists in debug builds only: a packaged hkmsd must not
# know the variable that would move its clock.
if grep -aq HKMS_TEST_CLOCK_FILE "$target/release/hkmsd"; then
    echo "$target/release/hkmsd contains the test clock; packages are release builds only" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/hkms
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" \
    "$pkg/usr/lib/sysusers.d" "$pkg/usr/lib/tmpfiles.d" \
    "$pkg/usr/share/hkms/hsm-profiles" "$pkg/usr/share/hkms/systemd/hkmsd.service.d" \
    "$pkg/usr/share/doc/hkms/examples"

install -m 0755 -s "$target/release/hkmsd" "$target/release/hkms" "$pkg/usr/bin/"
install -m 0644 systemd/hkmsd.service "$pkg/lib/systemd/system/"
if [[ -x $target/release/hkms-gateway ]]; then
    install -m 0755 -s "$target/release/hkms-gateway" "$pkg/usr/bin/"
    install -m 0644 systemd/hkms-gateway.service systemd/hkms-gateway.socket \
        "$pkg/lib/systemd/system/"
else
    # No gateway binary yet: ship its unit as a reference only.
    install -m 0644 systemd/hkms-gateway.service systemd/hkms-gateway.socket \
        "$pkg/usr/share/hkms/systemd/"
fi
install -m 0644 systemd/sysusers.d/hkms.conf "$pkg/usr/lib/sysusers.d/hkms.conf"
install -m 0644 systemd/tmpfiles.d/hkms.conf "$pkg/usr/lib/tmpfiles.d/hkms.conf"
install -m 0644 systemd/hkmsd.service.d/*.conf "$pkg/usr/share/hkms/systemd/hkmsd.service.d/"
install -m 0644 hsm-profiles/*.toml "$pkg/usr/share/hkms/hsm-profiles/"
install -m 0644 scripts/hkmsd.example.toml "$pkg/usr/share/doc/hkms/examples/hkmsd.toml"
if [[ -f scripts/hkms-gateway.example.toml ]]; then
    install -m 0644 scripts/hkms-gateway.example.toml "$pkg/usr/share/doc/hkms/examples/gateway.toml"
fi
[[ -f README.md ]] && install -m 0644 README.md "$pkg/usr/share/doc/hkms/README.md"
cat >"$pkg/usr/share/doc/hkms/copyright" <<TXT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hkms
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
TXT

installed_kib=$(du -sk "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<TXT
Package: hkms
Version: $version
Architecture: $arch
Maintainer: hkms maintainers <hkms@localhost>
Section: admin
Priority: optional
Installed-Size: $installed_kib
Depends: libc6 (>= 2.36), libssl3 (>= 3.0), systemd (>= 247)
Recommends: softhsm2
Description: key management service that keeps every key inside HSMs
 hkmsd keeps every key inside hardware security modules (PKCS#11) and serves
 key management and cryptography over gRPC on a Unix socket; hkms is its
 command-line client. The daemon runs as the unprivileged user hkms under a
 strict systemd sandbox and its own seccomp allow-list.
TXT
cp packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$pkg/DEBIAN/"
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/hkms_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
