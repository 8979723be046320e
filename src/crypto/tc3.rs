//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, on the host: the
//! signing key derived from a SecretKey for one day and service, and the signature of a
//! string to sign. (The SecretKey itself is kept sealed inside the HSMs' keys; see
//! [`crate::access::apikey`].)

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use zeroize::Zeroizing;

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let compute = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let pkey = PKey::hmac(key)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
        signer.update(data)?;
        signer.sign_to_vec()
    };
    // HMAC-SHA256 with a key in memory fails only if OpenSSL cannot allocate.
    Zeroizing::new(compute().expect("HMAC-SHA256"))
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(super::primitives::sha256(data))
}

/// The signing key of `secret_key` for `date` (`YYYY-MM-DD`, UTC) and `service` (`kms`,
/// `ssm`): HMAC chained over "TC3" + SecretKey, the date, the service and "tc3_request".
pub fn signing_key(secret_key: &[u8], date: &str, service: &str) -> Zeroizing<Vec<u8>> {
    let mut first = Zeroizing::new(b"TC3".to_vec());
    first.extend_from_slice(secret_key);
    let k_date = hmac_sha256(&first, date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    hmac_sha256(&k_service, b"tc3_request")
}

/// The hex signature of `string_to_sign` under a signing key.
pub fn signature(signing_key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// Whether two signatures are equal, in time independent of where they differ.
pub fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_what_an_independent_implementation_derives() {
        // Expected values from Python's hmac module (the TC3 chain written out by hand).
        let key = signing_key(b"secretkey", "2019-02-25", "cvm");
        let sig = signature(
            &key,
            "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\nabc",
        );
        assert_eq!(
            sig,
            "8e31196982301b6add079a8e05e551587f84fd54cd4ada30f2f91287d80f26ee"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                b"key",
                b"The quick brown fox jumps over the lazy dog"
            )),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(same_signature(&sig, &sig.clone()));
        assert!(!same_signature(&sig, &sig[1..]));
        assert!(!same_signature(&sig, &sig.replace('8', "9")));
    }
}
