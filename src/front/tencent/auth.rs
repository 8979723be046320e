//! The Tencent front's authenticator: TC3-HMAC-SHA256 over the request as the client sent
//! it, with one of an AAP's API keys ([`crate::access::apikey`]).
//!
//! ```text
//! Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/tc3_request,
//!                SignedHeaders=content-type;host, Signature=<hex>
//! ```
//! The canonical request is rebuilt from the headers the client declares it signed (at least
//! `content-type` and `host`), each `name:value` with the value trimmed, and the SHA-256 of
//! the body. The request must be within 5 minutes of hkmsd's clock, its credential date the
//! UTC date of its `X-TC-Timestamp`, and its credential's service the one its version names.
//!
//! Unsigned bodies (`X-TC-Content-SHA256: UNSIGNED-PAYLOAD`) are refused: the gateway relays
//! every request, and only a signed body tells hkmsd that nobody in between changed it.
//! (The SDKs sign bodies unless told otherwise.) `X-TC-Action` is signed only when the client
//! lists it in `SignedHeaders`; the Python SDK does not, so its action is protected by TLS
//! to the gateway only.
//!
//! The signing key of an API key depends only on its SecretKey, the day and the service: it
//! is derived once per day and service (the SecretKey opened inside an HSM) and kept in
//! memory, wiped when dropped. No verdict is kept: every request's signature is checked.

use super::errors::TcError;
use super::headers::Headers;
use super::service::Service;
use crate::access::{apikey, clientkey};
use crate::appliance::Appliance;
use crate::crypto::tc3;
use crate::proto::ApiKey;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// How far a request's timestamp may be from hkmsd's clock.
pub const MAX_SKEW_SECONDS: i64 = 300;
/// Signing keys kept at most (one per API key, day and service in use).
const MAX_CACHED: usize = 4096;

const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// A signing key's SecretId, date and service.
type Scope = (String, String, &'static str);

/// How long a derived signing key is kept: its day, and the 5 minutes either side that the
/// skew allows (a key derived at 00:00 serves its date until 00:05 the next day).
const KEEP_SECONDS: i64 = 86_400 + 2 * MAX_SKEW_SECONDS;

/// Signing keys derived in the last day, by SecretId, date and service, with the time each
/// was derived. Each is as good as the SecretKey for its day and service, so none is kept
/// past [`KEEP_SECONDS`].
#[derive(Default)]
pub struct SigningKeys(Mutex<HashMap<Scope, Derived>>);

/// A signing key and when it was derived (Unix seconds).
type Derived = (Zeroizing<Vec<u8>>, i64);

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeys(..)")
    }
}

impl SigningKeys {
    fn get(&self, k: &Scope, now: i64) -> Option<Zeroizing<Vec<u8>>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .filter(|(_, derived)| now - derived < KEEP_SECONDS)
            .map(|(key, _)| key.clone())
    }

    fn put(&self, k: Scope, v: Zeroizing<Vec<u8>>, now: i64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Keys past their day go (each is wiped when dropped); so does everything if the
        // cache is full of current keys.
        m.retain(|_, (_, derived)| now - *derived < KEEP_SECONDS);
        if m.len() >= MAX_CACHED {
            m.clear();
        }
        m.insert(k, (v, now));
    }
}

fn failure(code: &'static str, message: impl Into<String>) -> TcError {
    TcError::new(code, message)
}

/// The value of a header that the signature depends on; a header sent twice is refused, so
/// that no two readers of the request (gateway, hkmsd, a proxy) can take different values.
fn single<'a>(headers: &Headers<'a>, name: &str) -> Result<Option<&'a str>, TcError> {
    if headers.count(name) > 1 {
        return Err(failure(
            "AuthFailure.SignatureFailure",
            format!("the header {name} is sent more than once"),
        ));
    }
    Ok(headers.get(name))
}

