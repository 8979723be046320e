//! Verification of signed KMS instance API requests (`dkms-gcs-0.2`).
//!
//! The gateway forwards the request exactly as received: headers, raw body, source address.
//! hkmsd does every check itself, in the protocol's order: API version, signature method,
//! date (RFC 1123, within ±15 minutes), body digest (`content-sha256`), ClientKey id,
//! signature (RSASSA-PKCS1-v1_5 with SHA-256 over the rebuilt string to sign), and finally
//! the ClientKey's validity and retirement. Failures carry the protocol's HTTP status and error code.

use super::errors::ApiError;
use crate::access::clientkey;
use crate::proto::ClientKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::pkey::Public;
use openssl::rsa::{Padding, Rsa};
use openssl::x509::X509;
use std::collections::HashMap;
use std::sync::Mutex;

/// The only API version of the instance API.
pub const API_VERSION: &str = "dkms-gcs-0.2";
/// The only signature method the SDKs send.
pub const SIGNATURE_METHOD: &str = "RSA_PKCS1_SHA_256";
/// Largest allowed difference between the request's date and ours.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// Largest request body.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Headers with lowercase names, as received.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new<I, N, V>(headers: I) -> Headers
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: Into<String>,
    {
        Headers(
            headers
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        )
    }

    /// The single value of `name`. A header that is repeated is refused, so no two parties
    /// can read different values out of one request.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut found = self.0.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                format!("The header {name} is repeated."),
            ));
        }
        Ok(first)
    }

    /// Canonical `x-kms-*` headers: sorted by name, `name:trimmed value\n` each.
    pub fn canonical_kms(&self) -> Result<String, ApiError> {
        let mut kms: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(n, _)| n.starts_with("x-kms-"))
            .collect();
        kms.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if kms.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "An x-kms- header is repeated.",
            ));
        }
        let mut out = String::with_capacity(kms.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
        for (n, v) in kms {
            out.push_str(n);
            out.push(':');
            out.push_str(v.trim());
            out.push('\n');
        }
        Ok(out)
    }
}

/// The string an SDK signs.
pub fn string_to_sign(headers: &Headers) -> Result<String, ApiError> {
    let mut out = String::with_capacity(512);
    out.push_str("POST\n");
    for name in ["content-sha256", "content-type", "date"] {
        out.push_str(headers.one(name)?.unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&headers.canonical_kms()?);
    out.push('/');
    Ok(out)
}

/// Uppercase hex SHA-256, as in `content-sha256`.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode_upper(crate::crypto::primitives::sha256(body))
}

/// A request whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub client_key: ClientKey,
    /// `x-kms-apiname`.
    pub api_name: String,
}

