//! GenerateMac and VerifyMac: HMAC with keys that never leave the HSMs. VerifyMac computes
//! the MAC inside a member and compares it on the host in constant time.

use super::asymmetric::{check_message, Verified};
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::hsm::capability::Need;
use crate::hsm::crypto::asymmetric as pkc;
use crate::hsm::pool::Cost;
use crate::keys::spec::{KeySpec, MacHash, Purpose, Usage};
use crate::keys::{self, single_token, VersionChoice};
use std::sync::Arc;

/// A MAC made inside an HSM.
#[derive(Debug)]
pub struct Mac {
    pub key_id: String,
    pub key_version_id: String,
    pub algorithm: &'static str,
    pub mac: Vec<u8>,
}

/// The MAC algorithm of a key: `algorithm` must be empty or the one its spec names.
fn algorithm_of(spec: KeySpec, algorithm: &str) -> Result<MacHash, KmsError> {
    let KeySpec::Hmac(hash) = spec else {
        return Err(KmsError::invalid("not an HMAC key"));
    };
    if !algorithm.is_empty() && algorithm != hash.algorithm() {
        return Err(KmsError::invalid(format!(
            "MAC algorithm {algorithm:?} does not fit {} keys; use {}",
            spec.as_str(),
            hash.algorithm()
        )));
    }
    Ok(hash)
}

/// Computes the MAC of `message` with an HMAC key, inside a member that offers it.
pub async fn generate(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message: &[u8],
) -> Result<Mac, KmsError> {
    check_message(app, message)?;
    let (key, spec, token) =
        keys::usable_version(app, key_id, version, Purpose::Mac, "GenerateMac")?;
    let mac_hash = algorithm_of(spec, algorithm)?;
    let key_version_id = token.key_version_id.clone();
    let token = Arc::new(token);
    let message = Arc::new(message.to_vec());
    let mac = app
        .pool
        .run_needing(
            &[Need::Algorithm(mac_hash.algorithm())],
            Cost::Light,
            move |m, s| {
                let key = single_token::handle(m, &token, spec, Usage::Mac)?;
                pkc::hmac(s, key, single_token::mac_hash(mac_hash), &message).map_err(|e| m.err(e))
            },
        )
        .await?;
    Ok(Mac {
        key_id: key.key_id,
        key_version_id,
        algorithm: mac_hash.algorithm(),
        mac,
    })
}

/// Checks a MAC: computed again inside a member and compared in constant time. A wrong MAC
/// is `value: false`, never an error.
pub async fn verify(
    app: &Appliance,
    key_id: &str,
    version: VersionChoice<'_>,
    algorithm: &str,
    message: &[u8],
    mac: &[u8],
) -> Result<Verified, KmsError> {
    let computed = generate(app, key_id, version, algorithm, message).await?;
    let value = computed.mac.len() == mac.len() && openssl::memcmp::eq(&computed.mac, mac);
    Ok(Verified {
        key_id: computed.key_id,
        key_version_id: computed.key_version_id,
        value,
    })
}
