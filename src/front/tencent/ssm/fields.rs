//! Reading an SSM request. Each action decodes its body into a struct with exactly the
//! fields of the SDK's request model for it (`tencentcloud/ssm/v20190923/models.py`), so a
//! field the action does not have is `UnknownParameter` naming it, whatever other action
//! has such a field: the Python SDK does not sign `X-TC-Action`, and a body made for one
//! action must not run as another. The SDKs leave out the fields the caller did not set
//! (`null` counts as left out), so every field is optional here and the handler says which
//! it requires.
//!
//! The SDKs send strings, integers (JSON numbers; `tccli` may send them as strings of
//! digits), booleans (or `"true"`/`"false"`), lists and objects. A field of the wrong JSON
//! type is `InvalidParameter`, a required field left out (or empty) `MissingParameter`, a
//! value out of range `InvalidParameterValue` (from the handler).

use super::super::errors::TcError;
use super::super::json;
use crate::store::records::{SecretRecord, TagRecord};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::{DeserializeOwned, Deserializer, Error, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use zeroize::Zeroizing;

/// Tencent's name for the current version.
pub const SSM_CURRENT: &str = "SSM_Current";

/// Tencent's state of a secret.
pub fn status(rec: &SecretRecord) -> &'static str {
    if rec.planned_delete_unix != 0 {
        "PendingDelete"
    } else if rec.disabled {
        "Disabled"
    } else {
        "Enabled"
    }
}

/// Decodes a request body into the action's request struct.
pub fn parse<T: DeserializeOwned>(body: Value) -> Result<T, TcError> {
    json::parse(body, "InvalidParameter")
}

pub fn missing(name: &str) -> TcError {
    TcError::new("MissingParameter", format!("{name} is required"))
}

/// A string field that must be given and not be empty.
pub fn required<'a>(name: &str, value: &'a Option<String>) -> Result<&'a str, TcError> {
    match value.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(missing(name)),
    }
}

/// An integer field: a JSON number, or a string of digits; `None` when left out.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Int;
    impl<'de> Visitor<'de> for Int {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<Option<i64>, E> {
            Ok(Some(n))
        }
        fn visit_u64<E: Error>(self, n: u64) -> Result<Option<i64>, E> {
            i64::try_from(n)
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<Option<i64>, E> {
            s.trim()
                .parse()
                .map(Some)
                .map_err(|_| E::invalid_value(Unexpected::Str(s), &self))
        }
        fn visit_unit<E: Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Int)
}

/// A boolean field: `true`/`false`, or those words as a string (any case); `None` when
/// left out.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct Flag;
    impl<'de> Visitor<'de> for Flag {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: Error>(self, b: bool) -> Result<Option<bool>, E> {
            Ok(Some(b))
        }
        fn visit_str<E: Error>(self, s: &str) -> Result<Option<bool>, E> {
            if s.eq_ignore_ascii_case("true") {
                Ok(Some(true))
            } else if s.eq_ignore_ascii_case("false") {
                Ok(Some(false))
            } else {
                Err(E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        fn visit_unit<E: Error>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Flag)
}

/// A list of strings, or one string for a list of one; `None` when left out.
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}

/// A field that carries a secret value: wiped when it drops.
pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

/// A tag (`Tags` of CreateSecret).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

/// A tag filter (`TagFilters` of ListSecrets): a key and the values it may have.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagFilter {
    tag_key: Option<String>,
    #[serde(default, deserialize_with = "strings")]
    tag_value: Option<Vec<String>>,
}

