//! Tags on keys: up to [`MAX_TAGS`] key-value pairs an operator attaches to find and sort
//! keys (`ListKeys` filters by them). Tags carry no authority: policies never read them.

use super::record::change_key;
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::store::records::{KeyRecord, TagRecord};

/// Most tags on one key.
pub const MAX_TAGS: usize = 20;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;
/// Tag key prefixes reserved for the system.
const RESERVED: [&str; 2] = ["acs:", "hkms:"];

/// Checks one tag: a key of 1..128 characters not starting with a reserved prefix, a value
/// of up to 256 characters, neither with control characters.
pub fn check(tag: &TagRecord) -> Result<(), KmsError> {
    let printable = |s: &str| !s.chars().any(char::is_control);
    let key_ok = (1..=MAX_TAG_KEY).contains(&tag.key.chars().count())
        && printable(&tag.key)
        && !RESERVED.iter().any(|p| tag.key.starts_with(p));
    if !key_ok {
        return Err(KmsError::invalid(format!(
            "tag key {:?} must be 1 to {MAX_TAG_KEY} printable characters, not starting with \
             \"acs:\" or \"hkms:\"",
            tag.key
        )));
    }
    if tag.value.chars().count() > MAX_TAG_VALUE || !printable(&tag.value) {
        return Err(KmsError::invalid(format!(
            "the value of tag {:?} must be at most {MAX_TAG_VALUE} printable characters",
            tag.key
        )));
    }
    Ok(())
}

/// Checks a set of tags given together: each valid, no key twice, at most [`MAX_TAGS`].
pub fn check_all(tags: &[TagRecord]) -> Result<(), KmsError> {
    for (i, t) in tags.iter().enumerate() {
        check(t)?;
        if tags[..i].iter().any(|o| o.key == t.key) {
            return Err(KmsError::invalid(format!(
                "tag key {:?} is given twice",
                t.key
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(KmsError::invalid(format!(
            "a key carries at most {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

/// Whether `have` carries every tag of `wanted` (a wanted tag with an empty value matches
/// any value of its key).
pub fn carries(have: &[TagRecord], wanted: &[TagRecord]) -> bool {
    wanted.iter().all(|w| {
        have.iter()
            .any(|h| h.key == w.key && (w.value.is_empty() || h.value == w.value))
    })
}

/// `tags` with `new` set (a key already present gets the new value), sorted by key.
fn merged(tags: &[TagRecord], new: &[TagRecord]) -> Vec<TagRecord> {
    let mut out: Vec<TagRecord> = tags
        .iter()
        .filter(|t| !new.iter().any(|n| n.key == t.key))
        .cloned()
        .collect();
    out.extend(new.iter().cloned());
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Sets tags on a key (adding them, or replacing the values of keys it has).
pub fn tag(app: &Appliance, key_id: &str, new: &[TagRecord]) -> Result<KeyRecord, KmsError> {
    if new.is_empty() {
        return Err(KmsError::invalid("give at least one tag"));
    }
    check_all(new)?;
    let record = change_key(app, key_id, |k| {
        let tags = merged(&k.tags, new);
        if tags.len() > MAX_TAGS {
            return Err(KmsError::invalid(format!(
                "a key carries at most {MAX_TAGS} tags; key {key_id} would carry {}",
                tags.len()
            )));
        }
        Ok(KeyRecord { tags, ..k.clone() })
    })?;
    tracing::info!(key_id = %key_id, tags = new.len(), "key tagged");
    Ok(record)
}

/// Removes the tags with these keys (absent ones are ignored).
pub fn untag(app: &Appliance, key_id: &str, keys: &[String]) -> Result<KeyRecord, KmsError> {
    if keys.is_empty() {
        return Err(KmsError::invalid("give at least one tag key"));
    }
    let record = change_key(app, key_id, |k| {
        Ok(KeyRecord {
            tags: k
                .tags
                .iter()
                .filter(|t| !keys.contains(&t.key))
                .cloned()
                .collect(),
            ..k.clone()
        })
    })?;
    tracing::info!(key_id = %key_id, "key untagged");
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: &str) -> TagRecord {
        TagRecord {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn tags_are_checked() {
        assert!(check(&t("team", "payments")).is_ok());
        assert!(check(&t("team", "")).is_ok());
        for bad in [
            t("", "x"),
            t("acs:x", "y"),
            t("hkms:x", "y"),
            t("a\nb", "c"),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
        assert!(check(&t(&"k".repeat(129), "v")).is_err());
        assert!(check(&t("k", &"v".repeat(257))).is_err());
        assert!(check_all(&[t("a", "1"), t("a", "2")]).is_err());
        let many: Vec<TagRecord> = (0..21).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(check_all(&many).is_err());
    }

    #[test]
    fn setting_a_tag_replaces_its_value_and_keeps_the_others() {
        let m = merged(&[t("b", "1"), t("a", "1")], &[t("b", "2"), t("c", "3")]);
        assert_eq!(m, vec![t("a", "1"), t("b", "2"), t("c", "3")]);
    }
}
