//! HSM profiles (`hsm-profiles/<name>.toml`): what hkms knows about one PKCS#11
//! implementation. A member names its profile (`profile = "softhsm2"`); the file is looked up
//! as `<profiles_dir>/<name>.toml` first, and the profiles shipped in `hsm-profiles/` are
//! built into the binary as a fallback.
//!
//! What reads which section:
//! - `[mechanisms]`: held against the token's mechanism list when a member connects
//!   ([`mechanisms::compare`]); a required mechanism missing refuses the member, other
//!   differences are warnings shown in `hkms status`;
//! - `[quirks]`: the pool's error handling on decrypt and unwrap, which algorithms a member
//!   offers, how the domain key is made and copied ([`Quirks`]);
//! - `[login] max_sessions`: a member configured with more sessions is warned about;
//! - `[calls]`: how the pool calls the member;
//! - `[seccomp]`: [`crate::hardening::profile`];
//! - `[certify] expected_skip`: the checks `hkms certify` expects this device to skip.
//!
//! `[notes]` and `[sources]` document the device for people.

pub mod mechanisms;
mod model;

pub use model::{
    Calls, Certify, EcCurve, GcmIv, Login, Mechanisms, OaepHash, Profile, Quirks, Seccomp,
    TemplateSupport, Trusted,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Profiles shipped with hkms.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "softhsm2",
        include_str!("../../../hsm-profiles/softhsm2.toml"),
    ),
    (
        "kryoptic",
        include_str!("../../../hsm-profiles/kryoptic.toml"),
    ),
    (
        "thales-luna",
        include_str!("../../../hsm-profiles/thales-luna.toml"),
    ),
    (
        "entrust-nshield",
        include_str!("../../../hsm-profiles/entrust-nshield.toml"),
    ),
    (
        "utimaco-securityserver",
        include_str!("../../../hsm-profiles/utimaco-securityserver.toml"),
    ),
    (
        "aws-cloudhsm",
        include_str!("../../../hsm-profiles/aws-cloudhsm.toml"),
    ),
    (
        "yubihsm2",
        include_str!("../../../hsm-profiles/yubihsm2.toml"),
    ),
    (
        "securosys-primus",
        include_str!("../../../hsm-profiles/securosys-primus.toml"),
    ),
];

/// The checks of `hkms certify`, by id: the only ids `[certify] expected_skip` may name.
pub const CHECK_IDS: &[&str] = &[
    "token.info",
    "token.mechanisms",
    "login.user",
    "login.bad_pin",
    "session.limit",
    "aes.generate",
    "aes.gcm",
    "aes.gcm.bad_tag",
    "aes.cbc",
    "aes.cbc_pad",
    "aes.ecb",
    "aes.key_wrap_pad",
    "domain.transfer",
    "unwrap.template",
    "wrap.template",
    "sensitive.unreadable",
    "nonextractable.unwrappable",
    "rsa.generate",
    "rsa.pkcs1",
    "rsa.pss",
    "rsa.oaep.sha1",
    "rsa.oaep.sha256",
    "ec.generate.p256",
    "ec.generate.p384",
    "ec.generate.secp256k1",
    "ecdsa",
    "hmac.sha256",
    "hmac.sha384",
    "hmac.sha512",
    "random",
    "concurrency.sessions",
    "recovery.sessions_closed",
    "recovery.relogin",
    "throughput",
    "mldsa.44",
    "mldsa.65",
    "mldsa.87",
    "mlkem.768",
    "mlkem.1024",
];

/// The names of the profiles built into hkms.
pub fn built_in_names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|(n, _)| *n)
}

