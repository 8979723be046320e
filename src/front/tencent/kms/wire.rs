//! What every KMS handler shares: decoding requests, base64, EncryptionContext, and the
//! mapping of hkms's key records to Tencent's KeyUsage, KeyState and KeyMetadata.

use super::super::errors::TcError;
use crate::error::{ErrorCode, KmsError};
use crate::keys::spec::{Curve, KeySpec, MacHash, Usage};
use crate::proto::KeyAlias;
use crate::store::records::KeyRecord;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Decodes a request body into the action's request struct.
pub(super) fn parse<T: DeserializeOwned>(body: Value) -> Result<T, TcError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if let Some(field) = backquoted(&inner, "missing field `") {
            let field = if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            TcError::new(
                "MissingParameter",
                format!("the required parameter {field} is missing"),
            )
        } else if let Some(field) = backquoted(&inner, "unknown field `") {
            TcError::new(
                "UnknownParameter",
                format!("{field} is not a parameter of this action"),
            )
        } else {
            TcError::invalid(format!("parameter {path}: {inner}"))
        }
    })
}

/// The name between backquotes after `prefix`, in a serde message.
fn backquoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// A request string that must not be empty.
pub(super) fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, TcError> {
    if value.is_empty() {
        return Err(TcError::new(
            "MissingParameter",
            format!("the required parameter {field} is empty"),
        ));
    }
    Ok(value)
}

/// Decodes a base64 field; `code` is the error when it is not base64.
pub(super) fn b64(field: &str, value: &str, code: &'static str) -> Result<Vec<u8>, TcError> {
    STANDARD
        .decode(value.trim())
        .map_err(|_| TcError::new(code, format!("{field} is not valid base64")))
}

pub(super) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Refuses a parameter hkms does not offer when it is set.
pub(super) fn refuse_set<T>(field: &str, value: &Option<T>, why: &str) -> Result<(), TcError> {
    if value.is_some() {
        return Err(TcError::new(
            "UnsupportedOperation",
            format!("{field} is not supported by this appliance: {why}"),
        ));
    }
    Ok(())
}

/// Refuses `MemberAccount(s)`: an appliance has no organisation of accounts.
pub(super) fn no_member_account(value: &Option<Value>) -> Result<(), TcError> {
    refuse_set(
        "MemberAccount",
        value,
        "an appliance has no member accounts; use an API key of the AAP that owns the key",
    )
}

/// Refuses a non-empty `HsmClusterId`: the appliance's HSMs are one pool.
pub(super) fn no_hsm_cluster(value: &Option<String>) -> Result<(), TcError> {
    match value.as_deref() {
        None | Some("") => Ok(()),
        Some(id) => Err(TcError::new(
            "InvalidParameterValue.InvalidHsmClusterId",
            format!("HsmClusterId {id:?}: the appliance's HSM members form one pool without cluster ids"),
        )),
    }
}

/// Longest EncryptionContext, in characters.
const MAX_CONTEXT: usize = 1024;

