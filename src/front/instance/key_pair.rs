//! GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext and their Advance forms: an RSA
//! or EC key pair whose private key comes back encrypted under a symmetric key
//! ([`crate::ops::key_pair`]), and in plaintext too unless the operation says
//! WithoutPlaintext.
//!
//! The plain operations follow Encrypt: AES_GCM under the key's initial version, a bare
//! ciphertext and its Iv, which Decrypt takes back with KeyId, Iv and Aad. The Advance ones
//! follow AdvanceEncrypt: the primary version and the self-describing ciphertext (its Iv is
//! reported too), which AdvanceDecrypt takes alone. KeyFormat is PEM (the default) or DER,
//! for the public key and the private key alike.

use super::errors::ApiError;
use super::{decode, required, Answer, ApplicationApi, Call};
use crate::instance_api as api;
use crate::ops::key_pair::{self, Sealing};
use prost::Message;
use zeroize::Zeroize;

/// What the four operations' requests have in common.
struct PairRequest {
    key_id: String,
    key_pair_spec: String,
    key_format: String,
    aad: Vec<u8>,
}

/// The plain operations name the algorithm that encrypts the private key: AES_GCM only.
fn plain(r: api::GenerateDataKeyPairRequest) -> Result<PairRequest, ApiError> {
    if !matches!(r.algorithm.as_str(), "" | "AES_GCM") {
        return Err(ApiError::invalid(
            "GenerateDataKeyPair encrypts with AES_GCM only.",
        ));
    }
    Ok(PairRequest {
        key_id: r.key_id,
        key_pair_spec: r.key_pair_spec,
        key_format: r.key_format,
        aad: r.aad,
    })
}

fn advance(r: api::AdvanceGenerateDataKeyPairRequest) -> PairRequest {
    PairRequest {
        key_id: r.key_id,
        key_pair_spec: r.key_pair_spec,
        key_format: r.key_format,
        aad: r.aad,
    }
}

impl ApplicationApi {
    pub(super) async fn data_key_pair(&self, call: &Call<'_>) -> Answer {
        // The WithoutPlaintext requests have the layout of the others.
        let (r, sealing) = match call.api_name {
            "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => {
                (plain(decode(call.body)?)?, Sealing::InstanceBare)
            }
            _ => (advance(decode(call.body)?), Sealing::Hkms),
        };
        let mut p = key_pair::generate(
            call.ctx(),
            call.api_name,
            required(&r.key_id)?,
            &r.key_pair_spec,
            &r.key_format,
            &r.aad,
            sealing,
        )
        .await?;
        let version = p.key_version_id.clone();
        let algorithm = String::from("AES_GCM");
        let body = match call.api_name {
            "GenerateDataKeyPair" => {
                let mut resp = api::GenerateDataKeyPairResponse {
                    key_id: p.key_id,
                    iv: p.iv,
                    key_pair_spec: p.key_pair_spec.into(),
                    private_key_plaintext: std::mem::take(&mut *p.private_key),
                    private_key_ciphertext_blob: p.ciphertext,
                    public_key: p.public_key,
                    request_id: call.request_id.into(),
                    algorithm,
                };
                let body = resp.encode_to_vec();
                resp.private_key_plaintext.zeroize();
                body
            }
            "AdvanceGenerateDataKeyPair" => {
                let mut resp = api::AdvanceGenerateDataKeyPairResponse {
                    key_id: p.key_id,
                    iv: p.iv,
                    key_pair_spec: p.key_pair_spec.into(),
                    private_key_plaintext: std::mem::take(&mut *p.private_key),
                    private_key_ciphertext_blob: p.ciphertext,
                    public_key: p.public_key,
                    request_id: call.request_id.into(),
                    algorithm,
                    key_version_id: p.key_version_id,
                };
                let body = resp.encode_to_vec();
                resp.private_key_plaintext.zeroize();
                body
            }
            // The private key (p.private_key) is zeroized when dropped.
            without_plaintext => {
                if without_plaintext == "GenerateDataKeyPairWithoutPlaintext" {
                    api::GenerateDataKeyPairWithoutPlaintextResponse {
                        key_id: p.key_id,
                        iv: p.iv,
                        key_pair_spec: p.key_pair_spec.into(),
                        private_key_ciphertext_blob: p.ciphertext,
                        public_key: p.public_key,
                        request_id: call.request_id.into(),
                        algorithm,
                    }
                    .encode_to_vec()
                } else {
                    api::AdvanceGenerateDataKeyPairWithoutPlaintextResponse {
                        key_id: p.key_id,
                        iv: p.iv,
                        key_pair_spec: p.key_pair_spec.into(),
                        private_key_ciphertext_blob: p.ciphertext,
                        public_key: p.public_key,
                        request_id: call.request_id.into(),
                        algorithm,
                        key_version_id: p.key_version_id,
                    }
                    .encode_to_vec()
                }
            }
        };
        Ok((body, Some(version)))
    }
}
