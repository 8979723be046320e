//! The KMS codec (`2019-01-18`): one handler per action, each a call of [`crate::ops`].
//!
//! Requests are decoded into one struct per action with the SDK's field names
//! (`tencentcloud/kms/v20190118/models.py`); a missing required field is
//! `MissingParameter`, a field the action does not have `UnknownParameter`, a value of the
//! wrong type or out of range `InvalidParameterValue` (or the action's own code). Responses
//! use the SDK's names too; fields with no meaning on an appliance (accounts, HSM clusters,
//! replication) are left out, which the SDK reads as null.
//!
//! # Mapping decisions
//!
//! - **CiphertextBlob** is the base64 of hkms's self-describing ciphertext: it names the key
//!   and the key version, so `Decrypt` and `ReEncrypt` need no KeyId, and a blob made
//!   through any other API of hkms (CLI, gRPC, the instance API's advance ciphertexts)
//!   decrypts here and the reverse.
//! - **EncryptionContext** (a JSON string of string pairs) becomes the AAD in canonical
//!   form: parsed as a JSON object whose values are strings (duplicate names refused),
//!   sorted by name and serialised compactly (`{"a":"1","b":"2"}`), so the order of the
//!   fields does not matter. An absent, empty or `{}` context is no AAD. Anything else is
//!   `InvalidParameterValue`. Another API decrypts with `--aad` set to the canonical form.
//! - **Alias**: Tencent's CreateKey requires one (1 to 60 letters, digits, `_`, `-`, the
//!   first a letter or digit; `kms-` is reserved for cloud products and refused). It becomes
//!   the hkms alias `alias/<Alias>`, which every API of hkms accepts in place of the key id.
//!   A key's Alias in DescribeKey is its oldest alias whose name fits Tencent's rules (a key
//!   made elsewhere may have none, or several); `UpdateAlias` renames that alias (the new
//!   name takes its place) or gives the key one.
//! - **KeyUsage** <-> hkms key spec and usage: `ENCRYPT_DECRYPT` = AES-256 (an AES-128 key
//!   made elsewhere also shows `ENCRYPT_DECRYPT`), `ASYMMETRIC_DECRYPT_RSA_2048` = RSA_2048
//!   ENCRYPT/DECRYPT, `ASYMMETRIC_SIGN_VERIFY_RSA_2048` = RSA_2048 SIGN/VERIFY,
//!   `ASYMMETRIC_SIGN_VERIFY_ECC` = EC_P256, `ASYMMETRIC_SIGN_VERIFY_ECDSA384` = EC_P384. The
//!   SM2 usages are `UnsupportedOperation.UnsupportedKeyUsageInCurrentRegion` (no member
//!   offers SM2). Keys made elsewhere with specs the SDK has no usage for show as
//!   `ASYMMETRIC_DECRYPT_RSA_3072`, `ASYMMETRIC_SIGN_VERIFY_RSA_4096`,
//!   `ASYMMETRIC_SIGN_VERIFY_SECP256K1`, `GENERATE_VERIFY_MAC_HMAC_SHA_256`...; CreateKey
//!   accepts only the SDK's usages.
//! - **Type** (CreateKey): 1 generated inside the HSMs, 2 `EXTERNAL` (imported material,
//!   `ENCRYPT_DECRYPT` only). In KeyMetadata, `Type` is always 2 (FIPS-style algorithms; 4
//!   would be SM) and `Origin` is `TENCENT_KMS` or `EXTERNAL`.
//! - **KeyState**: Enabled, Disabled, PendingDelete (hkms's PendingDeletion), PendingImport.
//!   hkms has no Archived state.
//! - **Times** are Unix seconds: CreateTime, DeletionDate, NextRotateTime, LastRotateTime,
//!   ValidTo (0: never), ParametersValidTo.
//! - **Rotation**: `EnableKeyRotation` RotateDays (7 to 365, default 365) is hkms's
//!   automatic rotation interval; `RotateKey` makes a new primary version now and answers
//!   its version id as TaskId (the rotation is done when the answer comes).
//! - **Deletion**: PendingWindowInDays 7 to 30 (Tencent's range; hkms itself allows up to
//!   366). The key must be Disabled first (`ResourceUnavailable.CmkShouldBeDisabled`).
//! - **Signatures**: `RSA_PSS_SHA_256` and `RSA_PKCS1_SHA_256` as named; `ECC_P256_R1` is
//!   ECDSA with SHA-256 on a P-256 key; hkms's own names (`ECDSA_SHA_384` for
//!   `ASYMMETRIC_SIGN_VERIFY_ECDSA384` keys, for which the SDK names no algorithm,
//!   `RSA_PSS_SHA_384`...) are accepted too. `SM2DSA` is `UnsupportedOperation`. MessageType
//!   RAW (hashed here) or DIGEST (the hash's length). ECDSA signatures are DER.
//! - **AsymmetricRsaDecrypt**: RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256; RSAES_PKCS1_V1_5 is
//!   `UnsupportedOperation` (PKCS#1 v1.5 decryption is open to padding-oracle attacks).
//! - **Import**: WrappingAlgorithm RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256 (RSAES_PKCS1_V1_5
//!   refused as above), WrappingKeySpec RSA_2048 (hkms also takes RSA_3072, RSA_4096); the
//!   ImportToken is a string. EncryptedKeyMaterial is 32 bytes of AES-256 material wrapped
//!   with the public key.
//! - **Not offered**: plaintexts re-encrypted to a caller's public key (`EncryptionPublicKey`
//!   of Decrypt and GenerateDataKey), data keys hosted by KMS (`IsHostedByKms`), member
//!   accounts, HSM cluster ids: `UnsupportedOperation` or `InvalidParameterValue.*` naming
//!   the parameter. So are the actions in [`UNSERVED`].
//! - Every action is authorised like the hkms operation it runs (`Encrypt`, `Sign`,
//!   `CreateKey`, `EnableKey`...). `ListAlgorithms`, `GetServiceStatus` and `GetRegions`,
//!   which describe the appliance, run `DescribeService` (granted by
//!   `CryptoServiceKeyUser` and `CryptoServiceKeyAdministrator`, on no resource), so the
//!   network rules and the Internet endpoint's need of a `Public` rule apply to them too.
//!   Listings show only the keys the caller may describe, by key id or by alias.
//! - **Aliases are names a policy grants** (`alias/<name>`): CreateKey needs `CreateKey` on
//!   its Alias, UpdateAlias needs `UpdateAlias` on the key, on the new Alias and on the
//!   alias it replaces. A refused caller is not told whether the alias exists.