/// The text of profile `name` and where it came from (a path, or "built-in profile NAME").
pub fn text(profiles_dir: &Path, name: &str) -> Result<(String, String), String> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(format!("HSM profile name {name:?} is not valid"));
    }
    let path = profiles_dir.join(format!("{name}.toml"));
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok((t, path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match BUILT_IN.iter().find(|(n, _)| *n == name) {
                Some((_, t)) => Ok((t.to_string(), format!("built-in profile {name}"))),
                None => Err(format!(
                    "HSM profile {name:?} not found: no {} and no built-in profile",
                    path.display()
                )),
            }
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Profile `name`, parsed and checked: every mechanism it names is known (or a hexadecimal
/// vendor value) and every expected certify skip names a check of [`CHECK_IDS`] with a
/// reason. A profile that leaves `name` out takes the one it was looked up by.
pub fn load(profiles_dir: &Path, name: &str) -> Result<Profile, String> {
    load_with_origin(profiles_dir, name).map(|(p, _)| p)
}

/// [`load`], with where the profile came from (a path, or "built-in profile NAME").
pub fn load_with_origin(profiles_dir: &Path, name: &str) -> Result<(Profile, String), String> {
    let (text, origin) = text(profiles_dir, name)?;
    let profile = parse(&text, name).map_err(|e| format!("{origin}: {e}"))?;
    Ok((profile, origin))
}

fn parse(text: &str, name: &str) -> Result<Profile, String> {
    let mut p: Profile =
        toml::from_str(text).map_err(|e| format!("not a valid HSM profile: {e}"))?;
    if p.name.is_empty() {
        p.name = name.to_owned();
    }
    let named = p.mechanisms.required.iter().chain(&p.mechanisms.optional);
    if let Some(bad) = named.into_iter().find(|m| mechanisms::value(m).is_none()) {
        return Err(format!(
            "[mechanisms] names {bad:?}, which is neither a known CKM_* name nor a 0x... value"
        ));
    }
    for (check, reason) in &p.certify.expected_skip {
        if !CHECK_IDS.contains(&check.as_str()) {
            return Err(format!(
                "[certify.expected_skip] {check:?} is not a certify check id"
            ));
        }
        if reason.trim().is_empty() {
            return Err(format!("[certify.expected_skip] {check} needs a reason"));
        }
    }
    Ok(p)
}

/// The certify checks `profile` expects to skip on its device, with the reason of each.
pub fn certify_expected_skips(profile: &Profile) -> &BTreeMap<String, String> {
    &profile.certify.expected_skip
}

/// The `[calls]` section of profile `name`, for a member that loads `module`. Calls run
/// inline only for the library the profile describes (same file name): a member that names
/// no profile gets the default one, and must not inherit its in-process shortcut when it
/// loads another vendor's library.
pub fn calls(profiles_dir: &Path, name: &str, module: &Path) -> Result<Calls, String> {
    Ok(calls_for(&load(profiles_dir, name)?, module))
}

/// [`calls`] of a loaded profile.
pub fn calls_for(profile: &Profile, module: &Path) -> Calls {
    let same_library = profile
        .module
        .as_deref()
        .and_then(Path::file_name)
        .is_some_and(|f| module.file_name() == Some(f));
    Calls {
        inline: profile.calls.inline && same_library,
        public_working_keys: profile.calls.public_working_keys && same_library,
    }
}

/// The `[quirks]` of profile `name`.
pub fn quirks(profiles_dir: &Path, name: &str) -> Result<Quirks, String> {
    Ok(load(profiles_dir, name)?.quirks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_profiles_own_library_runs_inline_and_a_vendor_file_overrides() {
        let none = Path::new("/nonexistent");
        let softhsm = Path::new("/usr/lib/softhsm/libsofthsm2.so");
        assert!(calls(none, "softhsm2", softhsm).unwrap().inline);
        assert!(
            calls(none, "softhsm2", softhsm)
                .unwrap()
                .public_working_keys
        );
        assert!(
            !calls(none, "kryoptic", softhsm)
                .unwrap()
                .public_working_keys
        );
        assert!(
            calls(
                none,
                "softhsm2",
                Path::new("/opt/vendor/lib/libcs_pkcs11.so")
            )
            .map(|c| !c.inline && !c.public_working_keys)
            .unwrap(),
            "a member left on the default profile with another library"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("softhsm2.toml"), "name = \"softhsm2\"\n").unwrap();
        assert!(!calls(dir.path(), "softhsm2", softhsm).unwrap().inline);
        std::fs::write(dir.path().join("bad.toml"), "[calls]\nfast = true\n").unwrap();
        assert!(calls(dir.path(), "bad", softhsm)
            .unwrap_err()
            .contains("fast"));
        assert!(text(dir.path(), "../etc/passwd").is_err());
    }

    #[test]
    fn quirks_are_read_from_the_profile_and_unknown_ones_refused() {
        let none = Path::new("/nonexistent");
        let soft = quirks(none, "softhsm2").unwrap();
        assert!(soft.oaep_allows(OaepHash::Sha1) && !soft.oaep_allows(OaepHash::Sha256));
        assert_eq!(soft.general_error_on_bad_tag, Some(true));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hsm.toml"), "name = \"hsm\"\n").unwrap();
        let q = quirks(dir.path(), "hsm").unwrap();
        assert!(q.oaep_allows(OaepHash::Sha256) && q.general_error_is_bad_input());
        std::fs::write(
            dir.path().join("typo.toml"),
            "[quirks]\noaep_sha1_onyl = true\n",
        )
        .unwrap();
        assert!(quirks(dir.path(), "typo")
            .unwrap_err()
            .contains("oaep_sha1_onyl"));
        std::fs::write(
            dir.path().join("old.toml"),
            "[quirks]\noaep_sha1_only = true\n",
        )
        .unwrap();
        assert!(!quirks(dir.path(), "old")
            .unwrap()
            .oaep_allows(OaepHash::Sha256));
    }

    #[test]
    fn every_built_in_profile_loads_with_known_check_ids() {
        let none = Path::new("/nonexistent");
        for name in built_in_names() {
            let p = load(none, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.name, name);
            assert!(!p.vendor.is_empty() && p.hardware.is_some(), "{name}");
            assert!(!p.mechanisms.required.is_empty(), "{name}");
            for id in certify_expected_skips(&p).keys() {
                assert!(CHECK_IDS.contains(&id.as_str()), "{name}: {id}");
            }
        }
    }

    #[test]
    fn bad_mechanisms_and_check_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |n: &str, t: &str| std::fs::write(dir.path().join(format!("{n}.toml")), t);
        write("m", "[mechanisms]\nrequired = [\"CKM_AES_GCMM\"]\n").unwrap();
        assert!(load(dir.path(), "m").unwrap_err().contains("CKM_AES_GCMM"));
        write("c", "[certify.expected_skip]\n\"aes.xts\" = \"no XTS\"\n").unwrap();
        assert!(load(dir.path(), "c").unwrap_err().contains("aes.xts"));
        write("r", "[certify.expected_skip]\n\"aes.gcm\" = \" \"\n").unwrap();
        assert!(load(dir.path(), "r").unwrap_err().contains("reason"));
        write("v", "[mechanisms]\noptional = [\"0x80000010\"]\n").unwrap();
        assert_eq!(load(dir.path(), "v").unwrap().name, "v");
    }
}
