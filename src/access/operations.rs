//! Which role each application operation needs, and which resource it touches.
//!
//! Operations not listed here (access management, HSM members, init...) are administrative:
//! only operators may call them. Key and secret lifecycle operations are listed for the
//! administrator roles, which APIs that manage keys (Tencent Cloud's) need.

use super::role::Role;

/// Operations an application may be granted, with the roles that grant them.
const TABLE: &[(&str, &[Role])] = &[
    ("Encrypt", &[Role::KeyUser]),
    ("Decrypt", &[Role::KeyUser]),
    ("GenerateDataKey", &[Role::KeyUser]),
    ("GenerateDataKeyWithoutPlaintext", &[Role::KeyUser]),
    ("ReEncrypt", &[Role::KeyUser]),
    ("GenerateRandom", &[Role::KeyUser]),
    ("Sign", &[Role::KeyUser]),
    ("Verify", &[Role::KeyUser]),
    ("GetPublicKey", &[Role::KeyUser]),
    ("Hmac", &[Role::KeyUser]),
    ("AsymmetricEncrypt", &[Role::KeyUser]),
    ("AsymmetricDecrypt", &[Role::KeyUser]),
    ("GenerateMac", &[Role::KeyUser]),
    ("VerifyMac", &[Role::KeyUser]),
    ("AdvanceEncrypt", &[Role::KeyUser]),
    ("AdvanceDecrypt", &[Role::KeyUser]),
    ("AdvanceGenerateDataKey", &[Role::KeyUser]),
    ("GenerateDataKeyPair", &[Role::KeyUser]),
    ("GenerateDataKeyPairWithoutPlaintext", &[Role::KeyUser]),
    ("AdvanceGenerateDataKeyPair", &[Role::KeyUser]),
    (
        "AdvanceGenerateDataKeyPairWithoutPlaintext",
        &[Role::KeyUser],
    ),
    (
        "GetSecretValue",
        &[
            Role::SecretUser,
            Role::SharedSecretUser,
            Role::SecretAdministrator,
        ],
    ),
    (
        "DescribeSecret",
        &[Role::SecretUser, Role::SecretAdministrator],
    ),
    (
        "ListSecrets",
        &[Role::SecretUser, Role::SecretAdministrator],
    ),
    (
        "ListSecretVersionIds",
        &[Role::SecretUser, Role::SecretAdministrator],
    ),
    (
        "PutSecretValue",
        &[Role::SecretUser, Role::SecretAdministrator],
    ),
    (
        "UpdateSecretVersionStage",
        &[Role::SecretUser, Role::SecretAdministrator],
    ),
    // What the service offers (its algorithms, status, region): no resource, so the role,
    // the network rules and the endpoint decide.
    ("DescribeService", &[Role::KeyUser, Role::KeyAdministrator]),
    // Key metadata: for the keys a policy covers.
    ("DescribeKey", &[Role::KeyUser, Role::KeyAdministrator]),
    ("ListKeys", &[Role::KeyUser, Role::KeyAdministrator]),
    // Key lifecycle.
    ("CreateKey", &[Role::KeyAdministrator]),
    ("EnableKey", &[Role::KeyAdministrator]),
    ("DisableKey", &[Role::KeyAdministrator]),
    ("UpdateAlias", &[Role::KeyAdministrator]),
    ("UpdateKeyDescription", &[Role::KeyAdministrator]),
    ("ScheduleKeyDeletion", &[Role::KeyAdministrator]),
    ("CancelKeyDeletion", &[Role::KeyAdministrator]),
    ("UpdateRotationPolicy", &[Role::KeyAdministrator]),
    ("CreateKeyVersion", &[Role::KeyAdministrator]),
    ("GetParametersForImport", &[Role::KeyAdministrator]),
    ("ImportKeyMaterial", &[Role::KeyAdministrator]),
    ("DeleteKeyMaterial", &[Role::KeyAdministrator]),
    // Secret lifecycle.
    ("CreateSecret", &[Role::SecretAdministrator]),
    ("UpdateSecret", &[Role::SecretAdministrator]),
    ("DeleteSecret", &[Role::SecretAdministrator]),
    ("RestoreSecret", &[Role::SecretAdministrator]),
    ("EnableSecret", &[Role::SecretAdministrator]),
    ("DisableSecret", &[Role::SecretAdministrator]),
];