/// A JSON object whose values are strings, with no name twice.
struct StringPairs(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for StringPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StringPairs, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StringPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StringPairs, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("{k:?} appears twice")));
                    }
                    out.insert(k, v);
                }
                Ok(StringPairs(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// The AAD of an EncryptionContext: its canonical form (names sorted, compact JSON);
/// empty for an absent, empty or `{}` context.
pub(super) fn encryption_context(field: &str, value: Option<&str>) -> Result<Vec<u8>, TcError> {
    let text = value.unwrap_or("");
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    if text.chars().count() > MAX_CONTEXT {
        return Err(TcError::invalid(format!(
            "{field} is longer than {MAX_CONTEXT} characters"
        )));
    }
    let pairs: StringPairs = serde_json::from_str(text).map_err(|e| {
        TcError::invalid(format!(
            "{field} must be a JSON object of string values, like {{\"purpose\":\"orders\"}}: {e}"
        ))
    })?;
    if pairs.0.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::to_vec(&pairs.0)
        .map_err(|e| TcError::new("InternalError", format!("EncryptionContext: {e}")))
}

/// A Tencent KeyUsage and the hkms key it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyUsage {
    pub name: &'static str,
    pub spec: KeySpec,
    pub usage: Usage,
    /// Named by the SDK, so CreateKey accepts it; the others only describe keys made
    /// through another API.
    pub creatable: bool,
}

const fn u(name: &'static str, spec: KeySpec, usage: Usage, creatable: bool) -> KeyUsage {
    KeyUsage {
        name,
        spec,
        usage,
        creatable,
    }
}

const ENC: Usage = Usage::EncryptDecrypt;
const SIGN: Usage = Usage::SignVerify;

/// Every key hkms makes, by its Tencent KeyUsage.
pub(super) const KEY_USAGES: &[KeyUsage] = &[
    u("ENCRYPT_DECRYPT", KeySpec::Aes256, ENC, true),
    u("ASYMMETRIC_DECRYPT_RSA_2048", KeySpec::Rsa(2048), ENC, true),
    u(
        "ASYMMETRIC_SIGN_VERIFY_RSA_2048",
        KeySpec::Rsa(2048),
        SIGN,
        true,
    ),
    u(
        "ASYMMETRIC_SIGN_VERIFY_ECC",
        KeySpec::Ec(Curve::P256),
        SIGN,
        true,
    ),
    u(
        "ASYMMETRIC_SIGN_VERIFY_ECDSA384",
        KeySpec::Ec(Curve::P384),
        SIGN,
        true,
    ),
    u("ENCRYPT_DECRYPT", KeySpec::Aes128, ENC, false),
    u(
        "ASYMMETRIC_DECRYPT_RSA_3072",
        KeySpec::Rsa(3072),
        ENC,
        false,
    ),
    u(
        "ASYMMETRIC_DECRYPT_RSA_4096",
        KeySpec::Rsa(4096),
        ENC,
        false,
    ),
    u(
        "ASYMMETRIC_SIGN_VERIFY_RSA_3072",
        KeySpec::Rsa(3072),
        SIGN,
        false,
    ),
    u(
        "ASYMMETRIC_SIGN_VERIFY_RSA_4096",
        KeySpec::Rsa(4096),
        SIGN,
        false,
    ),
    u(
        "ASYMMETRIC_SIGN_VERIFY_SECP256K1",
        KeySpec::Ec(Curve::P256K),
        SIGN,
        false,
    ),
    u(
        "GENERATE_VERIFY_MAC_HMAC_SHA_256",
        KeySpec::Hmac(MacHash::Sha256),
        Usage::Mac,
        false,
    ),
    u(
        "GENERATE_VERIFY_MAC_HMAC_SHA_384",
        KeySpec::Hmac(MacHash::Sha384),
        Usage::Mac,
        false,
    ),
    u(
        "GENERATE_VERIFY_MAC_HMAC_SHA_512",
        KeySpec::Hmac(MacHash::Sha512),
        Usage::Mac,
        false,
    ),
];

/// The KeyUsages of SM keys, which no member offers.
const SM_USAGES: &[&str] = &["ASYMMETRIC_DECRYPT_SM2", "ASYMMETRIC_SIGN_VERIFY_SM2"];

/// The key CreateKey makes for a KeyUsage (absent: ENCRYPT_DECRYPT).
pub(super) fn creatable_usage(name: Option<&str>) -> Result<KeyUsage, TcError> {
    let name = name.filter(|n| !n.is_empty()).unwrap_or("ENCRYPT_DECRYPT");
    if let Some(u) = KEY_USAGES.iter().find(|u| u.creatable && u.name == name) {
        return Ok(*u);
    }
    if SM_USAGES.contains(&name) {
        return Err(TcError::new(
            "UnsupportedOperation.UnsupportedKeyUsageInCurrentRegion",
            format!(
                "KeyUsage {name}: SM2 keys need an SM2 mechanism (vendor-defined in PKCS#11), \
                 which no HSM member of this appliance offers"
            ),
        ));
    }
    let offered: Vec<&str> = KEY_USAGES
        .iter()
        .filter(|u| u.creatable)
        .map(|u| u.name)
        .collect();
    Err(TcError::new(
        "InvalidParameterValue.InvalidKeyUsage",
        format!("KeyUsage {name:?} is not valid; use {}", offered.join(", ")),
    ))
}

/// Whether `name` is a KeyUsage hkms knows (for filters).
pub(super) fn is_key_usage(name: &str) -> bool {
    KEY_USAGES.iter().any(|u| u.name == name) || SM_USAGES.contains(&name)
}

/// The Tencent KeyUsage of a key.
pub(super) fn key_usage(k: &KeyRecord) -> &'static str {
    let (Ok(spec), usage) = (KeySpec::parse(&k.key_spec), Usage::of(k)) else {
        return "";
    };
    KEY_USAGES
        .iter()
        .find(|u| u.spec == spec && u.usage == usage)
        .map_or("", |u| u.name)
}

