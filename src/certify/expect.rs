//! The checks an HSM profile expects to be skipped: its `[certify.expected_skip]` table
//! (check id = reason). A profile without the table expects none.

use super::catalog::{title, Outcome};
use super::check::{CheckResult, NOT_SELECTED};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Expected skips by check id, with the profile's reason.
pub type ExpectedSkips = BTreeMap<String, String>;

#[derive(Debug, Default, Deserialize)]
struct ProfileCertify {
    #[serde(default)]
    certify: Certify,
}

#[derive(Debug, Default, Deserialize)]
struct Certify {
    #[serde(default)]
    expected_skip: ExpectedSkips,
}

/// Where profile `name` came from, and the skips it expects.
pub fn expected_skips(dir: &Path, name: &str) -> Result<(String, ExpectedSkips), String> {
    let (text, origin) = crate::hsm::profile::text(dir, name)?;
    let parsed = parse(&text).map_err(|e| format!("{origin}: {e}"))?;
    Ok((origin, parsed))
}

fn parse(text: &str) -> Result<ExpectedSkips, String> {
    let p: ProfileCertify =
        toml::from_str(text).map_err(|e| format!("not a valid HSM profile: {e}"))?;
    let unknown: Vec<&String> = p
        .certify
        .expected_skip
        .keys()
        .filter(|id| title(id).is_empty())
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "[certify.expected_skip] names checks that do not exist: {unknown:?}"
        ));
    }
    Ok(p.certify.expected_skip)
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
    fn the_table_is_read_and_may_be_absent() {
        let t = parse(
            "name = \"x\"\n[quirks]\na = true\n[certify.expected_skip]\n\
             \"rsa.oaep.sha256\" = \"SHA-1 only\"\n\"mldsa.44\" = \"no PQC\"\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t["rsa.oaep.sha256"], "SHA-1 only");
        assert!(parse("name = \"x\"\n").unwrap().is_empty());
        assert!(parse("[certify.expected_skip]\n\"no.such\" = \"x\"\n")
            .unwrap_err()
            .contains("no.such"));
    }
}
