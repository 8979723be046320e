//! How `hkms key` prints keys, versions and tags: labelled text that explains a key's state
//! and what to do about it, and JSON whose field names follow the KMS API.

use super::access::Printed;
use super::key_args::DAY_SECONDS;
use crate::proto::{KeyMetadata, KeyVersion, Tag};
use serde_json::{json, Value};

/// Width of the labels of `hkms key describe` ("KeyState:          Enabled").
const LABEL: usize = 19;

/// `"7776000s"` for an interval in seconds, as the KMS API writes it; empty when unset.
pub fn interval_json(seconds: u64) -> String {
    if seconds == 0 {
        String::new()
    } else {
        format!("{seconds}s")
    }
}

fn enabled(on: bool) -> &'static str {
    if on {
        "Enabled"
    } else {
        "Disabled"
    }
}

pub fn metadata_json(m: &KeyMetadata) -> Value {
    json!({
        "KeyId": m.key_id,
        "Description": m.description,
        "KeySpec": m.key_spec,
        "KeyUsage": m.key_usage,
        "KeyState": m.key_state,
        "CreationDate": m.creation_date,
        "ProtectionLevel": m.protection_level,
        "PrimaryKeyVersion": m.primary_key_version,
        "Origin": m.origin,
        "Internal": m.internal,
        "DeleteDate": m.deletion_date,
        "DeletionProtection": enabled(m.deletion_protection),
        "DeletionProtectionDescription": m.deletion_protection_description,
        "AutomaticRotation": m.automatic_rotation,
        "RotationInterval": interval_json(m.rotation_interval_seconds),
        "NextRotationDate": m.next_rotation_date,
        "LastRotationDate": m.last_rotation_date,
        "MaterialExpireTime": m.material_expire_time,
        "KeyVersionCount": m.version_count,
    })
}

pub fn version_json(v: &KeyVersion) -> Value {
    json!({
        "KeyId": v.key_id,
        "KeyVersionId": v.key_version_id,
        "CreationDate": v.creation_date,
        "Primary": v.primary,
    })
}

pub fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"TagKey": t.tag_key, "TagValue": t.tag_value}))
            .collect(),
    )
}

