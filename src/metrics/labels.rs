//! Bounded label values. Unauthenticated clients choose the operation names they send, so
//! an operation becomes a label value only when hkms knows it (an instance API name, a
//! Tencent KMS or SSM action, one of hkmsd's gRPC methods); anything else is `other`.
//! Results (`OK` or an error code) and fronts are bounded the same way.

use std::collections::HashSet;
use std::sync::LazyLock;

include!(concat!(env!("OUT_DIR"), "/grpc_methods.rs"));

/// The label value of names that are not known.
pub const OTHER: &str = "other";

/// Longest result label value kept as it is.
pub const MAX_RESULT_LEN: usize = 64;

/// The fronts requests arrive through (as the audit trail names them).
pub const FRONTS: &[&str] = &["grpc", "instance", "tencent", "hkmsd"];

/// Tencent Cloud KMS (2019-01-18) actions: those served, and those answered
/// `UnsupportedOperation` (see src/front/tencent/kms/mod.rs).
pub const TENCENT_KMS_ACTIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "DescribeKeys",
    "ListKeys",
    "ListKeyDetail",
    "EnableKey",
    "DisableKey",
    "EnableKeys",
    "DisableKeys",
    "UpdateAlias",
    "UpdateKeyDescription",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "RotateKey",
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "ReEncrypt",
    "GenerateRandom",
    "GetPublicKey",
    "SignByAsymmetricKey",
    "VerifyByAsymmetricKey",
    "AsymmetricRsaDecrypt",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "ListAlgorithms",
    "GetServiceStatus",
    "GetRegions",
    "PostQuantumCryptoEncrypt",
    "PostQuantumCryptoDecrypt",
    "PostQuantumCryptoSign",
    "PostQuantumCryptoVerify",
    "AsymmetricSm2Decrypt",
    "ArchiveKey",
    "CancelKeyArchive",
    "BindCloudResource",
    "UnbindCloudResource",
];

/// Tencent Cloud SSM (2019-09-23) actions hkms answers (see src/front/tencent/ssm/mod.rs).
pub const TENCENT_SSM_ACTIONS: &[&str] = &[
    "CreateSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecret",
    "UpdateDescription",
    "DescribeSecret",
    "ListSecrets",
    "ListSecretVersionIds",
    "DeleteSecret",
    "RestoreSecret",
    "EnableSecret",
    "DisableSecret",
    "DeleteSecretVersion",
    "CreateSSHKeyPairSecret",
    "GetSSHKeyPairValue",
    "UpdateRotationStatus",
    "DescribeRotationDetail",
    "DescribeRotationHistory",
    "DescribeAsyncRequestInfo",
    "CreateService",
];

static KNOWN_OPERATIONS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    let mut known: HashSet<&'static str> = HashSet::new();
    // Every operation the instance API defines (a superset of those hkms serves).
    known.extend(crate::access::operations::INSTANCE_API);
    known.extend(TENCENT_KMS_ACTIONS);
    known.extend(TENCENT_SSM_ACTIONS);
    for path in GRPC_METHODS {
        known.insert(path);
        // The bare method name too (`Encrypt` for `/hkms.v1.CryptoService/Encrypt`).
        if let Some((_, method)) = path.rsplit_once('/') {
            known.insert(method);
        }
    }
    known
});

/// `operation` as a label value: itself when hkms knows the name, else [`OTHER`].
pub fn operation(operation: &str) -> &'static str {
    KNOWN_OPERATIONS.get(operation).copied().unwrap_or(OTHER)
}

/// `front` as a label value: one of [`FRONTS`], else [`OTHER`].
pub fn front(front: &str) -> &'static str {
    FRONTS
        .iter()
        .find(|f| **f == front)
        .copied()
        .unwrap_or(OTHER)
}

/// `result` as a label value: `OK` or an error code (ASCII letters, digits and dots, at
/// most [`MAX_RESULT_LEN`] characters), else [`OTHER`].
pub fn result(result: &str) -> String {
    let fits = !result.is_empty()
        && result.len() <= MAX_RESULT_LEN
        && result
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.');
    if fits {
        result.to_owned()
    } else {
        OTHER.to_owned()
    }
}

/// A label value made of code-like text (an HSM return code, a throttling reason): kept
/// when short and made of ASCII letters, digits, `_`, `-` and `.`, else [`OTHER`].
pub fn code(code: &str) -> String {
    let fits = !code.is_empty()
        && code.len() <= MAX_RESULT_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fits {
        code.to_owned()
    } else {
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_operations_are_kept() {
        for name in [
            "Encrypt",
            "GetSecretValue",
            "AdvanceGenerateDataKeyPairWithoutPlaintext",
            "SignByAsymmetricKey",
            "ListSecretVersionIds",
            "/hkms.v1.CryptoService/Encrypt",
            "/hkms.v1.AdminService/GetStatus",
            "/hkms.v1.ApplicationService/Relay",
            "GetStatus",
        ] {
            assert_eq!(operation(name), name);
        }
    }

    #[test]
    fn unknown_operations_are_other() {
        for name in [
            "",
            "encrypt",
            "Encrypt ",
            "NoSuchAction",
            "/hkms.v1.CryptoService/NoSuchMethod",
            "/other.v1.CryptoService/Encrypt",
            "/hkms.v1.NoService/Encrypt",
            &"A".repeat(10_000),
            "Encrypt\n",
        ] {
            assert_eq!(operation(name), OTHER, "{name:?}");
        }
    }

    #[test]
    fn every_instance_and_grpc_name_is_known() {
        for name in crate::front::instance::SUPPORTED {
            assert_eq!(operation(name), name);
        }
        assert!(GRPC_METHODS.len() > 50, "{GRPC_METHODS:?}");
        for path in GRPC_METHODS {
            assert!(path.starts_with("/hkms.v1."), "{path}");
            assert_eq!(operation(path), *path);
        }
    }

    #[test]
    fn grpc_methods_come_from_the_generated_services() {
        use crate::proto::crypto_service_server::SERVICE_NAME as CRYPTO;
        use crate::proto::key_service_server::SERVICE_NAME as KEYS;
        assert!(GRPC_METHODS.contains(&format!("/{CRYPTO}/Encrypt").as_str()));
        assert!(GRPC_METHODS.contains(&format!("/{KEYS}/CreateKey").as_str()));
    }

    #[test]
    fn results_are_bounded() {
        assert_eq!(result("OK"), "OK");
        assert_eq!(result("Rejected.Throttling"), "Rejected.Throttling");
        assert_eq!(result("AccessDenied"), "AccessDenied");
        assert_eq!(result(""), OTHER);
        assert_eq!(result("bad code"), OTHER);
        assert_eq!(result("code\"}"), OTHER);
        assert_eq!(
            result(&"A".repeat(MAX_RESULT_LEN)),
            "A".repeat(MAX_RESULT_LEN)
        );
        assert_eq!(result(&"A".repeat(MAX_RESULT_LEN + 1)), OTHER);
        assert_eq!(result("Ünïcode"), OTHER);
    }

    #[test]
    fn fronts_and_codes_are_bounded() {
        assert_eq!(front("grpc"), "grpc");
        assert_eq!(front("tencent"), "tencent");
        assert_eq!(front("evil"), OTHER);
        assert_eq!(code("DeviceError"), "DeviceError");
        assert_eq!(code("per_source"), "per_source");
        assert_eq!(code("a b"), OTHER);
        assert_eq!(code(""), OTHER);
    }
}