/// Checks a relayed request. `lookup` finds a registered ClientKey by id; `now` is Unix
/// seconds.
pub fn verify(
    method: &str,
    headers: &Headers,
    body: &[u8],
    now: i64,
    lookup: &dyn Fn(&str) -> Result<Option<ClientKey>, ApiError>,
    keys: &PublicKeys,
) -> Result<Verified, ApiError> {
    if !method.eq_ignore_ascii_case("POST") {
        return Err(ApiError::new(
            400,
            "InvalidParameter",
            "The specified parameter is not valid.",
        ));
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            413,
            "InvalidParameter",
            "The request body is larger than 3 MB.",
        ));
    }
    let version = headers.one("x-kms-apiversion")?.unwrap_or("");
    if version != API_VERSION {
        return Err(ApiError::new(
            400,
            "InvalidApiVersion",
            format!("The ApiVersion \"{version}\" is invalid."),
        ));
    }
    let api_name = headers.one("x-kms-apiname")?.unwrap_or("").trim();
    if api_name.is_empty() {
        return Err(ApiError::new(
            400,
            "InvalidApiName",
            "The ApiName \"\" is invalid.",
        ));
    }
    let sig_method = headers.one("x-kms-signaturemethod")?.unwrap_or("");
    if sig_method.trim() != SIGNATURE_METHOD {
        return Err(ApiError::new(
            400,
            "InvalidParam",
            format!("The Param x-kms-signaturemethod is invalid. [message:\"{sig_method}\"]"),
        ));
    }
    let date = headers
        .one("date")?
        .ok_or_else(|| ApiError::param("Date"))?;
    let when = httpdate::parse_http_date(date.trim()).map_err(|_| ApiError::param("Date"))?;
    let when = match when.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(_) => return Err(ApiError::param("Date")),
    };
    if (when - now).abs() > MAX_SKEW_SECS {
        return Err(ApiError::new(
            400,
            "RequestTimeTooSkewed",
            "Request time exceeds server time more than 15 minutes.",
        ));
    }
    let digest = headers.one("content-sha256")?.unwrap_or("");
    if !digest.eq_ignore_ascii_case(&body_digest(body)) {
        return Err(ApiError::param("Content-SHA256"));
    }
    let key_id = headers.one("x-kms-acccesskeyid")?.unwrap_or("").trim();
    if key_id.is_empty() {
        return Err(ApiError::new(
            400,
            "MissingParameter",
            "Parameter x-kms-acccesskeyid does not exist in http header or body.",
        ));
    }
    let signature = headers
        .one("authorization")?
        .and_then(|a| a.trim().strip_prefix("Bearer "))
        .and_then(|s| B64.decode(s.trim()).ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::param("Authorization"))?;
    let unknown = || {
        ApiError::new(
            404,
            "Unauthorized",
            format!("The AccessKey ID \"{key_id}\" does not exist in our records."),
        )
    };
    if !clientkey::is_id(key_id) {
        return Err(unknown());
    }
    let key = lookup(key_id)?.ok_or_else(unknown)?;
    let to_sign = string_to_sign(headers)?;
    if !keys.signature_valid(&key, to_sign.as_bytes(), &signature) {
        return Err(ApiError::new(
            401,
            "SignatureNotMatch",
            "Signature is not matched.",
        ));
    }
    // Validity is told only to whoever holds the key (the signature verified). A key past
    // its retirement (its AAP changed ClientKey) gets the answer of an expired one.
    match clientkey::standing(key.not_before, key.not_after, key.retire_unix, now).1 {
        "NotYetValid" => Err(ApiError::new(
            401,
            "ClientKeyNotYetValid",
            format!("The ClientKey \"{key_id}\" is not valid yet."),
        )),
        "Expired" | "Retired" => Err(ApiError::new(
            401,
            "ClientKeyExpired",
            format!("The ClientKey \"{key_id}\" has expired."),
        )),
        _ => Ok(Verified {
            client_key: key,
            api_name: api_name.to_owned(),
        }),
    }
}

/// How many ClientKey public keys [`PublicKeys`] keeps before it starts over.
const MAX_CACHED_KEYS: usize = 4096;

/// The public keys of ClientKey certificates, decoded once rather than on every request
/// (decoding a certificate costs several times the RSA verification itself).
///
/// The record is still read from the store on every request, so a deleted ClientKey is
/// refused at once; an entry is used only while the stored certificate is byte for byte
/// the one it was decoded from. Public keys only: nothing here is secret.
#[derive(Default)]
pub struct PublicKeys {
    by_id: Mutex<HashMap<String, Decoded>>,
}

/// A certificate (DER) and the RSA public key decoded from it.
type Decoded = (Vec<u8>, Rsa<Public>);

/// DER of the DigestInfo prefix for SHA-256 (RFC 8017, section 9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.by_id.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("PublicKeys").field("cached", &n).finish()
    }
}