/// `team=payments, env=prod`, or `none`.
fn tags_line(tags: &[Tag]) -> String {
    if tags.is_empty() {
        return "none".into();
    }
    tags.iter()
        .map(|t| format!("{}={}", t.tag_key, t.tag_value))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One tag a line (`KEY=VALUE`), or a sentence when there is none.
pub fn tags_text(tags: &[Tag]) -> String {
    if tags.is_empty() {
        return "No tags.".into();
    }
    tags.iter()
        .map(|t| format!("{}={}", t.tag_key, t.tag_value))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The key's state and what it means, with the command that changes it.
pub fn state_words(m: &KeyMetadata) -> Vec<String> {
    let id = &m.key_id;
    match m.key_state.as_str() {
        "Enabled" => vec!["Enabled (usable for encryption and decryption)".into()],
        "Disabled" => vec![
            "Disabled (every cryptographic use is refused)".into(),
            format!("To use it again: hkms key enable --key-id {id}"),
        ],
        "PendingDeletion" => vec![
            format!(
                "PendingDeletion (every use is refused; its material is destroyed on {})",
                or_unknown(&m.deletion_date)
            ),
            format!("To keep the key, before then: hkms key cancel-deletion --key-id {id}"),
        ],
        "PendingImport" => vec![
            "PendingImport (no key material: never imported, deleted or expired)".into(),
            format!("To import it: hkms key import-params --key-id {id} --output-dir DIR,"),
            format!("then hkms key import --key-id {id} --material FILE --params-dir DIR"),
            "(see hkms key import --help)".into(),
        ],
        other => vec![or_unknown(other).to_owned()],
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "(unknown)"
    } else {
        s
    }
}

/// `Enabled, every 90 days; next on ...` or `Disabled`.
pub fn rotation_words(m: &KeyMetadata) -> String {
    if m.automatic_rotation != "Enabled" {
        let never = m.origin == "EXTERNAL";
        return if never {
            "Disabled (EXTERNAL keys do not rotate automatically)".into()
        } else {
            "Disabled".into()
        };
    }
    let days = m.rotation_interval_seconds / DAY_SECONDS;
    let mut s = if m.rotation_interval_seconds.is_multiple_of(DAY_SECONDS) {
        format!("Enabled, every {days} days")
    } else {
        format!("Enabled, every {} seconds", m.rotation_interval_seconds)
    };
    if !m.next_rotation_date.is_empty() {
        s.push_str(&format!("; next on {}", m.next_rotation_date));
    }
    s
}

/// Whether the key is protected from deletion, and why.
pub fn protection_words(m: &KeyMetadata) -> String {
    if !m.deletion_protection {
        return "off".into();
    }
    let mut s = "on (schedule-deletion is refused".to_owned();
    if !m.deletion_protection_description.is_empty() {
        s.push_str(&format!(": {}", m.deletion_protection_description));
    }
    s.push(')');
    s
}

fn origin_words(origin: &str) -> String {
    match origin {
        "Aliyun_KMS" => "Aliyun_KMS (material generated inside an HSM)".into(),
        "EXTERNAL" => "EXTERNAL (material imported by its owner)".into(),
        other => or_unknown(other).to_owned(),
    }
}

fn material_expiry_words(m: &KeyMetadata) -> &str {
    if !m.material_expire_time.is_empty() {
        &m.material_expire_time
    } else if m.key_state == "PendingImport" {
        "no material imported"
    } else {
        "never"
    }
}

/// `label` padded to the value column, then the value's lines, the later ones indented.
fn field(out: &mut String, label: &str, lines: &[String]) {
    for (i, line) in lines.iter().enumerate() {
        let label = if i == 0 {
            format!("{label}:")
        } else {
            String::new()
        };
        out.push_str(&format!("{label:<LABEL$}{line}\n"));
    }
}

/// The tags to show with a key.
#[derive(Debug, Clone, Copy)]
pub enum KeyTags<'a> {
    /// Listed (or just set): shown.
    Known(&'a [Tag]),
    /// Listing them failed: the reason is shown.
    Failed(&'a str),
    /// Not asked for: no Tags line.
    Omitted,
}

/// `hkms key describe`: a key in labelled lines.
pub fn key_text(m: &KeyMetadata, tags: KeyTags<'_>) -> String {
    let mut out = String::new();
    let one = |s: &str| vec![s.to_owned()];
    field(&mut out, "KeyId", &one(&m.key_id));
    field(&mut out, "KeyState", &state_words(m));
    field(&mut out, "Description", &one(&m.description));
    field(&mut out, "KeySpec", &one(&m.key_spec));
    field(&mut out, "KeyUsage", &one(&m.key_usage));
    field(&mut out, "Origin", &one(&origin_words(&m.origin)));
    field(&mut out, "ProtectionLevel", &one(&m.protection_level));
    field(&mut out, "CreationDate", &one(&m.creation_date));
    field(&mut out, "PrimaryKeyVersion", &one(&m.primary_key_version));
    field(&mut out, "Versions", &one(&m.version_count.to_string()));
    field(&mut out, "Rotation", &one(&rotation_words(m)));
    if !m.last_rotation_date.is_empty() {
        field(&mut out, "LastRotation", &one(&m.last_rotation_date));
    }
    field(
        &mut out,
        "Deletion",
        &one(&format!("protection {}", protection_words(m))),
    );
    if m.key_state == "PendingDeletion" {
        field(&mut out, "DeleteDate", &one(or_unknown(&m.deletion_date)));
    }
    if m.origin == "EXTERNAL" {
        field(&mut out, "MaterialExpiry", &one(material_expiry_words(m)));
    }
    match tags {
        KeyTags::Known(tags) => field(&mut out, "Tags", &one(&tags_line(tags))),
        KeyTags::Failed(why) => field(&mut out, "Tags", &one(&format!("(not listed: {why})"))),
        KeyTags::Omitted => {}
    }
    if m.internal {
        field(
            &mut out,
            "Internal",
            &one("yes (hkmsd's own; no application may use it)"),
        );
    }
    out.trim_end().to_owned()
}

/// A key as text and JSON (`{"KeyMetadata": ..., "Tags": ...}`, tags when known).
pub fn key_printed(m: &KeyMetadata, tags: KeyTags<'_>) -> Printed {
    let mut j = json!({ "KeyMetadata": metadata_json(m) });
    if let KeyTags::Known(tags) = tags {
        j["Tags"] = tags_json(tags);
    }
    (key_text(m, tags), j)
}

/// `hkms key versions`: a table, oldest first, '*' on the primary version.
pub fn versions_text(versions: &[KeyVersion]) -> String {
    let mut text = format!("{:<40} {:<22} PRIMARY\n", "VERSION ID", "CREATED");
    for v in versions {
        text.push_str(&format!(
            "{:<40} {:<22} {}\n",
            v.key_version_id,
            v.creation_date,
            if v.primary { "*" } else { "" }
        ));
    }
    text.push_str(&format!("({} version(s))", versions.len()));
    text
}

/// `hkms key version`: one version in labelled lines.
pub fn version_text(v: &KeyVersion) -> String {
    let mut out = String::new();
    field(&mut out, "KeyId", std::slice::from_ref(&v.key_id));
    field(
        &mut out,
        "KeyVersionId",
        std::slice::from_ref(&v.key_version_id),
    );
    field(
        &mut out,
        "CreationDate",
        std::slice::from_ref(&v.creation_date),
    );
    let primary = if v.primary {
        "yes (encrypts new data)"
    } else {
        "no (decrypts what it encrypted)"
    };
    field(&mut out, "Primary", &[primary.to_owned()]);
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(state: &str) -> KeyMetadata {
        KeyMetadata {
            key_id: "key-1".into(),
            key_state: state.into(),
            origin: "Aliyun_KMS".into(),
            ..Default::default()
        }
    }

    #[test]
    fn describe_explains_each_state() {
        let t = key_text(&key("Enabled"), KeyTags::Known(&[]));
        assert!(t.contains("KeyState:          Enabled (usable"), "{t}");
        let t = key_text(&key("Disabled"), KeyTags::Failed("Unimplemented"));
        assert!(t.contains("hkms key enable --key-id key-1"), "{t}");
        assert!(
            t.contains("Tags:              (not listed: Unimplemented)"),
            "{t}"
        );
        let mut m = key("PendingDeletion");
        m.deletion_date = "2030-01-31T00:00:00Z".into();
        let t = key_text(&m, KeyTags::Omitted);
        assert!(t.contains("destroyed on 2030-01-31T00:00:00Z"), "{t}");
        assert!(t.contains("hkms key cancel-deletion --key-id key-1"), "{t}");
        let mut m = key("PendingImport");
        m.origin = "EXTERNAL".into();
        let t = key_text(&m, KeyTags::Omitted);
        assert!(t.contains("hkms key import-params --key-id key-1"), "{t}");
        assert!(t.contains("MaterialExpiry:    no material imported"), "{t}");
    }

    #[test]
    fn describe_shows_rotation_protection_and_tags() {
        let mut m = key("Enabled");
        m.automatic_rotation = "Enabled".into();
        m.rotation_interval_seconds = 90 * DAY_SECONDS;
        m.next_rotation_date = "2030-04-01T00:00:00Z".into();
        m.deletion_protection = true;
        m.deletion_protection_description = "orders".into();
        m.version_count = 3;
        let tags = [Tag {
            tag_key: "team".into(),
            tag_value: "db".into(),
        }];
        let t = key_text(&m, KeyTags::Known(&tags));
        assert!(
            t.contains("Rotation:          Enabled, every 90 days; next on 2030-04-01"),
            "{t}"
        );
        assert!(
            t.contains("on (schedule-deletion is refused: orders)"),
            "{t}"
        );
        assert!(t.contains("Versions:          3"), "{t}");
        assert!(t.contains("Tags:              team=db"), "{t}");
        let j = metadata_json(&m);
        assert_eq!(j["RotationInterval"], "7776000s");
        assert_eq!(j["DeletionProtection"], "Enabled");
    }

    #[test]
    fn versions_table_marks_the_primary() {
        let v = |id: &str, primary| KeyVersion {
            key_id: "key-1".into(),
            key_version_id: id.into(),
            creation_date: "2030-01-01T00:00:00Z".into(),
            primary,
        };
        let t = versions_text(&[v("v1", false), v("v2", true)]);
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].starts_with("VERSION ID"));
        assert!(!lines[1].trim_end().ends_with('*'));
        assert!(lines[2].starts_with("v2") && lines[2].ends_with('*'));
        assert_eq!(lines[3], "(2 version(s))");
    }
}