mod asymmetric;
mod crypto;
mod import;
mod keys;
mod service;
mod wire;

use super::errors::TcError;
use super::json::Fields;
use crate::ops::Ctx;
use serde_json::{Map, Value};

macro_rules! served {
    ($($name:ident),* $(,)?) => {
        /// The actions hkms serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Action {
            $($name),*
        }

        /// Every served action by its name.
        const SERVED: &[(&str, Action)] = &[$((stringify!($name), Action::$name)),*];
    };
}

served!(
    CreateKey,
    DescribeKey,
    DescribeKeys,
    ListKeys,
    ListKeyDetail,
    EnableKey,
    DisableKey,
    EnableKeys,
    DisableKeys,
    UpdateAlias,
    UpdateKeyDescription,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    EnableKeyRotation,
    DisableKeyRotation,
    GetKeyRotationStatus,
    RotateKey,
    Encrypt,
    Decrypt,
    GenerateDataKey,
    ReEncrypt,
    GenerateRandom,
    GetPublicKey,
    SignByAsymmetricKey,
    VerifyByAsymmetricKey,
    AsymmetricRsaDecrypt,
    GetParametersForImport,
    ImportKeyMaterial,
    DeleteImportedKeyMaterial,
    ListAlgorithms,
    GetServiceStatus,
    GetRegions,
);

