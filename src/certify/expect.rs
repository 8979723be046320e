//! The checks an HSM profile expects to be skipped: its `[certify.expected_skip]` table
//! (check id = reason, or check id = a table with a `reason` and other fields such as its
//! source). A profile without the table expects none; ids that name no check are reported
//! and otherwise ignored.

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
    expected_skip: BTreeMap<String, Reason>,
}

/// The reason of one expected skip: text, or a table whose `reason` is the text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Reason {
    Text(String),
    Table { reason: String },
}

/// Where profile `name` came from, and the skips it expects.
pub fn expected_skips(dir: &Path, name: &str) -> Result<(String, ExpectedSkips), String> {
    let (text, origin) = crate::hsm::profile::text(dir, name)?;
    let (skips, unknown) = parse(&text).map_err(|e| format!("{origin}: {e}"))?;
    if !unknown.is_empty() {
        eprintln!(
            "hkms certify: warning: {origin}: [certify.expected_skip] names checks that do not \
             exist (ignored): {}",
            unknown.join(", ")
        );
    }
    Ok((origin, skips))
}

/// The expected skips, and the ids in the table that name no check.
fn parse(text: &str) -> Result<(ExpectedSkips, Vec<String>), String> {
    let p: ProfileCertify =
        toml::from_str(text).map_err(|e| format!("not a valid HSM profile: {e}"))?;
    let (known, unknown): (Vec<_>, Vec<_>) = p
        .certify
        .expected_skip
        .into_iter()
        .partition(|(id, _)| !title(id).is_empty());
    let skips = known
        .into_iter()
        .map(|(id, r)| match r {
            Reason::Text(t) | Reason::Table { reason: t } => (id, t),
        })
        .collect();
    Ok((skips, unknown.into_iter().map(|(id, _)| id).collect()))
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
        let (t, unknown) = parse(
            "name = \"x\"\n[quirks]\na = true\n[certify.expected_skip]\n\
             \"rsa.oaep.sha256\" = \"SHA-1 only\"\n\
             \"mldsa.44\" = { reason = \"no PQC\", source = \"https://example.com/doc\" }\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t["rsa.oaep.sha256"], "SHA-1 only");
        assert_eq!(t["mldsa.44"], "no PQC");
        assert!(unknown.is_empty());
        let (t, unknown) = parse("name = \"x\"\n").unwrap();
        assert!(t.is_empty() && unknown.is_empty());
        let (t, unknown) = parse("[certify.expected_skip]\n\"no.such\" = \"x\"\n").unwrap();
        assert!(t.is_empty());
        assert_eq!(unknown, ["no.such"]);
        assert!(parse("[certify.expected_skip]\n\"random\" = 3\n").is_err());
    }
}
