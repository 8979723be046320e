//! What the KMS and SSM codecs share in reading requests and writing answers: decoding a
//! request body into an action's struct, an answer's fields, and times as Unix seconds.

use super::errors::TcError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The fields of a successful response (without `RequestId`).
pub type Fields = Map<String, Value>;

/// Decodes a request body into the action's request struct (which denies unknown fields):
/// a missing required field is `MissingParameter`, a field the action does not have
/// `UnknownParameter`, and any other mismatch (a value of the wrong type...) `wrong`; each
/// names the field.
pub fn parse<T: DeserializeOwned>(body: Value, wrong: &'static str) -> Result<T, TcError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let at = |field: &str| {
            if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            }
        };
        if let Some(field) = backquoted(&inner, "missing field `") {
            TcError::new(
                "MissingParameter",
                format!("the required parameter {} is missing", at(field)),
            )
        } else if let Some(field) = backquoted(&inner, "unknown field `") {
            TcError::new(
                "UnknownParameter",
                format!("{} is not a parameter of this action", at(field)),
            )
        } else {
            TcError::new(wrong, format!("parameter {path}: {inner}"))
        }
    })
}

/// The name between backquotes after `prefix`, in a serde message.
fn backquoted<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

/// The fields of an answer written as a JSON object (none for anything else).
pub fn fields(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => Fields::new(),
    }
}

/// A time of hkms's (`YYYY-MM-DDTHH:MM:SSZ`) in an answer: Unix seconds, 0 when it is
/// empty or malformed (Tencent's "none").
pub fn unix(rfc3339: &str) -> i64 {
    crate::clock::rfc3339_to_unix(rfc3339).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        key_id: String,
        number_of_bytes: Option<u32>,
        key_ids: Option<Vec<String>>,
        tags: Option<Vec<Tag>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tag {
        tag_key: String,
    }

    fn probe(v: Value) -> Result<Probe, TcError> {
        parse(v, "InvalidParameterValue")
    }

    #[test]
    fn request_errors_name_the_parameter() {
        let ok = probe(json!({"KeyId": "k", "NumberOfBytes": 3})).unwrap();
        assert_eq!((ok.key_id.as_str(), ok.number_of_bytes), ("k", Some(3)));
        let e = probe(json!({"NumberOfBytes": 3})).unwrap_err();
        assert_eq!(e.code, "MissingParameter");
        assert!(e.message.contains("KeyId"), "{}", e.message);
        let e = probe(json!({"KeyId": "k", "Color": 3})).unwrap_err();
        assert_eq!(e.code, "UnknownParameter");
        assert!(e.message.contains("Color"), "{}", e.message);
        let e = probe(json!({"KeyId": "k", "Tags": [{"TagKey": "a", "Hue": 1}]})).unwrap_err();
        assert_eq!(e.code, "UnknownParameter");
        assert!(e.message.contains("Tags[0].Hue"), "{}", e.message);
        let e = probe(json!({"KeyId": "k", "NumberOfBytes": "3"})).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("NumberOfBytes"), "{}", e.message);
        let e = probe(json!({"KeyId": "k", "NumberOfBytes": -1})).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let e = probe(json!({"KeyId": "k", "KeyIds": ["a", 2]})).unwrap_err();
        assert!(e.message.contains("KeyIds[1]"), "{}", e.message);
        let e = probe(json!({"KeyId": 5})).unwrap_err();
        assert!(e.message.contains("KeyId"), "{}", e.message);
        let e = parse::<Probe>(json!({"KeyId": 5}), "InvalidParameter").unwrap_err();
        assert_eq!(e.code, "InvalidParameter");
    }

    #[test]
    fn times_are_unix_seconds_or_zero() {
        for t in [0, 1_700_000_000, 4_102_444_800] {
            assert_eq!(unix(&crate::clock::rfc3339(t)), t);
        }
        for bad in ["", "2026-01-31", "2026-01-31T10:00:00", "x"] {
            assert_eq!(unix(bad), 0, "{bad}");
        }
    }

    #[test]
    fn answers_are_objects() {
        assert_eq!(fields(json!({"A": 1}))["A"], 1);
        assert!(fields(json!([1])).is_empty());
    }
}
