//! What the appliance offers: ListAlgorithms, GetServiceStatus, GetRegions. Nothing here
//! names a key: each is authorised as `DescribeService` ([`Ctx::describe_service`]), which
//! the key roles grant within their policies' network rules.

use super::super::errors::TcError;
use super::super::json::fields;
use super::super::json::Fields;
use super::wire::KEY_USAGES;
use crate::keys::spec::{Curve, KeySpec};
use crate::ops::Ctx;
use serde::Deserialize;
use serde_json::{json, Value};

/// A request without parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

/// Tencent's name of a key's algorithm in ListAlgorithms.
fn algorithm(spec: KeySpec) -> &'static str {
    match spec {
        KeySpec::Aes256 => "AES_256",
        KeySpec::Ec(Curve::P256) => "ECC",
        KeySpec::Ec(Curve::P384) => "ECDSA384",
        other => other.as_str(),
    }
}

/// The key usages CreateKey accepts, by kind.
pub(super) fn list_algorithms(ctx: Ctx<'_>, _: Empty) -> Result<Fields, TcError> {
    ctx.describe_service()?;
    Ok(algorithms())
}

fn algorithms() -> Fields {
    let of = |pick: fn(&str) -> bool| -> Vec<Value> {
        KEY_USAGES
            .iter()
            .filter(|u| u.creatable && pick(u.name))
            .map(|u| json!({ "KeyUsage": u.name, "Algorithm": algorithm(u.spec) }))
            .collect()
    };
    fields(json!({
        "SymmetricAlgorithms": of(|n| n == "ENCRYPT_DECRYPT"),
        "AsymmetricAlgorithms": of(|n| n.starts_with("ASYMMETRIC_DECRYPT_")),
        "AsymmetricSignVerifyAlgorithms": of(|n| n.starts_with("ASYMMETRIC_SIGN_VERIFY_")),
    }))
}

/// The service is on (an API key could not have signed the request otherwise); none of
/// the editions, hosted data keys, replication or account quotas of Tencent's cloud
/// apply.
pub(super) fn service_status(ctx: Ctx<'_>, _: Empty) -> Result<Fields, TcError> {
    ctx.describe_service()?;
    Ok(fields(json!({
        "ServiceEnabled": true,
        "InvalidType": 1,
        "UserLevel": 0,
        "ExclusiveVSMEnabled": false,
        "ExclusiveHSMEnabled": false,
        "IsAllowedDataKeyHosted": false,
        "IsAllowedSync": false,
    })))
}

/// An appliance is one region, `local` (as in its resource names); it answers requests
/// whatever region they name.
pub(super) fn regions(ctx: Ctx<'_>, _: Empty) -> Result<Fields, TcError> {
    ctx.describe_service()?;
    Ok(fields(
        json!({ "Regions": [crate::access::secrets::REGION] }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_list_what_create_key_accepts() {
        let f = algorithms();
        assert_eq!(
            f["SymmetricAlgorithms"],
            json!([{"KeyUsage": "ENCRYPT_DECRYPT", "Algorithm": "AES_256"}])
        );
        assert_eq!(
            f["AsymmetricAlgorithms"],
            json!([{"KeyUsage": "ASYMMETRIC_DECRYPT_RSA_2048", "Algorithm": "RSA_2048"}])
        );
        let sign = f["AsymmetricSignVerifyAlgorithms"].as_array().unwrap();
        assert_eq!(sign.len(), 3);
        assert!(
            sign.contains(&json!({"KeyUsage": "ASYMMETRIC_SIGN_VERIFY_ECC", "Algorithm": "ECC"}))
        );
        assert!(crate::front::tencent::kms::wire::parse::<Empty>(json!({"X": 1})).is_err());
    }
}