/// The operations the KMS instance API (`dkms-gcs-0.2`) defines: the fifteen every SDK
/// exposes, and Hmac (the C# SDK). Over the instance API any other name, even one an
/// application may call over gRPC (GenerateDataKeyWithoutPlaintext, ReEncrypt), is no
/// operation at all and answers `InvalidApiName`.
pub const INSTANCE_API: [&str; 16] = [
    "Encrypt",
    "Decrypt",
    "Sign",
    "Verify",
    "GenerateRandom",
    "GenerateDataKey",
    "GetPublicKey",
    "GetSecretValue",
    "AdvanceEncrypt",
    "AdvanceDecrypt",
    "AdvanceGenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "AdvanceGenerateDataKeyPair",
    "AdvanceGenerateDataKeyPairWithoutPlaintext",
    "Hmac",
];

/// Whether the KMS instance API defines `api_name` (the `x-kms-apiname` header).
pub fn in_instance_api(api_name: &str) -> bool {
    INSTANCE_API.contains(&api_name)
}

/// The roles that grant `operation` to an application; `None` for administrative or
/// unknown operations, which applications may never call.
pub fn roles_for(operation: &str) -> Option<&'static [Role]> {
    TABLE
        .iter()
        .find(|(name, _)| *name == operation)
        .map(|(_, roles)| *roles)
}

/// Resource names a key reference stands for. A key id gives `key/<id>`; an alias gives
/// `alias/<name>` and, once resolved, the key it points to (`key/<id>`), so a policy on
/// either grants the request.
pub fn key_resources(requested: &str, resolved_key_id: &str) -> Vec<String> {
    let mut out = vec![format!("key/{resolved_key_id}")];
    if let Some(alias) = requested.strip_prefix("alias/") {
        out.push(format!("alias/{alias}"));
    }
    out
}

/// The resource of a key that could not be identified (a key version id that names no
/// stored version). No policy can name it (a resource needs a name after `key/`), so only a
/// pattern that covers every key (`key/*`) matches it: only callers who may use any key
/// learn that such a key does not exist.
pub const ANY_KEY: &str = "key/";

/// The resource name of a secret.
pub fn secret_resource(name: &str) -> String {
    format!("secret/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_operations_are_not_grantable() {
        for op in [
            "Init",
            "AddMember",
            "SetDeletionProtection",
            "CreatePolicy",
            "CreateClientKey",
            "",
        ] {
            assert!(roles_for(op).is_none(), "{op}");
        }
        assert_eq!(roles_for("Encrypt"), Some(&[Role::KeyUser][..]));
        assert_eq!(roles_for("CreateKey"), Some(&[Role::KeyAdministrator][..]));
        assert_eq!(
            roles_for("DescribeService"),
            Some(&[Role::KeyUser, Role::KeyAdministrator][..])
        );
        assert!(!roles_for("CreateSecret")
            .unwrap()
            .contains(&Role::SecretUser));
        assert!(roles_for("GetSecretValue")
            .unwrap()
            .contains(&Role::SharedSecretUser));
    }

    #[test]
    fn the_instance_api_defines_its_own_operations_only() {
        for op in INSTANCE_API {
            assert!(in_instance_api(op), "{op}");
            assert!(roles_for(op).is_some(), "{op} is grantable");
        }
        // Grantable over gRPC, yet no operation of the instance API.
        for op in ["GenerateDataKeyWithoutPlaintext", "ReEncrypt"] {
            assert!(roles_for(op).is_some(), "{op}");
            assert!(!in_instance_api(op), "{op}");
        }
        for op in ["CreateKey", "encrypt", "", "Encrypt "] {
            assert!(!in_instance_api(op), "{op:?}");
        }
    }

    #[test]
    fn an_unidentified_key_is_covered_only_by_every_key() {
        use super::super::pattern;
        assert!(pattern::matches("key/*", ANY_KEY));
        assert!(pattern::matches("*", ANY_KEY));
        for narrower in ["key/k1", "key/k*", "key/*-1", "alias/*"] {
            assert!(!pattern::matches(narrower, ANY_KEY), "{narrower}");
        }
        assert!(
            pattern::validate_resource(ANY_KEY).is_err(),
            "no policy names it"
        );
    }

    #[test]
    fn aliases_stand_for_the_alias_and_the_key() {
        assert_eq!(key_resources("k1", "k1"), ["key/k1"]);
        assert_eq!(
            key_resources("alias/app", "k1"),
            ["key/k1".to_string(), "alias/app".to_string()]
        );
    }
}