const NO_PQC: &str = "post-quantum keys (ML-KEM, ML-DSA) need CKM_ML_KEM / CKM_ML_DSA \
                      (PKCS#11 3.2), which no HSM member of this appliance offers";
const NO_HOSTED_DATA_KEYS: &str = "data keys hosted by KMS are not offered: GenerateDataKey \
                                   returns a data key and its CiphertextBlob for you to keep";
const NO_WHITE_BOX: &str = "white-box keys are not offered: keys never leave the HSMs";
const NO_ARCHIVE: &str = "keys are not archived; disable the key (DisableKey) instead";
const NO_CLOUD: &str = "there are no cloud products on an appliance to bind keys to";

/// Actions of the SDK's `kms_client` (3.1.192) that hkms does not serve, and why: each
/// answers `UnsupportedOperation` with that reason.
const UNSERVED: &[(&str, &str)] = &[
    ("PostQuantumCryptoEncrypt", NO_PQC),
    ("PostQuantumCryptoDecrypt", NO_PQC),
    ("PostQuantumCryptoSign", NO_PQC),
    ("PostQuantumCryptoVerify", NO_PQC),
    (
        "AsymmetricSm2Decrypt",
        "SM2 keys need an SM2 mechanism (vendor-defined in PKCS#11), which no HSM member \
         of this appliance offers",
    ),
    ("ArchiveKey", NO_ARCHIVE),
    ("CancelKeyArchive", NO_ARCHIVE),
    ("BindCloudResource", NO_CLOUD),
    ("UnbindCloudResource", NO_CLOUD),
    ("CancelDataKeyDeletion", NO_HOSTED_DATA_KEYS),
    ("DescribeDataKey", NO_HOSTED_DATA_KEYS),
    ("DescribeDataKeys", NO_HOSTED_DATA_KEYS),
    ("DisableDataKey", NO_HOSTED_DATA_KEYS),
    ("DisableDataKeys", NO_HOSTED_DATA_KEYS),
    ("EnableDataKey", NO_HOSTED_DATA_KEYS),
    ("EnableDataKeys", NO_HOSTED_DATA_KEYS),
    ("GetDataKeyCiphertextBlob", NO_HOSTED_DATA_KEYS),
    ("GetDataKeyPlaintext", NO_HOSTED_DATA_KEYS),
    ("ImportDataKey", NO_HOSTED_DATA_KEYS),
    ("ListDataKeyDetail", NO_HOSTED_DATA_KEYS),
    ("ListDataKeys", NO_HOSTED_DATA_KEYS),
    ("ScheduleDataKeyDeletion", NO_HOSTED_DATA_KEYS),
    ("UpdateDataKeyDescription", NO_HOSTED_DATA_KEYS),
    ("UpdateDataKeyName", NO_HOSTED_DATA_KEYS),
    ("CreateWhiteBoxKey", NO_WHITE_BOX),
    ("DeleteWhiteBoxKey", NO_WHITE_BOX),
    ("DescribeWhiteBoxDecryptKey", NO_WHITE_BOX),
    ("DescribeWhiteBoxDeviceFingerprints", NO_WHITE_BOX),
    ("DescribeWhiteBoxKey", NO_WHITE_BOX),
    ("DescribeWhiteBoxKeyDetails", NO_WHITE_BOX),
    ("DescribeWhiteBoxServiceStatus", NO_WHITE_BOX),
    ("DisableWhiteBoxKey", NO_WHITE_BOX),
    ("DisableWhiteBoxKeys", NO_WHITE_BOX),
    ("EnableWhiteBoxKey", NO_WHITE_BOX),
    ("EnableWhiteBoxKeys", NO_WHITE_BOX),
    ("EncryptByWhiteBox", NO_WHITE_BOX),
    ("OverwriteWhiteBoxDeviceFingerprints", NO_WHITE_BOX),
];