impl PublicKeys {
    /// The RSA public key of `key`'s certificate; `None` if the certificate does not
    /// decode or its key is not RSA.
    fn get(&self, key: &ClientKey) -> Option<Rsa<Public>> {
        let map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cert, pkey)) = map.get(&key.client_key_id) {
            if *cert == key.certificate {
                return Some(pkey.clone());
            }
        }
        // Decode outside the lock: other requests keep being served meanwhile.
        drop(map);
        // Plain RSA keys only (an RSA-PSS key must not verify PKCS#1 v1.5 signatures).
        let pkey = X509::from_der(&key.certificate)
            .and_then(|c| c.public_key())
            .ok()
            .filter(|k| k.id() == openssl::pkey::Id::RSA)?
            .rsa()
            .ok()?;
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_KEYS {
            map.clear();
        }
        map.insert(
            key.client_key_id.clone(),
            (key.certificate.clone(), pkey.clone()),
        );
        Some(pkey)
    }

    /// Whether `signature` is `key`'s RSASSA-PKCS1-v1_5 SHA-256 signature of `data`.
    ///
    /// Verified as RFC 8017 (section 8.2.2) describes: the signature is exactly the
    /// modulus long, the RSA public operation and the block-type-1 padding check recover
    /// the encoded message, which must be byte for byte the DigestInfo of SHA-256(`data`).
    /// (The same check as `EVP_DigestVerify`, without setting up a digest context per
    /// request.)
    fn signature_valid(&self, key: &ClientKey, data: &[u8], signature: &[u8]) -> bool {
        let Some(rsa) = self.get(key) else {
            return false;
        };
        let size = rsa.size() as usize;
        if signature.len() != size {
            return false;
        }
        let mut recovered = vec![0u8; size];
        let Ok(n) = rsa.public_decrypt(signature, &mut recovered, Padding::PKCS1) else {
            return false;
        };
        let mut expected = SHA256_DIGEST_INFO.to_vec();
        expected.extend_from_slice(&crate::crypto::primitives::sha256(data));
        n == expected.len() && openssl::memcmp::eq(&recovered[..n], &expected)
    }
}

/// Signs a request the way the official SDKs do (for tests and tools): returns the headers
/// to send, `authorization` included.
pub fn sign_request(
    key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
    client_key_id: &str,
    api_name: &str,
    body: &[u8],
    date: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut headers = vec![
        ("accept".to_owned(), "application/x-protobuf".to_owned()),
        (
            "content-type".to_owned(),
            "application/x-protobuf".to_owned(),
        ),
        ("content-length".to_owned(), body.len().to_string()),
        ("content-sha256".to_owned(), body_digest(body)),
        ("date".to_owned(), date.to_owned()),
        ("x-kms-apiversion".to_owned(), API_VERSION.to_owned()),
        ("x-kms-apiname".to_owned(), api_name.to_owned()),
        (
            "x-kms-signaturemethod".to_owned(),
            SIGNATURE_METHOD.to_owned(),
        ),
        ("x-kms-acccesskeyid".to_owned(), client_key_id.to_owned()),
    ];
    let to_sign = string_to_sign(&Headers::new(headers.clone())).map_err(|e| e.message.clone())?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), key)
        .map_err(|e| e.to_string())?;
    signer
        .set_rsa_padding(openssl::rsa::Padding::PKCS1)
        .map_err(|e| e.to_string())?;
    signer
        .update(to_sign.as_bytes())
        .map_err(|e| e.to_string())?;
    let sig = signer.sign_to_vec().map_err(|e| e.to_string())?;
    headers.push((
        "authorization".to_owned(),
        format!("Bearer {}", B64.encode(sig)),
    ));
    Ok(headers)
}

/// An HTTP date (RFC 1123, GMT) for Unix seconds.
pub fn http_date(unix: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64))
}

/// When each ClientKey's coming expiry was last logged (once a day per key is enough).
static EXPIRY_WARNED: Mutex<Option<HashMap<String, i64>>> = Mutex::new(None);

/// Logs, at most once a day per key, that the ClientKey a request was signed with expires
/// soon, so the operator replaces it before applications are refused.
pub fn warn_if_expiring(key: &ClientKey, now: i64) {
    let (days_left, state) =
        clientkey::standing(key.not_before, key.not_after, key.retire_unix, now);
    if state != "ExpiringSoon" {
        return;
    }
    let mut warned = EXPIRY_WARNED.lock().unwrap_or_else(|p| p.into_inner());
    let last = warned
        .get_or_insert_with(HashMap::new)
        .entry(key.client_key_id.clone())
        .or_insert(i64::MIN);
    if now.saturating_sub(*last) >= 86_400 {
        *last = now;
        tracing::warn!(
            client_key = %key.client_key_id,
            aap = %key.aap_name,
            days_left,
            "ClientKey expires soon; create a new one (hkms client-key create) and delete this one"
        );
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
