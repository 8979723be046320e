//! Reading an SSM request's fields: the SDKs send strings, integers (JSON numbers; `tccli`
//! may send them as strings of digits), booleans, lists and objects, and leave out the
//! fields the caller did not set (`null` counts as left out). A field of the wrong JSON type
//! is `InvalidParameter`, a required field left out (or empty) `MissingParameter`, a value
//! out of range `InvalidParameterValue` (from the handler).

use super::super::errors::TcError;
use crate::store::records::TagRecord;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// A request's fields.
#[derive(Debug)]
pub struct Req<'a>(pub &'a Map<String, Value>);

fn wrong_type(name: &str, what: &str) -> TcError {
    TcError::new("InvalidParameter", format!("{name} must be {what}"))
}

pub fn missing(name: &str) -> TcError {
    TcError::new("MissingParameter", format!("{name} is required"))
}

/// A secret's value as the request gives it: exactly one of `SecretString` (text, as it
/// is) and `SecretBinary` (base64).
#[derive(Debug)]
pub struct SecretValue {
    pub data: Zeroizing<Vec<u8>>,
    /// hkms's data type: `text` or `binary`.
    pub data_type: &'static str,
}

impl<'a> Req<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string field; `None` when left out.
    pub fn string(&self, name: &str) -> Result<Option<&'a str>, TcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    /// A string field, empty when left out.
    pub fn text(&self, name: &str) -> Result<&'a str, TcError> {
        Ok(self.string(name)?.unwrap_or(""))
    }

    /// A string field that must be given and not be empty.
    pub fn required(&self, name: &str) -> Result<&'a str, TcError> {
        match self.string(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(missing(name)),
        }
    }

    /// An integer field; `None` when left out.
    pub fn int(&self, name: &str) -> Result<Option<i64>, TcError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(name, "an integer")),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| wrong_type(name, "an integer")),
            Some(_) => Err(wrong_type(name, "an integer")),
        }
    }

    /// A boolean field, false when left out.
    pub fn flag(&self, name: &str) -> Result<bool, TcError> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(wrong_type(name, "a boolean")),
        }
    }

    /// A list of objects; empty when left out.
    fn objects(&self, name: &str) -> Result<Vec<Req<'a>>, TcError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(Req(m)),
                    _ => Err(wrong_type(name, "a list of objects")),
                })
                .collect(),
            Some(_) => Err(wrong_type(name, "a list of objects")),
        }
    }

    /// `Tags`: `[{"TagKey", "TagValue"}]`. A key given twice is
    /// `InvalidParameterValue.TagKeysDuplicated`.
    pub fn tags(&self, name: &str) -> Result<Vec<TagRecord>, TcError> {
        let mut out: Vec<TagRecord> = Vec::new();
        for t in self.objects(name)? {
            let key = t.required("TagKey")?.to_owned();
            if out.iter().any(|o| o.key == key) {
                return Err(TcError::new(
                    "InvalidParameterValue.TagKeysDuplicated",
                    format!("tag key {key:?} is given twice"),
                ));
            }
            out.push(TagRecord {
                key,
                value: t.text("TagValue")?.to_owned(),
            });
        }
        Ok(out)
    }

    /// `TagFilters`: `[{"TagKey", "TagValue": [..]}]`, each a key and the values it may
    /// have (any value when none are listed).
    pub fn tag_filters(&self, name: &str) -> Result<Vec<(String, Vec<String>)>, TcError> {
        let mut out = Vec::new();
        for f in self.objects(name)? {
            let key = f.required("TagKey")?.to_owned();
            let values = match f.get("TagValue") {
                None => Vec::new(),
                Some(Value::Array(vs)) => vs
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err(wrong_type("TagValue", "a list of strings")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(Value::String(s)) => vec![s.clone()],
                Some(_) => return Err(wrong_type("TagValue", "a list of strings")),
            };
            out.push((key, values));
        }
        Ok(out)
    }

    /// The value: exactly one of `SecretString` and `SecretBinary` (base64); `None` when
    /// neither is given.
    pub fn secret_value(&self) -> Result<Option<SecretValue>, TcError> {
        match (self.string("SecretString")?, self.string("SecretBinary")?) {
            (Some(_), Some(_)) => Err(TcError::new(
                "InvalidParameter",
                "give SecretString or SecretBinary, not both",
            )),
            (Some(text), None) => Ok(Some(SecretValue {
                data: Zeroizing::new(text.as_bytes().to_vec()),
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

    /// [`Req::secret_value`], which must be given.
    pub fn required_value(&self) -> Result<SecretValue, TcError> {
        self.secret_value()?.ok_or_else(|| {
            TcError::new(
                "MissingParameter",
                "SecretString (text) or SecretBinary (base64) is required",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn fields_have_their_types_and_null_is_left_out() {
        let m = req(
            json!({"S": "x", "E": "", "N": 7, "NS": "30", "B": true, "Z": null,
                           "F": 1.5, "L": [1]}),
        );
        let r = Req(&m);
        assert_eq!(r.string("S").unwrap(), Some("x"));
        assert_eq!(r.string("Z").unwrap(), None);
        assert_eq!(r.text("absent").unwrap(), "");
        assert_eq!(r.required("S").unwrap(), "x");
        assert_eq!(r.required("E").unwrap_err().code, "MissingParameter");
        assert_eq!(r.required("Z").unwrap_err().code, "MissingParameter");
        assert_eq!(r.string("N").unwrap_err().code, "InvalidParameter");
        assert_eq!(r.int("N").unwrap(), Some(7));
        assert_eq!(r.int("NS").unwrap(), Some(30));
        assert_eq!(r.int("Z").unwrap(), None);
        assert_eq!(r.int("F").unwrap_err().code, "InvalidParameter");
        assert_eq!(r.int("S").unwrap_err().code, "InvalidParameter");
        assert!(r.flag("B").unwrap());
        assert!(!r.flag("absent").unwrap());
        assert_eq!(r.flag("N").unwrap_err().code, "InvalidParameter");
        assert_eq!(r.tags("L").unwrap_err().code, "InvalidParameter");
    }

    #[test]
    fn tags_and_tag_filters() {
        let m = req(json!({
            "Tags": [{"TagKey": "team", "TagValue": "db"}, {"TagKey": "env"}],
            "Twice": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}],
            "TagFilters": [{"TagKey": "team", "TagValue": ["db", "web"]}, {"TagKey": "env"}],
        }));
        let r = Req(&m);
        let tags = r.tags("Tags").unwrap();
        assert_eq!(
            (tags[0].key.as_str(), tags[0].value.as_str()),
            ("team", "db")
        );
        assert_eq!((tags[1].key.as_str(), tags[1].value.as_str()), ("env", ""));
        assert_eq!(
            r.tags("Twice").unwrap_err().code,
            "InvalidParameterValue.TagKeysDuplicated"
        );
        assert!(r.tags("absent").unwrap().is_empty());
        assert_eq!(
            r.tag_filters("TagFilters").unwrap(),
            [
                ("team".to_owned(), vec!["db".to_owned(), "web".to_owned()]),
                ("env".to_owned(), vec![])
            ]
        );
    }

    #[test]
    fn a_value_is_text_or_base64_binary_never_both() {
        let m = req(json!({"SecretString": "pässword"}));
        let v = Req(&m).required_value().unwrap();
        assert_eq!(
            (v.data.as_slice(), v.data_type),
            ("pässword".as_bytes(), "text")
        );
        let m = req(json!({"SecretBinary": "AP8Q"}));
        let v = Req(&m).required_value().unwrap();
        assert_eq!(
            (v.data.as_slice(), v.data_type),
            (&[0, 0xff, 0x10][..], "binary")
        );
        let m = req(json!({"SecretBinary": "not base64!"}));
        assert_eq!(
            Req(&m).required_value().unwrap_err().code,
            "InvalidParameterValue"
        );
        let m = req(json!({"SecretString": "a", "SecretBinary": "YQ=="}));
        assert_eq!(
            Req(&m).required_value().unwrap_err().code,
            "InvalidParameter"
        );
        let m = req(json!({}));
        assert_eq!(
            Req(&m).required_value().unwrap_err().code,
            "MissingParameter"
        );
        assert!(Req(&m).secret_value().unwrap().is_none());
    }
}