/// `Tags` as hkms keeps them. A key given twice is `InvalidParameterValue.TagKeysDuplicated`.
pub fn tags(tags: Option<Vec<Tag>>) -> Result<Vec<TagRecord>, TcError> {
    let mut out: Vec<TagRecord> = Vec::new();
    for t in tags.unwrap_or_default() {
        let key = required("TagKey", &t.tag_key)?.to_owned();
        if out.iter().any(|o| o.key == key) {
            return Err(TcError::new(
                "InvalidParameterValue.TagKeysDuplicated",
                format!("tag key {key:?} is given twice"),
            ));
        }
        out.push(TagRecord {
            key,
            value: t.tag_value.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// `TagFilters`: each a key and the values it may have (any value when none are listed).
pub fn tag_filters(filters: Option<Vec<TagFilter>>) -> Result<Vec<(String, Vec<String>)>, TcError> {
    filters
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let key = required("TagKey", &f.tag_key)?.to_owned();
            Ok((key, f.tag_value.unwrap_or_default()))
        })
        .collect()
}

/// A secret's value as the request gives it: exactly one of `SecretString` (text, as it
/// is) and `SecretBinary` (base64).
#[derive(Debug)]
pub struct SecretValue {
    pub data: Zeroizing<Vec<u8>>,
    /// hkms's data type: `text` or `binary`.
    pub data_type: &'static str,
}

/// The value of `SecretString` and `SecretBinary`, exactly one of which may be given;
/// `None` when neither is.
pub fn secret_value(
    string: Option<Zeroizing<String>>,
    binary: Option<Zeroizing<String>>,
) -> Result<Option<SecretValue>, TcError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(TcError::new(
            "InvalidParameter",
            "give SecretString or SecretBinary, not both",
        )),
        (Some(mut text), None) => Ok(Some(SecretValue {
            data: Zeroizing::new(std::mem::take(&mut *text).into_bytes()),
            data_type: "text",
        })),
        (None, Some(b64)) => {
            let data = B64.decode(b64.trim()).map_err(|_| {
                TcError::invalid("SecretBinary must be base64 (standard alphabet, padded)")
            })?;
            Ok(Some(SecretValue {
                data: Zeroizing::new(data),
                data_type: "binary",
            }))
        }
        (None, None) => Ok(None),
    }
}

/// [`secret_value`], which must be given.
pub fn required_value(
    string: Option<Zeroizing<String>>,
    binary: Option<Zeroizing<String>>,
) -> Result<SecretValue, TcError> {
    secret_value(string, binary)?.ok_or_else(|| {
        TcError::new(
            "MissingParameter",
            "SecretString (text) or SecretBinary (base64) is required",
        )
    })
}