/// The parts of an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    secret_id: &'a str,
    date: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, TcError> {
    let bad = || {
        failure(
            "AuthFailure.InvalidAuthorization",
            "the Authorization header is not TC3-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...",
        )
    };
    let rest = value.strip_prefix(ALGORITHM).ok_or_else(bad)?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((name, v)) = part.trim().split_once('=') else {
            return Err(bad());
        };
        match name.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => return Err(bad()),
        }
    }
    let (credential, signed_headers, signature) = (
        credential.ok_or_else(bad)?,
        signed.ok_or_else(bad)?,
        signature.ok_or_else(bad)?,
    );
    let mut scope = credential.split('/');
    let (Some(secret_id), Some(date), Some(service), Some("tc3_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(bad());
    };
    if secret_id.is_empty() || signed_headers.is_empty() || signature.is_empty() {
        return Err(bad());
    }
    Ok(Authorization {
        secret_id,
        date,
        service,
        signed_headers,
        signature,
    })
}

/// The string to sign, with header values as sent (`lowercase_values`: lowercased, as
/// Tencent's own examples sign them).
fn string_to_sign(
    method: &str,
    headers: &Headers<'_>,
    body_sha256: &str,
    a: &Authorization<'_>,
    timestamp: &str,
    lowercase_values: bool,
) -> Result<String, TcError> {
    let mut canonical_headers = String::new();
    for name in a.signed_headers.split(';') {
        if name.is_empty() || name != name.to_ascii_lowercase() {
            return Err(failure(
                "AuthFailure.SignatureFailure",
                "SignedHeaders must be lowercase header names separated by ';'",
            ));
        }
        let value = single(headers, name)?.ok_or_else(|| {
            failure(
                "AuthFailure.SignatureFailure",
                format!("the signed header {name} is missing"),
            )
        })?;
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        if lowercase_values {
            canonical_headers.push_str(&value.to_ascii_lowercase());
        } else {
            canonical_headers.push_str(value);
        }
        canonical_headers.push('\n');
    }
    let canonical_request = format!(
        "{method}\n/\n\n{canonical_headers}\n{}\n{body_sha256}",
        a.signed_headers,
    );
    Ok(format!(
        "{ALGORITHM}\n{timestamp}\n{}/{}/tc3_request\n{}",
        a.date,
        a.service,
        tc3::sha256_hex(canonical_request.as_bytes())
    ))
}

/// The UTC date (`YYYY-MM-DD`) of Unix seconds.
fn utc_date(t: i64) -> String {
    crate::clock::rfc3339(t).chars().take(10).collect()
}

