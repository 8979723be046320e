//! The checks an HSM profile expects to be skipped: its `[certify.expected_skip]` table
//! (check id = reason). A profile without the table expects none.

use super::catalog::Outcome;
use super::check::{CheckResult, NOT_SELECTED};
use std::collections::BTreeMap;
use std::path::Path;

/// Expected skips by check id, with the profile's reason.
pub type ExpectedSkips = BTreeMap<String, String>;

/// Where profile `name` came from, and the skips it expects. The profile is read as hkmsd
/// reads it ([`crate::hsm::profile::load`]), which refuses a table naming a check that does
/// not exist or giving no reason.
pub fn expected_skips(dir: &Path, name: &str) -> Result<(String, ExpectedSkips), String> {
    let (profile, origin) = crate::hsm::profile::load_with_origin(dir, name)?;
    Ok((
        origin,
        crate::hsm::profile::certify_expected_skips(&profile).clone(),
    ))
}

/// Marks each skip as expected (with the profile's reason) or not.
pub fn apply(checks: &mut [CheckResult], expected: &ExpectedSkips) {
    // A check left out with --only was not tried: neither expected nor a surprise.
    let tried = |c: &CheckResult| c.result == Outcome::Skip && c.reason != NOT_SELECTED;
    for c in checks.iter_mut().filter(|c| tried(c)) {
        let reason = expected.get(&c.id);
        c.expected_skip = Some(reason.is_some());
        c.profile_reason = reason.cloned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_as_hkmsd_reads_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("x.toml"), text).unwrap();
        write("name = \"x\"\n[certify.expected_skip]\n\"rsa.oaep.sha256\" = \"SHA-1 only\"\n");
        let (origin, t) = expected_skips(dir.path(), "x").unwrap();
        assert!(origin.ends_with("x.toml"), "{origin}");
        assert_eq!(t.len(), 1);
        assert_eq!(t["rsa.oaep.sha256"], "SHA-1 only");
        write("name = \"x\"\n");
        assert!(expected_skips(dir.path(), "x").unwrap().1.is_empty());
        write("[certify.expected_skip]\n\"no.such\" = \"x\"\n");
        assert!(expected_skips(dir.path(), "x")
            .unwrap_err()
            .contains("no.such"));
    }

    #[test]
    fn profiles_and_certify_name_the_same_checks() {
        let certify: Vec<&str> = super::super::CHECKS
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| *id != "cleanup")
            .collect();
        assert_eq!(certify, crate::hsm::profile::CHECK_IDS);
    }
}
