//! Tests of signed-request verification (`super`).

use super::*;
use crate::access::clientkey::{now_unix, KeyPair};
use openssl::pkey::{PKey, Private};

struct Fixture {
    now: i64,
    key: ClientKey,
    private: PKey<Private>,
}

fn fixture(not_before: i64, not_after: i64) -> Fixture {
    let now = now_unix();
    // Key pairs are generated valid now; the stored record carries the validity tested.
    let kp = KeyPair::generate("t", now - 10, now + 86_400).unwrap();
    let der = kp.certificate_der().unwrap();
    let p12 = kp.pkcs12("secret-123").unwrap();
    let p = openssl::pkcs12::Pkcs12::from_der(&p12)
        .unwrap()
        .parse2("secret-123")
        .unwrap();
    Fixture {
        now,
        key: ClientKey {
            client_key_id: "KAAP.11111111-2222-3333-4444-555555555555".into(),
            aap_name: "app".into(),
            certificate: der,
            not_before: now + not_before,
            not_after: now + not_after,
            ..Default::default()
        },
        private: p.pkey.unwrap(),
    }
}

fn run(f: &Fixture, headers: Vec<(String, String)>, body: &[u8]) -> Result<Verified, ApiError> {
    let key = f.key.clone();
    verify(
        "POST",
        &Headers::new(headers),
        body,
        f.now,
        &move |id| Ok((id == key.client_key_id).then(|| key.clone())),
        &PublicKeys::default(),
    )
}

fn signed(f: &Fixture, body: &[u8], date_offset: i64) -> Vec<(String, String)> {
    sign_request(
        &f.private,
        &f.key.client_key_id,
        "Encrypt",
        body,
        &http_date(f.now + date_offset),
    )
    .unwrap()
}

fn set(h: &mut [(String, String)], name: &str, value: &str) {
    h.iter_mut().find(|(n, _)| n == name).unwrap().1 = value.to_owned();
}

#[test]
fn string_to_sign_matches_the_protocol_example() {
    let h = Headers::new([
        (
            "Content-SHA256",
            "1A75217A61ED6CAB51D48ABEC7D1E13851E2EE3B5D346558FE31A755B1C8FCDF",
        ),
        ("content-type", "application/x-protobuf"),
        ("date", "Mon, 23 Nov 2026 07:19:18 GMT"),
        ("x-kms-signaturemethod", "RSA_PKCS1_SHA_256"),
        ("x-kms-apiversion", "dkms-gcs-0.2"),
        ("X-Kms-Apiname", "Encrypt"),
        (
            "x-kms-acccesskeyid",
            " KAAP.11111111-2222-3333-4444-555555555555 ",
        ),
        ("accept", "application/x-protobuf"),
        ("host", "kst.example"),
    ]);
    assert_eq!(
        string_to_sign(&h).unwrap(),
        "POST\n1A75217A61ED6CAB51D48ABEC7D1E13851E2EE3B5D346558FE31A755B1C8FCDF\n\
         application/x-protobuf\nMon, 23 Nov 2026 07:19:18 GMT\n\
         x-kms-acccesskeyid:KAAP.11111111-2222-3333-4444-555555555555\n\
         x-kms-apiname:Encrypt\nx-kms-apiversion:dkms-gcs-0.2\n\
         x-kms-signaturemethod:RSA_PKCS1_SHA_256\n/"
    );
}

#[test]
fn a_well_signed_request_verifies() {
    let f = fixture(-60, 86_400);
    for offset in [0, -14 * 60, 14 * 60] {
        let v = run(&f, signed(&f, b"body", offset), b"body").unwrap();
        assert_eq!(v.api_name, "Encrypt");
        assert_eq!(v.client_key.aap_name, "app");
    }
    // An empty body is signed with the digest of "".
    run(&f, signed(&f, b"", 0), b"").unwrap();
}

