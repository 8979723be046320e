//! The rules for what callers name and send: secret names (and the managed-secret form
//! `<product>!<identifier>`), version ids, stages, data types, values and extended
//! configuration. Each rule refuses with `InvalidParameter` and says what is allowed.

pub use crate::access::secrets::check_product;
use crate::error::KmsError;

/// Longest secret name.
pub const MAX_NAME: usize = 192;
/// Longest version id or stage name.
pub const MAX_ID: usize = 64;
/// Largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest extended configuration (a JSON object), in bytes.
pub const MAX_EXTENDED_CONFIG: usize = 1024;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1024;
/// Most stages one version may hold.
pub const MAX_STAGES_PER_VERSION: usize = 10;

/// The stage GetSecretValue reads by default.
pub const CURRENT: &str = "ACSCurrent";
/// The stage that follows the version ACSCurrent left.
pub const PREVIOUS: &str = "ACSPrevious";

fn invalid(message: String) -> KmsError {
    KmsError::invalid(message)
}

/// The managing product of a managed secret's name (`aigw` for `aigw!secret-abc`).
pub fn managed_product(name: &str) -> Option<&str> {
    name.split_once('!').map(|(product, _)| product)
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// Checks a secret name: 1..192 letters, digits and `/ _ + = . @ -`, not starting with
/// `acs/` or `hkms/` (reserved); or a managed name `<product>!<identifier>` whose parts
/// follow [`check_product`] and the same character rules.
pub fn check_name(name: &str) -> Result<(), KmsError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(invalid(format!(
            "SecretName must be 1 to {MAX_NAME} characters"
        )));
    }
    let identifier = match name.split_once('!') {
        Some((product, identifier)) => {
            check_product(product)?;
            identifier
        }
        None => name,
    };
    if identifier.is_empty() || !identifier.chars().all(name_char) {
        return Err(invalid(format!(
            "SecretName {name:?} may only hold letters, digits and / _ + = . @ - (and one '!' after a product code, for managed secrets)"
        )));
    }
    if name.starts_with("acs/") || name.starts_with("hkms/") {
        return Err(invalid(format!(
            "SecretName {name:?} starts with a reserved prefix (acs/, hkms/)"
        )));
    }
    Ok(())
}

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

/// Checks a version id or a stage name: 1..64 letters, digits and `_ . -`.
pub fn check_id(what: &str, id: &str) -> Result<(), KmsError> {
    if id.is_empty() || id.len() > MAX_ID || !id.chars().all(id_char) {
        return Err(invalid(format!(
            "{what} {id:?} must be 1 to {MAX_ID} letters, digits, '_', '.' or '-'"
        )));
    }
    Ok(())
}

/// How a value is to be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Text,
    Binary,
}

impl DataType {
    /// Parses `text` (the default, also when empty) or `binary`.
    pub fn parse(s: &str) -> Result<DataType, KmsError> {
        match s {
            "" | "text" => Ok(DataType::Text),
            "binary" => Ok(DataType::Binary),
            other => Err(invalid(format!(
                "SecretDataType {other:?} must be text or binary"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::Binary => "binary",
        }
    }
}

/// Checks a value: 1..64 KiB; UTF-8 for text.
pub fn check_value(value: &[u8], data_type: DataType) -> Result<(), KmsError> {
    if value.is_empty() || value.len() > MAX_VALUE_BYTES {
        return Err(invalid(format!(
            "SecretData must be 1 to {MAX_VALUE_BYTES} bytes"
        )));
    }
    if data_type == DataType::Text && std::str::from_utf8(value).is_err() {
        return Err(invalid(
            "SecretData of type text must be UTF-8; send other bytes as binary".into(),
        ));
    }
    Ok(())
}

/// Checks extended configuration: empty, or a JSON object of at most 1 KiB.
pub fn check_extended_config(config: &str) -> Result<(), KmsError> {
    if config.is_empty() {
        return Ok(());
    }
    if config.len() > MAX_EXTENDED_CONFIG {
        return Err(invalid(format!(
            "ExtendedConfig is at most {MAX_EXTENDED_CONFIG} bytes"
        )));
    }
    match serde_json::from_str::<serde_json::Value>(config) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(invalid("ExtendedConfig must be a JSON object".into())),
    }
}

/// Checks a description: at most 1024 characters.
pub fn check_description(description: &str) -> Result<(), KmsError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(invalid(format!(
            "Description is at most {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "db",
            "rds-ibm/prod_1+x=y.z@w",
            "aigw!secret-abc",
            "mcp!a",
            &"a".repeat(MAX_NAME),
        ] {
            check_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "a b",
            "x!",
            "!x",
            "Aigw!x",
            "a!b!c",
            "1gw!x",
            "acs/x",
            "hkms/x",
            "é",
            &"a".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(managed_product("aigw!secret-abc"), Some("aigw"));
        assert_eq!(managed_product("db"), None);
    }

    #[test]
    fn ids_types_values() {
        check_id("VersionId", "v1.0_x-y").unwrap();
        for bad in ["", "a/b", "a b", &"a".repeat(65)] {
            assert!(check_id("VersionId", bad).is_err(), "{bad:?}");
        }
        assert_eq!(DataType::parse("").unwrap(), DataType::Text);
        assert_eq!(DataType::parse("binary").unwrap(), DataType::Binary);
        assert!(DataType::parse("Text").is_err());
        check_value(b"pw", DataType::Text).unwrap();
        check_value(&[0xff, 0], DataType::Binary).unwrap();
        assert!(check_value(&[0xff, 0], DataType::Text).is_err());
        assert!(check_value(b"", DataType::Binary).is_err());
        assert!(check_value(&vec![1; MAX_VALUE_BYTES + 1], DataType::Binary).is_err());
        check_extended_config("").unwrap();
        check_extended_config(r#"{"DBHost":"db.local"}"#).unwrap();
        assert!(check_extended_config("[1]").is_err());
        assert!(check_extended_config("{").is_err());
    }
}