/// How hkms answers an action name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Served(Action),
    Unserved(&'static str),
    /// No action of KMS 2019-01-18.
    Unknown,
}

fn route(action: &str) -> Route {
    if let Some((_, a)) = SERVED.iter().find(|(name, _)| *name == action) {
        return Route::Served(*a);
    }
    if let Some((_, why)) = UNSERVED.iter().find(|(name, _)| *name == action) {
        return Route::Unserved(why);
    }
    Route::Unknown
}

/// Runs `action` with the request's fields.
pub async fn run(ctx: Ctx<'_>, action: &str, body: Map<String, Value>) -> Result<Fields, TcError> {
    let action = match route(action) {
        Route::Served(a) => a,
        Route::Unserved(why) => {
            return Err(TcError::new(
                "UnsupportedOperation",
                format!("{action} is not supported by this appliance: {why}"),
            ))
        }
        Route::Unknown => {
            return Err(TcError::new(
                "InvalidAction",
                format!("the action {action:?} is not an action of KMS 2019-01-18"),
            ))
        }
    };
    let body = Value::Object(body);
    match action {
        Action::CreateKey => keys::create_key(ctx, wire::parse(body)?).await,
        Action::DescribeKey => keys::describe_key(ctx, wire::parse(body)?),
        Action::DescribeKeys => keys::describe_keys(ctx, wire::parse(body)?),
        Action::ListKeys => keys::list_keys(ctx, wire::parse(body)?),
        Action::ListKeyDetail => keys::list_key_detail(ctx, wire::parse(body)?),
        Action::EnableKey => keys::set_enabled(ctx, wire::parse(body)?, true),
        Action::DisableKey => keys::set_enabled(ctx, wire::parse(body)?, false),
        Action::EnableKeys => keys::set_all_enabled(ctx, wire::parse(body)?, true),
        Action::DisableKeys => keys::set_all_enabled(ctx, wire::parse(body)?, false),
        Action::UpdateAlias => keys::update_alias(ctx, wire::parse(body)?),
        Action::UpdateKeyDescription => keys::update_description(ctx, wire::parse(body)?),
        Action::ScheduleKeyDeletion => keys::schedule_deletion(ctx, wire::parse(body)?),
        Action::CancelKeyDeletion => keys::cancel_deletion(ctx, wire::parse(body)?),
        Action::EnableKeyRotation => keys::enable_rotation(ctx, wire::parse(body)?),
        Action::DisableKeyRotation => keys::disable_rotation(ctx, wire::parse(body)?),
        Action::GetKeyRotationStatus => keys::rotation_status(ctx, wire::parse(body)?),
        Action::RotateKey => keys::rotate(ctx, wire::parse(body)?).await,
        Action::Encrypt => crypto::encrypt(ctx, wire::parse(body)?).await,
        Action::Decrypt => crypto::decrypt(ctx, wire::parse(body)?).await,
        Action::GenerateDataKey => crypto::generate_data_key(ctx, wire::parse(body)?).await,
        Action::ReEncrypt => crypto::re_encrypt(ctx, wire::parse(body)?).await,
        Action::GenerateRandom => crypto::random(ctx, wire::parse(body)?).await,
        Action::GetPublicKey => asymmetric::public_key(ctx, wire::parse(body)?).await,
        Action::SignByAsymmetricKey => asymmetric::sign(ctx, wire::parse(body)?).await,
        Action::VerifyByAsymmetricKey => asymmetric::verify(ctx, wire::parse(body)?).await,
        Action::AsymmetricRsaDecrypt => asymmetric::rsa_decrypt(ctx, wire::parse(body)?).await,
        Action::GetParametersForImport => import::get_parameters(ctx, wire::parse(body)?).await,
        Action::ImportKeyMaterial => import::import_material(ctx, wire::parse(body)?).await,
        Action::DeleteImportedKeyMaterial => import::delete_material(ctx, wire::parse(body)?).await,
        Action::ListAlgorithms => service::list_algorithms(ctx, wire::parse(body)?),
        Action::GetServiceStatus => service::service_status(ctx, wire::parse(body)?),
        Action::GetRegions => service::regions(ctx, wire::parse(body)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The actions of `tencentcloud-sdk-python-kms` 3.1.192's `KmsClient`.
    const SDK_ACTIONS: &[&str] = &[
        "ArchiveKey",
        "AsymmetricRsaDecrypt",
        "AsymmetricSm2Decrypt",
        "BindCloudResource",
        "CancelDataKeyDeletion",
        "CancelKeyArchive",
        "CancelKeyDeletion",
        "CreateKey",
        "CreateWhiteBoxKey",
        "Decrypt",
        "DeleteImportedKeyMaterial",
        "DeleteWhiteBoxKey",
        "DescribeDataKey",
        "DescribeDataKeys",
        "DescribeKey",
        "DescribeKeys",
        "DescribeWhiteBoxDecryptKey",
        "DescribeWhiteBoxDeviceFingerprints",
        "DescribeWhiteBoxKey",
        "DescribeWhiteBoxKeyDetails",
        "DescribeWhiteBoxServiceStatus",
        "DisableDataKey",
        "DisableDataKeys",
        "DisableKey",
        "DisableKeyRotation",
        "DisableKeys",
        "DisableWhiteBoxKey",
        "DisableWhiteBoxKeys",
        "EnableDataKey",
        "EnableDataKeys",
        "EnableKey",
        "EnableKeyRotation",
        "EnableKeys",
        "EnableWhiteBoxKey",
        "EnableWhiteBoxKeys",
        "Encrypt",
        "EncryptByWhiteBox",
        "GenerateDataKey",
        "GenerateRandom",
        "GetDataKeyCiphertextBlob",
        "GetDataKeyPlaintext",
        "GetKeyRotationStatus",
        "GetParametersForImport",
        "GetPublicKey",
        "GetRegions",
        "GetServiceStatus",
        "ImportDataKey",
        "ImportKeyMaterial",
        "ListAlgorithms",
        "ListDataKeyDetail",
        "ListDataKeys",
        "ListKeyDetail",
        "ListKeys",
        "OverwriteWhiteBoxDeviceFingerprints",
        "PostQuantumCryptoDecrypt",
        "PostQuantumCryptoEncrypt",
        "PostQuantumCryptoSign",
        "PostQuantumCryptoVerify",
        "ReEncrypt",
        "RotateKey",
        "ScheduleDataKeyDeletion",
        "ScheduleKeyDeletion",
        "SignByAsymmetricKey",
        "UnbindCloudResource",
        "UpdateAlias",
        "UpdateDataKeyDescription",
        "UpdateDataKeyName",
        "UpdateKeyDescription",
        "VerifyByAsymmetricKey",
    ];

    #[test]
    fn every_sdk_action_is_served_or_refused_with_a_reason() {
        for action in SDK_ACTIONS {
            assert_ne!(route(action), Route::Unknown, "{action}");
        }
        for (name, _) in SERVED {
            assert!(SDK_ACTIONS.contains(name), "{name} is no SDK action");
            assert!(!UNSERVED.iter().any(|(n, _)| n == name), "{name} twice");
        }
        for (name, why) in UNSERVED {
            assert!(SDK_ACTIONS.contains(name), "{name} is no SDK action");
            assert!(!why.is_empty());
        }
        assert_eq!(SERVED.len() + UNSERVED.len(), SDK_ACTIONS.len());
        assert!(matches!(
            route("GenerateRandom"),
            Route::Served(Action::GenerateRandom)
        ));
        assert!(
            matches!(route("PostQuantumCryptoSign"), Route::Unserved(w) if w.contains("ML-DSA"))
        );
        for unknown in ["", "encrypt", "GetSecretValue", "Encrypt ", "CreateSecret"] {
            assert_eq!(route(unknown), Route::Unknown, "{unknown:?}");
        }
    }
}
