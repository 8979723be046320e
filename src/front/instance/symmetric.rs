//! The symmetric operations: Encrypt, Decrypt, GenerateDataKey and GenerateRandom, and
//! their Advance forms ([`crate::ops::crypto`]).
//!
//! Encrypt, Decrypt and GenerateDataKey follow the instance API's plain conventions (bare
//! ciphertext and Iv, the key's initial version); the Advance operations use hkmsd's
//! self-describing ciphertext (AES-GCM or AES-CBC), and AdvanceDecrypt (like Decrypt) takes
//! either form.

use super::{decode, header_iv, required, Answer, ApplicationApi, Call};
use crate::instance_api as api;
use crate::ops::crypto::{self, InstanceCiphertext};
use prost::Message;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

impl ApplicationApi {
    /// Bare ciphertext and Iv, initial key version (the instance API's conventions).
    pub(super) async fn encrypt(&self, call: &Call<'_>) -> Answer {
        let mut r: api::EncryptRequest = decode(call.body)?;
        let key_ref = required(&r.key_id)?;
        let plaintext = Arc::new(Zeroizing::new(std::mem::take(&mut r.plaintext)));
        let (b, alg) = crypto::encrypt_bare(
            call.ctx(),
            key_ref,
            &r.algorithm,
            &r.padding_mode,
            &r.iv,
            &r.aad,
            plaintext,
        )
        .await?;
        let body = api::EncryptResponse {
            key_id: b.key_id,
            ciphertext_blob: b.ciphertext,
            iv: b.iv,
            request_id: call.request_id.into(),
            algorithm: alg.name().into(),
            padding_mode: alg.padding_name().into(),
        }
        .encode_to_vec();
        Ok((body, Some(b.key_version_id)))
    }

    /// Decrypt and AdvanceDecrypt: a bare ciphertext of the key version named by
    /// `x-kms-migrationkeyversionid`, a self-describing ciphertext, or a bare one with KeyId
    /// and Iv (the key's initial version).
    pub(super) async fn decrypt(&self, call: &Call<'_>) -> Answer {
        let api_name = call.api_name;
        let r: api::DecryptRequest = decode(call.body)?;
        let ciphertext = InstanceCiphertext {
            key_ref: &r.key_id,
            algorithm: &r.algorithm,
            padding_mode: &r.padding_mode,
            iv: &r.iv,
            aad: &r.aad,
            blob: &r.ciphertext_blob,
            version_id: call.named_version()?,
        };
        let (mut o, alg) = crypto::decrypt_either(call.ctx(), api_name, ciphertext).await?;
        let plaintext = std::mem::take(&mut *o.plaintext);
        let body = if api_name == "Decrypt" {
            let mut resp = api::DecryptResponse {
                key_id: o.key_id,
                plaintext,
                request_id: call.request_id.into(),
                algorithm: alg.name().into(),
                padding_mode: alg.padding_name().into(),
            };
            let body = resp.encode_to_vec();
            resp.plaintext.zeroize();
            body
        } else {
            let mut resp = api::AdvanceDecryptResponse {
                key_id: o.key_id,
                plaintext,
                request_id: call.request_id.into(),
                algorithm: alg.name().into(),
                padding_mode: alg.padding_name().into(),
                key_version_id: o.key_version_id,
            };
            let body = resp.encode_to_vec();
            resp.plaintext.zeroize();
            body
        };
        Ok((body, None))
    }

    /// The self-describing ciphertext, primary version; AES_GCM, or AES_CBC with
    /// PKCS7_PADDING or NO_PADDING.
    pub(super) async fn advance_encrypt(&self, call: &Call<'_>) -> Answer {
        let mut r: api::AdvanceEncryptRequest = decode(call.body)?;
        let key_ref = required(&r.key_id)?;
        let plaintext = Zeroizing::new(std::mem::take(&mut r.plaintext));
        let (s, alg) = crypto::advance_encrypt(
            call.ctx(),
            key_ref,
            &r.algorithm,
            &r.padding_mode,
            &r.iv,
            plaintext,
            &r.aad,
        )
        .await?;
        let body = api::AdvanceEncryptResponse {
            key_id: s.key_id,
            iv: header_iv(&s.blob),
            ciphertext_blob: s.blob,
            request_id: call.request_id.into(),
            algorithm: alg.name().into(),
            padding_mode: alg.padding_name().into(),
            key_version_id: s.key_version_id.clone(),
        }
        .encode_to_vec();
        Ok((body, Some(s.key_version_id)))
    }

    pub(super) async fn generate_data_key(&self, call: &Call<'_>) -> Answer {
        let r: api::GenerateDataKeyRequest = decode(call.body)?;
        let key_ref = required(&r.key_id)?;
        let (b, mut plaintext) = crypto::generate_data_key_bare(
            call.ctx(),
            key_ref,
            &r.algorithm,
            r.number_of_bytes,
            &r.aad,
        )
        .await?;
        let mut resp = api::GenerateDataKeyResponse {
            key_id: b.key_id,
            iv: b.iv,
            plaintext: std::mem::take(&mut *plaintext),
            ciphertext_blob: b.ciphertext,
            request_id: call.request_id.into(),
            algorithm: "AES_GCM".into(),
        };
        let body = resp.encode_to_vec();
        resp.plaintext.zeroize();
        Ok((body, Some(b.key_version_id)))
    }

    pub(super) async fn advance_generate_data_key(&self, call: &Call<'_>) -> Answer {
        let r: api::AdvanceGenerateDataKeyRequest = decode(call.body)?;
        let key_ref = required(&r.key_id)?;
        let (s, mut plaintext) =
            crypto::advance_generate_data_key(call.ctx(), key_ref, r.number_of_bytes, &r.aad)
                .await?;
        let mut resp = api::AdvanceGenerateDataKeyResponse {
            key_id: s.key_id,
            iv: header_iv(&s.blob),
            plaintext: std::mem::take(&mut *plaintext),
            ciphertext_blob: s.blob,
            request_id: call.request_id.into(),
            algorithm: "AES_GCM".into(),
            key_version_id: s.key_version_id.clone(),
        };
        let body = resp.encode_to_vec();
        resp.plaintext.zeroize();
        Ok((body, Some(s.key_version_id)))
    }

    pub(super) async fn generate_random(&self, call: &Call<'_>) -> Answer {
        let r: api::GenerateRandomRequest = decode(call.body)?;
        let len = usize::try_from(r.length).unwrap_or(0);
        let mut random = crypto::random(call.ctx(), len).await?;
        let mut resp = api::GenerateRandomResponse {
            random: std::mem::take(&mut *random),
            request_id: call.request_id.into(),
        };
        let body = resp.encode_to_vec();
        resp.random.zeroize();
        Ok((body, None))
    }
}