/// Refuses a parameter hkms does not honour when it is set to anything but its default:
/// `code` and why, naming the parameter and its value.
pub fn refuse_unless_default<T: PartialEq + fmt::Debug>(
    name: &str,
    value: Option<T>,
    default: T,
    code: &'static str,
    why: &str,
) -> Result<(), TcError> {
    match value {
        Some(v) if v != default => Err(TcError::new(
            code,
            format!("{name} {v:?} is not supported by hkms: {why}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        s: Option<String>,
        e: Option<String>,
        z: Option<String>,
        #[serde(default, deserialize_with = "int")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "int")]
        ns: Option<i64>,
        #[serde(default, deserialize_with = "int")]
        nz: Option<i64>,
        #[serde(default, deserialize_with = "flag")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "flag")]
        bs: Option<bool>,
        #[serde(default, deserialize_with = "strings")]
        l: Option<Vec<String>>,
        tags: Option<Vec<Tag>>,
    }

    fn probe(v: Value) -> Result<Probe, TcError> {
        parse(v)
    }

    #[test]
    fn fields_have_their_types_and_null_is_left_out() {
        let p = probe(
            json!({"S": "x", "E": "", "Z": null, "N": 7, "Ns": " 30", "Nz": null,
                             "B": true, "Bs": "FALSE", "L": "one"}),
        )
        .unwrap();
        assert_eq!(p.s.as_deref(), Some("x"));
        assert_eq!(p.z, None);
        assert_eq!(required("S", &p.s).unwrap(), "x");
        assert_eq!(required("E", &p.e).unwrap_err().code, "MissingParameter");
        assert_eq!(required("Z", &p.z).unwrap_err().code, "MissingParameter");
        assert_eq!((p.n, p.ns, p.nz), (Some(7), Some(30), None));
        assert_eq!((p.b, p.bs), (Some(true), Some(false)));
        assert_eq!(p.l.unwrap(), ["one"]);
        let p = probe(json!({"L": ["a", "b"]})).unwrap();
        assert_eq!(
            (p.n, p.b, p.l.unwrap()),
            (None, None, vec!["a".to_owned(), "b".to_owned()])
        );
        for (bad, field) in [
            (json!({"S": 7}), "S"),
            (json!({"N": 1.5}), "N"),
            (json!({"N": "x"}), "N"),
            (json!({"N": u64::MAX}), "N"),
            (json!({"N": true}), "N"),
            (json!({"B": 1}), "B"),
            (json!({"B": "yes"}), "B"),
            (json!({"L": [1]}), "L"),
            (json!({"Tags": {"TagKey": "a"}}), "Tags"),
        ] {
            let e = probe(bad.clone()).unwrap_err();
            assert_eq!(e.code, "InvalidParameter", "{bad}");
            assert!(e.message.contains(field), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn a_field_of_no_such_name_is_unknown() {
        for (bad, field) in [
            (json!({"Colour": "red"}), "Colour"),
            (json!({"s": "x"}), "s"),
            (json!({"Colour": null}), "Colour"),
            (json!({"Tags": [{"TagKey": "a", "Hue": "b"}]}), "Hue"),
        ] {
            let e = probe(bad.clone()).unwrap_err();
            assert_eq!(e.code, "UnknownParameter", "{bad}");
            assert!(e.message.contains(field), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn tags_and_tag_filters() {
        let tag = |k: Option<&str>, v: Option<&str>| Tag {
            tag_key: k.map(str::to_owned),
            tag_value: v.map(str::to_owned),
        };
        let t = tags(Some(vec![
            tag(Some("team"), Some("db")),
            tag(Some("env"), None),
        ]))
        .unwrap();
        assert_eq!((t[0].key.as_str(), t[0].value.as_str()), ("team", "db"));
        assert_eq!((t[1].key.as_str(), t[1].value.as_str()), ("env", ""));
        let twice = tags(Some(vec![
            tag(Some("a"), Some("1")),
            tag(Some("a"), Some("2")),
        ]));
        assert_eq!(
            twice.unwrap_err().code,
            "InvalidParameterValue.TagKeysDuplicated"
        );
        assert_eq!(
            tags(Some(vec![tag(None, Some("1"))])).unwrap_err().code,
            "MissingParameter"
        );
        assert!(tags(None).unwrap().is_empty());
        let filters: Vec<TagFilter> = serde_json::from_value(json!([
            {"TagKey": "team", "TagValue": ["db", "web"]},
            {"TagKey": "env"},
        ]))
        .unwrap();
        assert_eq!(
            tag_filters(Some(filters)).unwrap(),
            [
                ("team".to_owned(), vec!["db".to_owned(), "web".to_owned()]),
                ("env".to_owned(), vec![])
            ]
        );
    }

    #[test]
    fn a_value_is_text_or_base64_binary_never_both() {
        let s = |t: &str| Some(Zeroizing::new(t.to_owned()));
        let v = required_value(s("pässword"), None).unwrap();
        assert_eq!(
            (v.data.as_slice(), v.data_type),
            ("pässword".as_bytes(), "text")
        );
        let v = required_value(None, s("AP8Q")).unwrap();
        assert_eq!(
            (v.data.as_slice(), v.data_type),
            (&[0, 0xff, 0x10][..], "binary")
        );
        assert_eq!(
            required_value(None, s("not base64!")).unwrap_err().code,
            "InvalidParameterValue"
        );
        assert_eq!(
            required_value(s("a"), s("YQ==")).unwrap_err().code,
            "InvalidParameter"
        );
        assert_eq!(
            required_value(None, None).unwrap_err().code,
            "MissingParameter"
        );
        assert!(secret_value(None, None).unwrap().is_none());
    }

    #[test]
    fn parameters_hkms_does_not_honour_are_refused_unless_default() {
        let refuse = |v: Option<&str>| {
            refuse_unless_default("ProductName", v, "", "UnsupportedOperation", "no products")
        };
        assert!(refuse(None).is_ok() && refuse(Some("")).is_ok());
        let e = refuse(Some("Mysql")).unwrap_err();
        assert_eq!(e.code, "UnsupportedOperation");
        assert!(
            e.message.contains("ProductName") && e.message.contains("Mysql"),
            "{}",
            e.message
        );
    }
}