/// Each tampering is refused with the protocol's code.
#[test]
fn tampered_requests_are_refused_with_the_protocol_codes() {
    let f = fixture(-60, 86_400);
    let code = |h: Vec<(String, String)>, body: &[u8]| run(&f, h, body).unwrap_err();
    let ok = signed(&f, b"body", 0);

    // 16 minutes off either way.
    for off in [16 * 60, -16 * 60] {
        let e = code(signed(&f, b"body", off), b"body");
        assert_eq!((e.http_status, e.code), (400, "RequestTimeTooSkewed"));
    }
    // Another body than the digest says.
    let e = code(ok.clone(), b"other body");
    assert_eq!(
        (e.code, e.message.as_str()),
        ("InvalidParam", "The Param Content-SHA256 is invalid.")
    );
    // Another body with a matching digest: the signature no longer matches.
    let mut h = ok.clone();
    set(&mut h, "content-sha256", &body_digest(b"other"));
    assert_eq!(code(h, b"other").code, "SignatureNotMatch");
    // The signature covered other headers.
    let mut h = ok.clone();
    set(&mut h, "x-kms-apiname", "Decrypt");
    let e = code(h, b"body");
    assert_eq!((e.http_status, e.code), (401, "SignatureNotMatch"));
    let mut h = ok.clone();
    h.push(("x-kms-extra".into(), "1".into()));
    assert_eq!(code(h, b"body").code, "SignatureNotMatch");
    let mut h = ok.clone();
    set(&mut h, "content-type", "text/plain");
    assert_eq!(code(h, b"body").code, "SignatureNotMatch");
    // Date changed but within the window: signature fails.
    let mut h = ok.clone();
    set(&mut h, "date", &http_date(f.now + 1));
    assert_eq!(code(h, b"body").code, "SignatureNotMatch");
    // Malformed pieces.
    let mut h = ok.clone();
    set(&mut h, "date", "yesterday");
    assert_eq!(code(h, b"body").message, "The Param Date is invalid.");
    let mut h = ok.clone();
    set(&mut h, "authorization", "TOKEN abc");
    assert_eq!(
        code(h, b"body").message,
        "The Param Authorization is invalid."
    );
    let mut h = ok.clone();
    set(&mut h, "x-kms-apiversion", "dkms-gcs-0.1");
    assert_eq!(code(h, b"body").code, "InvalidApiVersion");
    let mut h = ok.clone();
    set(&mut h, "x-kms-signaturemethod", "RSA_PSS_SHA_256");
    assert_eq!(code(h, b"body").code, "InvalidParam");
    let mut h = ok.clone();
    h.retain(|(n, _)| n != "x-kms-acccesskeyid");
    assert_eq!(code(h, b"body").code, "MissingParameter");
    let mut h = ok.clone();
    set(
        &mut h,
        "x-kms-acccesskeyid",
        "KAAP.99999999-2222-3333-4444-555555555555",
    );
    let e = code(h, b"body");
    assert_eq!((e.http_status, e.code), (404, "Unauthorized"));
    let mut h = ok.clone();
    h.push(("date".into(), http_date(f.now)));
    assert_eq!(code(h, b"body").code, "InvalidParameter");
    assert!(verify(
        "GET",
        &Headers::new(ok.clone()),
        b"body",
        f.now,
        &|_| Ok(None),
        &PublicKeys::default()
    )
    .is_err());
}

/// A request signed with `signer`'s private key under ClientKey id `key_id`.
fn signed_by(signer: &Fixture, key_id: &str) -> Vec<(String, String)> {
    sign_request(
        &signer.private,
        key_id,
        "Encrypt",
        b"x",
        &http_date(signer.now),
    )
    .unwrap()
}

