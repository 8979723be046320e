#!/usr/bin/env bash
# Builds Kryoptic (a PKCS#11 software token written in Rust) from its crates.io source and
# installs its module, the second PKCS#11 implementation the tests run beside SoftHSM2:
#
#   /usr/local/lib/hkms/kryoptic/libkryoptic_pkcs11.so   the PKCS#11 module
#   /usr/local/lib/hkms/kryoptic/openssl                 OpenSSL 3.5's command (ML-DSA, ML-KEM)
#
# Kryoptic's post-quantum mechanisms (ML-DSA, ML-KEM, SLH-DSA) need OpenSSL 3.5 or later and
# Debian 12 ships 3.0, so the module is linked statically against OpenSSL 3.5 built from the
# sources in crates.io's openssl-src crate (Kryoptic's own build does that when
# KRYOPTIC_OPENSSL_SOURCES names a source tree). Both crates are pinned and their checksums
# checked against the values below (cargo also checks them against the registry index).
#
# The build is cached under $HKMS_BUILD_CACHE (default /var/cache/hkms-build as root, else
# ~/.cache/hkms/build), keyed by the versions and features: a second run copies the cached
# files and builds nothing. Needs cargo, a C compiler, make, perl, libclang (bindgen) and
# SQLite's headers; the Debian packages are installed if missing and we are root.
#
# Usage: scripts/install-kryoptic.sh [--prefix DIR]
set -euo pipefail

kryoptic_version=1.5.4
kryoptic_sha256=21b64b7679ce821f19a7a48b7e40146f26fbb9daa64ee2acb6376788a26d7ae8
openssl_src_version=300.5.5+3.5.5
openssl_src_sha256=3f1787d533e03597a7934fd0a765f0d28e94ecc5fb7789f8053b1e699a56f709
features=standard,pqc

prefix=/usr/local/lib/hkms/kryoptic
if [[ ${1:-} == --prefix ]]; then
    prefix=$2
fi
if [[ $(id -u) -eq 0 ]]; then
    cache_root=${HKMS_BUILD_CACHE:-/var/cache/hkms-build}
else
    cache_root=${HKMS_BUILD_CACHE:-$HOME/.cache/hkms/build}
fi
key="kryoptic-${kryoptic_version}-openssl-${openssl_src_version}-${features//,/-}"
cache="$cache_root/$key"

install_files() {
    local sudo_cmd=()
    if [[ ! -w $(dirname "$prefix") && $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" mkdir -p "$prefix"
    for f in libkryoptic_pkcs11.so openssl BUILD-INFO; do
        if ! cmp -s "$cache/$f" "$prefix/$f"; then
            "${sudo_cmd[@]}" install -m 0755 "$cache/$f" "$prefix/$f.new"
            "${sudo_cmd[@]}" mv -f "$prefix/$f.new" "$prefix/$f"
        fi
    done
    echo "Kryoptic $kryoptic_version ($features, OpenSSL ${openssl_src_version#*+}) in $prefix"
}

if [[ -f $cache/BUILD-INFO ]]; then
    install_files
    exit 0
fi

# Build dependencies.
packages=(build-essential perl libclang-dev libsqlite3-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "Installing: ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "error: cargo is required" >&2; exit 1; }

mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
flock 9
if [[ -f $cache/BUILD-INFO ]]; then
    install_files
    exit 0
fi
start=$(date +%s)
work=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Fetch both crates through cargo (it checks each .crate against the registry index).
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<EOF
[package]
name = "hkms-kryoptic-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
kryoptic = { version = "=$kryoptic_version", default-features = false }
openssl-src = "=$openssl_src_version"

[workspace]
EOF
touch "$work/fetch/src/lib.rs"
(cd "$work/fetch" && cargo fetch --quiet)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
crate_file() {
    local f
    f=$(ls -t "$cargo_home"/registry/cache/*/"$1-$2.crate" | head -1)
    echo "$f"
}
check_sha() {
    local f
    f=$(crate_file "$1" "$2")
    echo "$3  $f" | sha256sum --quiet -c - || { echo "error: $f: checksum mismatch" >&2; exit 1; }
    echo "$f"
}
kcrate=$(check_sha kryoptic "$kryoptic_version" "$kryoptic_sha256")
ocrate=$(check_sha openssl-src "$openssl_src_version" "$openssl_src_sha256")
tar -xzf "$kcrate" -C "$work"
tar -xzf "$ocrate" -C "$work"
ossl_src="$work/openssl-src-$openssl_src_version/openssl"

# OpenSSL 3.5, static. Kryoptic's own build would configure it when the source tree has no
# libcrypto.a yet, but the tree openssl-src ships is trimmed (no legacy provider, no
# tests), so it is configured here with Kryoptic's options plus those the trimmed tree
# needs, and Kryoptic's build finds libcrypto.a ready. The same build gives the
# `openssl` command, linked statically too. -fPIC: libcrypto.a goes into a shared object.
# Its output goes to a log, shown only when the build fails.
echo "Building OpenSSL ${openssl_src_version#*+} (static), then Kryoptic $kryoptic_version"
if ! (
    cd "$ossl_src"
    nice -n 19 ./Configure no-shared no-module no-legacy no-deprecated no-aria no-argon2 \
        no-atexit no-des no-dsa no-cast no-mdc2 no-ec2m no-rc2 no-rc4 no-rc5 no-rmd160 \
        no-seed no-sm2 no-sm3 no-sm4 no-docs no-tests enable-ec_nistp_64_gcc_128 -fPIC
    # Generated headers first: with several goals at once, make can compile the apps
    # before them, against the system's OpenSSL 3.0 headers.
    nice -n 19 make build_generated
    nice -n 19 make -j"$(nproc)" build_libs
    nice -n 19 make -j"$(nproc)" build_programs
) >"$work/openssl-build.log" 2>&1; then
    tail -n 40 "$work/openssl-build.log" >&2
    echo "error: building OpenSSL failed" >&2
    exit 1
fi
# Without `dynamic`, nothing turns on ossl's own OpenSSL bindings (ossl-sys): ask for them
# by name; they link the static libcrypto.a of KRYOPTIC_OPENSSL_SOURCES.
(
    cd "$work/kryoptic-$kryoptic_version"
    export KRYOPTIC_OPENSSL_SOURCES="$ossl_src"
    export CARGO_TARGET_DIR="$work/target"
    nice -n 19 cargo build --quiet --release --locked --no-default-features \
        --features "$features,ossl/ossl-sys"
)
mkdir -p "$work/out"
cp "$work/target/release/libkryoptic_pkcs11.so" "$ossl_src/apps/openssl" "$work/out/"
elapsed=$(($(date +%s) - start))
{
    echo "kryoptic $kryoptic_version sha256 $kryoptic_sha256"
    echo "openssl-src $openssl_src_version sha256 $openssl_src_sha256"
    echo "features $features"
    echo "built $(date -u +%FT%TZ) in ${elapsed}s"
} >"$work/out/BUILD-INFO"
rm -rf "$cache"
mv "$work/out" "$cache"
echo "Built Kryoptic in ${elapsed}s (cached in $cache)"
install_files
