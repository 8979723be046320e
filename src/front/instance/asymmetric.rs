//! Sign, Verify and GetPublicKey with RSA and EC keys ([`crate::ops::asymmetric`]).
//!
//! Like Encrypt, these use the key's initial version, unless the transfer SDK names one in
//! `x-kms-migrationkeyversionid`. The message is `Message` with `MessageType` (`RAW`, the
//! default, is hashed here; `DIGEST` is signed as it is), or the legacy `Digest` field,
//! which is a DIGEST. A wrong signature is `Value: false`, never an error.

use super::errors::ApiError;
use super::{decode, required, Answer, ApplicationApi, Call};
use crate::instance_api as api;
use crate::ops::{asymmetric, VersionChoice};
use prost::Message;

/// The message to sign or verify and its type (`RAW` or `DIGEST`), from `Message` and
/// `MessageType` or the legacy `Digest`.
fn message_of<'a>(
    message: &'a [u8],
    digest: &'a [u8],
    message_type: &str,
) -> Result<(&'a [u8], &'static str), ApiError> {
    let invalid = |m: &str| ApiError::invalid(m);
    if !digest.is_empty() {
        if !message.is_empty() {
            return Err(invalid("Send Message or Digest, not both."));
        }
        if !matches!(message_type, "" | "DIGEST") {
            return Err(invalid(
                "Digest is a DIGEST; MessageType must be DIGEST or empty.",
            ));
        }
        return Ok((digest, "DIGEST"));
    }
    match message_type {
        "" | "RAW" => Ok((message, "RAW")),
        "DIGEST" => Ok((message, "DIGEST")),
        other => Err(invalid(&format!(
            "MessageType {other:?} is not valid; use RAW or DIGEST."
        ))),
    }
}

/// The key a request names: the transfer SDK's version names one by itself, otherwise
/// KeyId is required.
fn key_ref<'a>(key_id: &'a str, version: Option<&str>) -> Result<&'a str, ApiError> {
    match version {
        Some(_) => Ok(key_id),
        None => required(key_id),
    }
}

impl ApplicationApi {
    pub(super) async fn sign(&self, call: &Call<'_>) -> Answer {
        let r: api::SignRequest = decode(call.body)?;
        let (message, message_type) = message_of(&r.message, &r.digest, &r.message_type)?;
        let version = call.named_version()?;
        let key_ref = key_ref(&r.key_id, version)?;
        let s = asymmetric::sign_initial(
            call.ctx(),
            key_ref,
            version,
            &r.algorithm,
            message_type,
            message,
        )
        .await?;
        let body = api::SignResponse {
            key_id: s.key_id,
            signature: s.signature,
            request_id: call.request_id.into(),
            algorithm: s.algorithm.into(),
            message_type: message_type.into(),
        }
        .encode_to_vec();
        Ok((body, None))
    }

    pub(super) async fn verify(&self, call: &Call<'_>) -> Answer {
        let r: api::VerifyRequest = decode(call.body)?;
        let (message, message_type) = message_of(&r.message, &r.digest, &r.message_type)?;
        let version = call.named_version()?;
        let key_ref = key_ref(&r.key_id, version)?;
        let v = asymmetric::verify_initial(
            call.ctx(),
            key_ref,
            version,
            &r.algorithm,
            message_type,
            message,
            &r.signature,
        )
        .await?;
        let body = api::VerifyResponse {
            key_id: v.key_id,
            value: v.value,
            request_id: call.request_id.into(),
            algorithm: r.algorithm,
            message_type: message_type.into(),
        }
        .encode_to_vec();
        Ok((body, None))
    }

    /// The initial version's public key, SubjectPublicKeyInfo in PEM.
    pub(super) async fn get_public_key(&self, call: &Call<'_>) -> Answer {
        let r: api::GetPublicKeyRequest = decode(call.body)?;
        let key_ref = required(&r.key_id)?;
        let p = asymmetric::public_key(call.ctx(), key_ref, VersionChoice::Initial).await?;
        let body = api::GetPublicKeyResponse {
            public_key: p.pem,
            key_id: p.key_id,
            request_id: call.request_id.into(),
        }
        .encode_to_vec();
        Ok((body, None))
    }
}

#[cfg(test)]
mod tests {
    use super::message_of;

    #[test]
    fn the_legacy_digest_is_a_digest_and_excludes_a_message() {
        assert_eq!(message_of(b"m", b"", "").unwrap(), (&b"m"[..], "RAW"));
        assert_eq!(message_of(b"m", b"", "RAW").unwrap(), (&b"m"[..], "RAW"));
        assert_eq!(
            message_of(b"d", b"", "DIGEST").unwrap(),
            (&b"d"[..], "DIGEST")
        );
        assert_eq!(message_of(b"", b"d", "").unwrap(), (&b"d"[..], "DIGEST"));
        assert_eq!(
            message_of(b"", b"d", "DIGEST").unwrap(),
            (&b"d"[..], "DIGEST")
        );
        for (message, digest, message_type) in [
            (&b"m"[..], &b"d"[..], ""),
            (&b""[..], &b"d"[..], "RAW"),
            (&b"m"[..], &b""[..], "HASH"),
        ] {
            let e = message_of(message, digest, message_type).unwrap_err();
            assert_eq!((e.http_status, e.code), (400, "InvalidParameter"));
        }
    }
}