#[test]
fn signatures_of_another_key_and_invalid_validity_are_refused() {
    let f = fixture(-60, 86_400);
    let other = fixture(-60, 86_400);
    // Signed by another private key under this key id.
    let h = signed_by(&other, &f.key.client_key_id);
    assert_eq!(run(&f, h, b"x").unwrap_err().code, "SignatureNotMatch");

    let expired = fixture(-86_400, -60);
    let e = run(&expired, signed(&expired, b"x", 0), b"x").unwrap_err();
    assert_eq!((e.http_status, e.code), (401, "ClientKeyExpired"));
    let early = fixture(3600, 86_400);
    let e = run(&early, signed(&early, b"x", 0), b"x").unwrap_err();
    assert_eq!(e.code, "ClientKeyNotYetValid");

    // A key whose AAP changed ClientKey: accepted until its retirement, then refused with
    // the answer an expired key gets.
    let mut retiring = fixture(-60, 86_400);
    retiring.key.retire_unix = retiring.now + 1;
    run(&retiring, signed(&retiring, b"x", 0), b"x").unwrap();
    retiring.key.retire_unix = retiring.now;
    let retired = run(&retiring, signed(&retiring, b"x", 0), b"x").unwrap_err();
    let e = run(&expired, signed(&expired, b"x", 0), b"x").unwrap_err();
    assert_eq!(retired, e, "the same key id, so the very same answer");
}

#[test]
fn a_replaced_certificate_is_never_verified_with_the_cached_key() {
    let f = fixture(-60, 86_400);
    let other = fixture(-60, 86_400);
    let keys = PublicKeys::default();
    let verify_with = |record: &ClientKey, headers: Vec<(String, String)>| {
        let record = record.clone();
        verify(
            "POST",
            &Headers::new(headers),
            b"x",
            f.now,
            &move |_| Ok(Some(record.clone())),
            &keys,
        )
    };
    let id = f.key.client_key_id.as_str();
    verify_with(&f.key, signed_by(&f, id)).unwrap();
    verify_with(&f.key, signed_by(&f, id)).unwrap();
    // The same id now holds another certificate: the old key no longer verifies...
    let replaced = ClientKey {
        certificate: other.key.certificate.clone(),
        ..f.key.clone()
    };
    let e = verify_with(&replaced, signed_by(&f, id)).unwrap_err();
    assert_eq!(e.code, "SignatureNotMatch");
    // ...and the new one does, under the same id.
    verify_with(&replaced, signed_by(&other, id)).unwrap();
}

#[test]
fn only_a_pkcs1_sha256_signature_of_exactly_the_data_is_valid() {
    use openssl::hash::MessageDigest;
    use openssl::sign::Signer;
    let f = fixture(-60, 86_400);
    let keys = PublicKeys::default();
    let data = b"POST\nDIGEST\napplication/x-protobuf\nDate\nx-kms-apiname:Encrypt\n/";
    let sign = |md: MessageDigest, data: &[u8]| {
        let mut s = Signer::new(md, &f.private).unwrap();
        s.update(data).unwrap();
        s.sign_to_vec().unwrap()
    };
    let good = sign(MessageDigest::sha256(), data);
    assert!(keys.signature_valid(&f.key, data, &good));
    // Other data, another hash, a flipped bit, a short or long signature.
    assert!(!keys.signature_valid(&f.key, b"other", &good));
    assert!(!keys.signature_valid(&f.key, data, &sign(MessageDigest::sha384(), data)));
    assert!(!keys.signature_valid(&f.key, data, &sign(MessageDigest::sha1(), data)));
    let mut flipped = good.clone();
    flipped[100] ^= 1;
    assert!(!keys.signature_valid(&f.key, data, &flipped));
    assert!(!keys.signature_valid(&f.key, data, &good[1..]));
    let mut long = vec![0u8];
    long.extend_from_slice(&good);
    assert!(!keys.signature_valid(&f.key, data, &long));
    // The bare hash (no DigestInfo) under the right padding is not a signature either.
    let rsa = f.private.rsa().unwrap();
    let mut bare = vec![0u8; rsa.size() as usize];
    rsa.private_encrypt(&openssl::sha::sha256(data), &mut bare, Padding::PKCS1)
        .unwrap();
    assert!(!keys.signature_valid(&f.key, data, &bare));
    // ...while the full DigestInfo made the same way is (the check is exactly RFC 8017's).
    let mut info = SHA256_DIGEST_INFO.to_vec();
    info.extend_from_slice(&openssl::sha::sha256(data));
    let mut manual = vec![0u8; rsa.size() as usize];
    rsa.private_encrypt(&info, &mut manual, Padding::PKCS1)
        .unwrap();
    assert_eq!(manual, good);
    assert!(keys.signature_valid(&f.key, data, &manual));
}
