//! HSM profiles (`hsm-profiles/<name>.toml`): what hkms knows about one PKCS#11
//! implementation. A member names its profile (`profile = "softhsm2"`); the file is looked up
//! as `<profiles_dir>/<name>.toml` first, and the profiles shipped in `hsm-profiles/` are
//! built into the binary as a fallback.
//!
//! Sections read by the code: `[calls]` here (how the pool calls the member) and `[seccomp]`
//! in [`crate::hardening::profile`]. The other sections document the device.

use serde::Deserialize;
use std::path::Path;

/// Profiles shipped with hkms.
const BUILT_IN: &[(&str, &str)] = &[("softhsm2", include_str!("../../hsm-profiles/softhsm2.toml"))];

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

#[derive(Debug, Default, Deserialize)]
struct CallsOnly {
    /// The library the profile describes.
    #[serde(default)]
    module: Option<std::path::PathBuf>,
    #[serde(default)]
    calls: Calls,
}

/// `[calls]`: how the pool runs calls on members of this profile.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calls {
    /// The library does its work in this process on the host's CPU and answers in
    /// microseconds (a software token): calls run on the async worker that needs them,
    /// without a hand-off to a blocking thread and back. Such calls have no deadline (a
    /// call cannot be abandoned while it runs on the worker), so a library that talks to
    /// a device or a network must leave this off.
    #[serde(default)]
    pub inline: bool,
}

/// The `[calls]` section of profile `name`, for a member that loads `module`. Calls run
/// inline only for the library the profile describes (same file name): a member that names
/// no profile gets the default one, and must not inherit its in-process shortcut when it
/// loads another vendor's library.
pub fn calls(profiles_dir: &Path, name: &str, module: &Path) -> Result<Calls, String> {
    let (text, origin) = text(profiles_dir, name)?;
    let file: CallsOnly =
        toml::from_str(&text).map_err(|e| format!("{origin}: not a valid HSM profile: {e}"))?;
    let same_library = file
        .module
        .as_deref()
        .and_then(Path::file_name)
        .is_some_and(|f| module.file_name() == Some(f));
    Ok(Calls {
        inline: file.calls.inline && same_library,
    })
}

#[derive(Debug, Default, Deserialize)]
struct QuirksOnly {
    #[serde(default)]
    quirks: Quirks,
}

/// `[quirks]` that the code acts on (the section also documents others).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct Quirks {
    /// RSA-OAEP works only with SHA-1 and MGF1-SHA1: imported key material must come
    /// wrapped with `RSAES_OAEP_SHA_1`.
    #[serde(default)]
    pub oaep_sha1_only: bool,
    /// The security officer cannot create a public key with `CKA_TRUSTED` (Kryoptic answers
    /// `CKR_ATTRIBUTE_TYPE_INVALID`), so the device can receive the domain key but never give
    /// it: `hkms init` and `hkms hsm add` take the domain key from another member.
    #[serde(default)]
    pub no_trusted_keys: bool,
}

/// The `[quirks]` of profile `name`.
pub fn quirks(profiles_dir: &Path, name: &str) -> Result<Quirks, String> {
    let (text, origin) = text(profiles_dir, name)?;
    let file: QuirksOnly =
        toml::from_str(&text).map_err(|e| format!("{origin}: not a valid HSM profile: {e}"))?;
    Ok(file.quirks)
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
            calls(
                none,
                "softhsm2",
                Path::new("/opt/vendor/lib/libcs_pkcs11.so")
            )
            .map(|c| !c.inline)
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
    fn quirks_are_read_from_the_profile() {
        let none = Path::new("/nonexistent");
        assert!(quirks(none, "softhsm2").unwrap().oaep_sha1_only);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hsm.toml"), "[quirks]\nother = 1\n").unwrap();
        assert!(!quirks(dir.path(), "hsm").unwrap().oaep_sha1_only);
    }
}
