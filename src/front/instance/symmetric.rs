//! The symmetric operations: Encrypt, Decrypt, GenerateDataKey and GenerateRandom, and
//! their Advance forms.
//!
//! Encrypt, Decrypt and GenerateDataKey follow the instance API's plain conventions (bare
//! ciphertext and Iv, the key's initial version: [`crate::crypto::instance`]); the Advance
//! operations use hkmsd's self-describing ciphertext ([`crate::crypto::ciphertext`],
//! AES-GCM or AES-CBC), and AdvanceDecrypt (like Decrypt) takes either form.

use super::auth::ApiError;
use super::{api_error, decode, header_iv, Answer, ApplicationApi, Call, MIGRATION_HEADER};
use crate::access::operations;
use crate::authn::Caller;
use crate::crypto::instance::{self, Algorithm};
use crate::crypto::{self, ciphertext};
use crate::error::KmsError;
use crate::instance_api as api;
use crate::keys::alias;
use prost::Message;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

impl ApplicationApi {
    /// The self-describing ciphertext in `blob`, when the request's KeyId and Iv (if any)
    /// agree with it.
    fn self_describing<'a>(
        &self,
        blob: &'a [u8],
        requested_key: &str,
        iv: &[u8],
    ) -> Option<ciphertext::Parsed<'a>> {
        let parsed = ciphertext::parse(blob).ok()?;
        let key_ok = requested_key.is_empty()
            || alias::resolve(&self.0, requested_key)
                .is_ok_and(|k| k == parsed.header.key_id.to_string());
        let iv_ok = iv.is_empty() || iv == parsed.header.iv();
        (key_ok && iv_ok).then_some(parsed)
    }

    /// Decrypts for Decrypt and AdvanceDecrypt: a bare ciphertext of the key version named
    /// by `version` (`x-kms-migrationkeyversionid`), a self-describing ciphertext, or a bare
    /// one with KeyId and Iv (the key's initial version).
    async fn open(
        &self,
        caller: &Caller,
        api_name: &str,
        r: &api::DecryptRequest,
        version: Option<&str>,
    ) -> Result<(crypto::Opened, Algorithm), ApiError> {
        let app = &self.0;
        if let Some(version) = version {
            let v = self.authorized_version(caller, api_name, &r.key_id, version)?;
            let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
            let o = instance::decrypt(
                app,
                &v.key_id,
                Some(&v.key_version_id),
                alg,
                &r.iv,
                &r.aad,
                &r.ciphertext_blob,
            )
            .await
            .map_err(api_error)?;
            return Ok((o, alg));
        }
        if let Some(parsed) = self.self_describing(&r.ciphertext_blob, &r.key_id, &r.iv) {
            let key_id = parsed.header.key_id.to_string();
            let requested = if r.key_id.is_empty() {
                key_id.as_str()
            } else {
                r.key_id.as_str()
            };
            self.authorize(
                caller,
                api_name,
                operations::key_resources(requested, &key_id),
            )?;
            // Algorithm and PaddingMode are optional; given, they must be the blob's.
            let alg = parsed.header.cipher.algorithm();
            let other_algorithm = !r.algorithm.is_empty() && r.algorithm != alg.name();
            let other_padding = matches!(alg, Algorithm::Cbc { .. })
                && !r.padding_mode.is_empty()
                && r.padding_mode != alg.padding_name();
            if other_algorithm || other_padding {
                return Err(api_error(KmsError::invalid_ciphertext()));
            }
            let o = crypto::decrypt(app, &r.ciphertext_blob, &r.aad)
                .await
                .map_err(api_error)?;
            return Ok((o, alg));
        }
        if r.key_id.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "KeyId is required (with Iv) for this ciphertext.",
            ));
        }
        let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
        let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
        let o = instance::decrypt(app, &key_id, None, alg, &r.iv, &r.aad, &r.ciphertext_blob)
            .await
            .map_err(api_error)?;
        Ok((o, alg))
    }

    fn data_key_len(n: i32) -> Result<usize, ApiError> {
        let n = u32::try_from(n).map_err(|_| {
            ApiError::new(400, "InvalidParameter", "NumberOfBytes must be 1..1024.")
        })?;
        crypto::data_key_len("", n).map_err(api_error)
    }

    /// Bare ciphertext and Iv, initial key version (the instance API's conventions).
    pub(super) async fn encrypt(&self, call: &Call<'_>) -> Answer {
        let (app, caller, api_name) = (&self.0, call.caller, call.api_name);
        let mut r: api::EncryptRequest = decode(call.body)?;
        let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
        let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
        let plaintext = Arc::new(Zeroizing::new(std::mem::take(&mut r.plaintext)));
        let b = instance::encrypt(app, &key_id, alg, &r.iv, &r.aad, plaintext)
            .await
            .map_err(api_error)?;
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

    /// Decrypt and AdvanceDecrypt.
    pub(super) async fn decrypt(&self, call: &Call<'_>) -> Answer {
        let (caller, api_name) = (call.caller, call.api_name);
        let r: api::DecryptRequest = decode(call.body)?;
        let version = call
            .headers
            .one(MIGRATION_HEADER)?
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let (mut o, alg) = self.open(caller, api_name, &r, version).await?;
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

    /// The self-describing ciphertext (src/crypto/ciphertext.rs), primary version;
    /// AES_GCM, or AES_CBC with PKCS7_PADDING or NO_PADDING.
    pub(super) async fn advance_encrypt(&self, call: &Call<'_>) -> Answer {
        let (app, caller, api_name) = (&self.0, call.caller, call.api_name);
        let mut r: api::AdvanceEncryptRequest = decode(call.body)?;
        let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
        let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
        if !r.iv.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "AdvanceEncrypt chooses the Iv itself; do not send one.",
            ));
        }
        let plaintext = Zeroizing::new(std::mem::take(&mut r.plaintext));
        let s = crypto::encrypt_with(app, &key_id, alg, plaintext, &r.aad)
            .await
            .map_err(api_error)?;
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
        let (app, caller, api_name) = (&self.0, call.caller, call.api_name);
        let r: api::GenerateDataKeyRequest = decode(call.body)?;
        let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
        if !matches!(r.algorithm.as_str(), "" | "AES_GCM") {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "GenerateDataKey encrypts with AES_GCM only.",
            ));
        }
        let len = Self::data_key_len(r.number_of_bytes)?;
        let (b, mut plaintext) = instance::generate_data_key(app, &key_id, len, &r.aad)
            .await
            .map_err(api_error)?;
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
        let (app, caller, api_name) = (&self.0, call.caller, call.api_name);
        let r: api::AdvanceGenerateDataKeyRequest = decode(call.body)?;
        let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
        let len = Self::data_key_len(r.number_of_bytes)?;
        let (s, mut plaintext) = crypto::generate_data_key(app, &key_id, len, &r.aad)
            .await
            .map_err(api_error)?;
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
        let (app, caller, api_name) = (&self.0, call.caller, call.api_name);
        let r: api::GenerateRandomRequest = decode(call.body)?;
        self.authorize(caller, api_name, Vec::new())?;
        let len = usize::try_from(r.length).unwrap_or(0);
        let mut random = crypto::random(app, len).await.map_err(api_error)?;
        let mut resp = api::GenerateRandomResponse {
            random: std::mem::take(&mut *random),
            request_id: call.request_id.into(),
        };
        let body = resp.encode_to_vec();
        resp.random.zeroize();
        Ok((body, None))
    }
}