/// The Tencent KeyState of an hkms key state.
pub(super) fn key_state(state: &str) -> &str {
    match state {
        crate::keys::STATE_PENDING_DELETION => "PendingDelete",
        other => other,
    }
}

/// Whether `name` fits Tencent's alias rules: 1 to 60 letters, digits, `_` or `-`, the
/// first a letter or digit.
pub(super) fn is_tencent_alias(name: &str) -> bool {
    (1..=60).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks an Alias a request gives a key; returns the hkms alias (`alias/<Alias>`).
pub(super) fn new_alias(alias: &str) -> Result<String, TcError> {
    if !is_tencent_alias(alias) {
        return Err(TcError::new(
            "InvalidParameterValue.InvalidAlias",
            format!(
                "Alias {alias:?} must be 1 to 60 letters, digits, '_' or '-', starting with a \
                 letter or digit"
            ),
        ));
    }
    if alias.starts_with("kms-") {
        return Err(TcError::new(
            "InvalidParameterValue.InvalidAlias",
            format!("Alias {alias:?}: the prefix kms- is reserved for keys of cloud products"),
        ));
    }
    Ok(format!("{}{alias}", crate::keys::alias::PREFIX))
}

/// The Alias Tencent's API shows for a key: its oldest alias (of `aliases`, oldest first)
/// whose name fits Tencent's rules; empty when none does.
pub(super) fn shown_alias(aliases: &[KeyAlias]) -> &str {
    aliases
        .iter()
        .filter_map(|a| a.alias_name.strip_prefix(crate::keys::alias::PREFIX))
        .find(|name| is_tencent_alias(name))
        .unwrap_or("")
}

/// Unix seconds of an RFC 3339 time as hkms writes it (`YYYY-MM-DDTHH:MM:SSZ`); 0 when
/// it is empty or malformed.
pub(super) fn unix(rfc3339: &str) -> i64 {
    let parse = || -> Option<i64> {
        let (date, time) = rfc3339.split_once('T')?;
        let day = crate::clock::date_to_unix(date).ok()?;
        let time = time.strip_suffix('Z')?;
        let mut parts = time.split(':').map(|p| p.parse::<i64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() || h > 23 || m > 59 || s > 60 {
            return None;
        }
        Some(day + h * 3600 + m * 60 + s)
    };
    parse().unwrap_or(0)
}

const DAY: u64 = 86_400;

/// Tencent's KeyMetadata of a key with the Alias it shows.
pub(super) fn key_metadata(k: &KeyRecord, alias: &str) -> Value {
    let external = k.origin == crate::keys::ORIGIN_EXTERNAL;
    let last_rotation = if k.last_rotation_date.is_empty() {
        &k.creation_date
    } else {
        &k.last_rotation_date
    };
    json!({
        "KeyId": k.key_id,
        "Alias": alias,
        "CreateTime": unix(&k.creation_date),
        "Description": k.description,
        "KeyState": key_state(&k.key_state),
        "KeyUsage": key_usage(k),
        "Type": 2,
        "Owner": "user",
        "KeyRotationEnabled": k.automatic_rotation,
        "NextRotateTime": if k.automatic_rotation { k.next_rotation_unix } else { 0 },
        "RotateDays": k.rotation_interval_seconds / DAY,
        "LastRotateTime": unix(last_rotation),
        "DeletionDate": k.deletion_unix,
        "Origin": if external { "EXTERNAL" } else { "TENCENT_KMS" },
        "ValidTo": k.material_expire_unix,
    })
}

/// Turns an hkms error into Tencent's, letting `refine` choose the code for some errors
/// (`None`: the error table's code).
pub(super) fn refine(
    e: KmsError,
    refine: impl FnOnce(&KmsError) -> Option<&'static str>,
) -> TcError {
    match refine(&e) {
        Some(code) => TcError::new(code, e.message),
        None => e.into(),
    }
}

/// Whether `e` is a refusal because of the key's state (the code for [`refine`] to
/// sharpen from the key's state).
pub(super) fn is_state_error(e: &KmsError) -> bool {
    e.code == ErrorCode::InvalidState
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_contexts_are_canonical() {
        let a = encryption_context("EncryptionContext", Some(r#"{"b":"2","a":"1"}"#)).unwrap();
        let b =
            encryption_context("EncryptionContext", Some(r#" { "a" : "1", "b":"2" } "#)).unwrap();
        assert_eq!(a, br#"{"a":"1","b":"2"}"#);
        assert_eq!(a, b, "order and spacing do not matter");
        let unicode =
            encryption_context("E", Some(r#"{"k":"\u00e9t\u00e9","q":"\"x\""}"#)).unwrap();
        assert_eq!(unicode, "{\"k\":\"été\",\"q\":\"\\\"x\\\"\"}".as_bytes());
        for none in [None, Some(""), Some("  "), Some("{}")] {
            assert!(
                encryption_context("E", none).unwrap().is_empty(),
                "{none:?}"
            );
        }
        for bad in [
            "x",
            "[]",
            r#"{"a":1}"#,
            r#"{"a":null}"#,
            r#"{"a":{"b":"c"}}"#,
            r#"{"a":"1","a":"2"}"#,
            r#""a""#,
            r#"{"a":"1"} x"#,
        ] {
            let e = encryption_context("EncryptionContext", Some(bad)).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValue", "{bad}");
            assert!(e.message.contains("EncryptionContext"), "{}", e.message);
        }
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(1100));
        assert!(encryption_context("E", Some(&long)).is_err());
    }

    #[test]
    fn key_usages_map_both_ways() {
        let k = |spec: &str, usage: &str| KeyRecord {
            key_spec: spec.into(),
            key_usage: usage.into(),
            ..Default::default()
        };
        for u in KEY_USAGES.iter().filter(|u| u.creatable) {
            let made = k(u.spec.as_str(), u.usage.as_str());
            assert_eq!(key_usage(&made), u.name);
            assert_eq!(creatable_usage(Some(u.name)).unwrap(), *u);
        }
        assert_eq!(creatable_usage(None).unwrap().spec, KeySpec::Aes256);
        assert_eq!(creatable_usage(Some("")).unwrap().name, "ENCRYPT_DECRYPT");
        assert_eq!(
            key_usage(&k("Aliyun_AES_128", "ENCRYPT/DECRYPT")),
            "ENCRYPT_DECRYPT"
        );
        assert_eq!(
            key_usage(&k("EC_P384", "SIGN/VERIFY")),
            "ASYMMETRIC_SIGN_VERIFY_ECDSA384"
        );
        assert_eq!(
            key_usage(&k("RSA_3072", "SIGN/VERIFY")),
            "ASYMMETRIC_SIGN_VERIFY_RSA_3072"
        );
        assert_eq!(
            key_usage(&k("HMAC_SHA_384", "GENERATE/VERIFY_MAC")),
            "GENERATE_VERIFY_MAC_HMAC_SHA_384"
        );
        let sm = creatable_usage(Some("ASYMMETRIC_SIGN_VERIFY_SM2")).unwrap_err();
        assert_eq!(
            sm.code,
            "UnsupportedOperation.UnsupportedKeyUsageInCurrentRegion"
        );
        assert!(sm.message.contains("SM2"));
        for bad in [
            "ASYMMETRIC_DECRYPT_RSA_3072",
            "SIGN_VERIFY",
            "encrypt_decrypt",
        ] {
            assert_eq!(
                creatable_usage(Some(bad)).unwrap_err().code,
                "InvalidParameterValue.InvalidKeyUsage",
                "{bad}"
            );
        }
        assert!(is_key_usage("ASYMMETRIC_DECRYPT_SM2") && !is_key_usage("ALL"));
    }

    #[test]
    fn states_and_times() {
        assert_eq!(key_state("PendingDeletion"), "PendingDelete");
        for same in ["Enabled", "Disabled", "PendingImport"] {
            assert_eq!(key_state(same), same);
        }
        for t in [0, 1, 86_399, 1_700_000_000, 2_147_443_200] {
            assert_eq!(unix(&crate::clock::rfc3339(t)), t);
        }
        for bad in [
            "",
            "2024-01-01",
            "2024-01-01T10:00:00",
            "2024-13-01T00:00:00Z",
            "x",
        ] {
            assert_eq!(unix(bad), 0, "{bad}");
        }
    }

    #[test]
    fn aliases_follow_tencents_rules() {
        for ok in ["a", "orders-db_1", "9x", &"a".repeat(60)] {
            assert_eq!(new_alias(ok).unwrap(), format!("alias/{ok}"));
        }
        for bad in [
            "",
            "-a",
            "_a",
            "a/b",
            "a b",
            "é",
            &"a".repeat(61),
            "kms-cbs",
        ] {
            assert_eq!(
                new_alias(bad).unwrap_err().code,
                "InvalidParameterValue.InvalidAlias",
                "{bad:?}"
            );
        }
        let alias = |name: &str| KeyAlias {
            alias_name: format!("alias/{name}"),
            ..Default::default()
        };
        assert_eq!(
            shown_alias(&[alias("a/b"), alias("orders"), alias("z")]),
            "orders"
        );
        assert_eq!(shown_alias(&[alias("a/b")]), "");
        assert_eq!(shown_alias(&[]), "");
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        key_id: String,
        number_of_bytes: Option<u32>,
        key_ids: Option<Vec<String>>,
    }

    #[test]
    fn request_errors_name_the_parameter() {
        let ok: Probe = parse(json!({"KeyId": "k", "NumberOfBytes": 3})).unwrap();
        assert_eq!((ok.key_id.as_str(), ok.number_of_bytes), ("k", Some(3)));
        let e = parse::<Probe>(json!({"NumberOfBytes": 3})).unwrap_err();
        assert_eq!(e.code, "MissingParameter");
        assert!(e.message.contains("KeyId"), "{}", e.message);
        let e = parse::<Probe>(json!({"KeyId": "k", "Color": 3})).unwrap_err();
        assert_eq!(e.code, "UnknownParameter");
        assert!(e.message.contains("Color"), "{}", e.message);
        let e = parse::<Probe>(json!({"KeyId": "k", "NumberOfBytes": "3"})).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("NumberOfBytes"), "{}", e.message);
        let e = parse::<Probe>(json!({"KeyId": "k", "NumberOfBytes": -1})).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let e = parse::<Probe>(json!({"KeyId": "k", "KeyIds": ["a", 2]})).unwrap_err();
        assert!(e.message.contains("KeyIds[1]"), "{}", e.message);
        let e = parse::<Probe>(json!({"KeyId": 5})).unwrap_err();
        assert!(e.message.contains("KeyId"), "{}", e.message);
    }
}