/// Verifies the request's signature; returns the API key that made it.
pub async fn verify(
    app: &Appliance,
    keys: &SigningKeys,
    method: &str,
    headers: &Headers<'_>,
    body: &[u8],
    service: Service,
    now: i64,
) -> Result<ApiKey, TcError> {
    let a = parse_authorization(single(headers, "authorization")?.ok_or_else(|| {
        failure(
            "AuthFailure.SignatureFailure",
            "the request is not signed (no Authorization header)",
        )
    })?)?;
    if a.service != service.as_str() {
        return Err(failure(
            "AuthFailure.InvalidAuthorization",
            format!(
                "the credential scope names the service {:?}, but X-TC-Version is {}'s",
                a.service,
                service.as_str()
            ),
        ));
    }
    let signed: Vec<&str> = a.signed_headers.split(';').collect();
    if !signed.contains(&"host") || !signed.contains(&"content-type") {
        return Err(failure(
            "AuthFailure.SignatureFailure",
            "SignedHeaders must include content-type and host",
        ));
    }
    if single(headers, "x-tc-content-sha256")?
        .is_some_and(|v| v.eq_ignore_ascii_case("UNSIGNED-PAYLOAD"))
    {
        return Err(failure(
            "AuthFailure.SignatureFailure",
            "unsigned request bodies are not accepted; sign the body",
        ));
    }
    let timestamp = single(headers, "x-tc-timestamp")?.unwrap_or("");
    let ts: i64 = timestamp.parse().map_err(|_| {
        failure(
            "AuthFailure.SignatureFailure",
            "X-TC-Timestamp must be Unix seconds",
        )
    })?;
    if now.abs_diff(ts) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(failure(
            "AuthFailure.SignatureExpire",
            format!(
                "the request's timestamp is {}s from the server's clock (at most {MAX_SKEW_SECONDS}s)",
                now.abs_diff(ts)
            ),
        ));
    }
    if a.date != utc_date(ts) {
        return Err(failure(
            "AuthFailure.SignatureFailure",
            "the credential date is not the UTC date of X-TC-Timestamp",
        ));
    }
    let key = apikey::find(&*app.store, a.secret_id)
        .map_err(|e| {
            tracing::error!("API key lookup failed: {e}");
            TcError::new("InternalError", "Internal error.")
        })?
        .ok_or_else(|| {
            failure(
                "AuthFailure.SecretIdNotFound",
                "the SecretId does not exist, or was deleted",
            )
        })?;
    let (_, state) = clientkey::standing(key.not_before, key.not_after, 0, now);
    if matches!(state, "Expired" | "NotYetValid") {
        return Err(failure(
            "AuthFailure.SecretIdNotFound",
            "the SecretId is not valid now (expired, or not yet valid)",
        ));
    }
    apikey::warn_if_expiring(&key, now);
    let cache_key = (key.secret_id.clone(), a.date.to_owned(), service.as_str());
    let signing_key = match keys.get(&cache_key, now) {
        Some(k) => k,
        None => {
            let secret = apikey::secret_key(app, &key).await.map_err(|e| {
                tracing::error!(secret_id = %key.secret_id, "the SecretKey of an API key does not open: {e}");
                TcError::new("InternalError", "Internal error.")
            })?;
            let k = tc3::signing_key(&secret, a.date, service.as_str());
            keys.put(cache_key, k.clone(), now);
            k
        }
    };
    let body_sha256 = tc3::sha256_hex(body);
    // Values as sent (the SDKs), then lowercased (Tencent's own examples), when that differs.
    let has_upper = a.signed_headers.split(';').any(|n| {
        headers
            .get(n)
            .is_some_and(|v| v.bytes().any(|b| b.is_ascii_uppercase()))
    });
    for lowercase_values in [false, true] {
        if lowercase_values && !has_upper {
            break;
        }
        let to_sign = string_to_sign(
            method,
            headers,
            &body_sha256,
            &a,
            timestamp,
            lowercase_values,
        )?;
        if tc3::same_signature(&tc3::signature(&signing_key, &to_sign), a.signature) {
            return Ok(key);
        }
    }
    Err(failure(
        "AuthFailure.SignatureFailure",
        "the request's signature does not match (wrong SecretKey, or the request was changed)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_sdk_sends() {
        let a = parse_authorization(
            "TC3-HMAC-SHA256 Credential=AKIDx/2026-12-06/kms/tc3_request, SignedHeaders=content-type;host, Signature=abc",
        )
        .unwrap();
        assert_eq!(
            a,
            Authorization {
                secret_id: "AKIDx",
                date: "2026-12-06",
                service: "kms",
                signed_headers: "content-type;host",
                signature: "abc",
            }
        );
        for bad in [
            "",
            "TC3-HMAC-SHA1 Credential=a/b/kms/tc3_request, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/kms/other, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/kms/tc3_request/x, SignedHeaders=host, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/kms/tc3_request, Signature=x",
            "TC3-HMAC-SHA256 Credential=a/b/kms/tc3_request, SignedHeaders=host, Signature=x, Extra=1",
        ] {
            assert_eq!(
                parse_authorization(bad).unwrap_err().code,
                "AuthFailure.InvalidAuthorization",
                "{bad}"
            );
        }
    }

    #[test]
    fn signing_keys_do_not_outlive_their_day() {
        let keys = SigningKeys::default();
        let scope = ("AKIDa".to_owned(), "2026-12-06".to_owned(), "kms");
        keys.put(scope.clone(), Zeroizing::new(vec![1; 32]), 1000);
        assert!(keys.get(&scope, 1000 + KEEP_SECONDS - 1).is_some());
        assert!(keys.get(&scope, 1000 + KEEP_SECONDS).is_none());
        let other = ("AKIDb".to_owned(), "2026-12-07".to_owned(), "kms");
        keys.put(
            other.clone(),
            Zeroizing::new(vec![2; 32]),
            1000 + KEEP_SECONDS,
        );
        assert_eq!(keys.0.lock().unwrap().len(), 1, "the stale key was dropped");
        assert!(keys.get(&other, 1000 + KEEP_SECONDS).is_some());
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_551_113_065), "2019-02-25");
    }
}
