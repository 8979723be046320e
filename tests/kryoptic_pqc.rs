//! Kryoptic's post-quantum mechanisms (PKCS#11 3.2), as scripts/install-kryoptic.sh builds
//! them against OpenSSL 3.5: ML-DSA signatures and ML-KEM encapsulation made inside the
//! token and checked with an independent implementation (OpenSSL 3.5's `openssl` command,
//! built beside the module), and what still keeps these keys out of hkms: the token cannot
//! wrap their private keys, and every private key of an hkms key lives only wrapped under
//! the domain key (so that any member can serve it).

mod common;
#[path = "support/kryoptic.rs"]
mod kryoptic;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, MlKemParameterSetType, ObjectClass,
    ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use kryoptic::KryopticTokens;
use std::process::Command;

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(body.len()));
    v.extend_from_slice(body);
    v
}

/// SubjectPublicKeyInfo of a raw ML-DSA or ML-KEM public key (FIPS 204 / 203 encodings; the
/// algorithm identifiers of RFC 9881 and the LAMPS ML-KEM profile carry no parameters).
fn spki_pem(oid_tail: [u8; 2], raw: &[u8]) -> String {
    let oid = [
        0x06,
        0x09,
        0x60,
        0x86,
        0x48,
        0x01,
        0x65,
        0x03,
        0x04,
        oid_tail[0],
        oid_tail[1],
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(raw);
    let mut body = der(0x30, &oid);
    body.extend(der(0x03, &bits));
    let spki = der(0x30, &body);
    let b64 = openssl::base64::encode_block(&spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

fn openssl35(args: &[&str]) -> std::process::Output {
    let out = Command::new(kryoptic::OPENSSL35)
        .args(args)
        .output()
        .expect("OpenSSL 3.5 is installed beside Kryoptic (scripts/install-kryoptic.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn value(session: &Session, object: ObjectHandle) -> Vec<u8> {
    match session
        .get_attributes(object, &[AttributeType::Value])
        .unwrap()
        .pop()
    {
        Some(Attribute::Value(v)) => v,
        other => panic!("CKA_VALUE: {other:?}"),
    }
}

/// An AES key that may wrap, as the domain key does (AES key wrap with padding).
fn wrapping_key(session: &Session) -> ObjectHandle {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
            ],
        )
        .unwrap()
}

fn assert_not_wrappable(session: &Session, kek: ObjectHandle, private: ObjectHandle, what: &str) {
    // The wrap of key tokens (RFC 5649; CKM_AES_KEY_WRAP_KWP on Kryoptic).
    match hkms::hsm::crypto::keywrap::wrap(session, kek, private) {
        Err(Error::Pkcs11(RvError::FunctionNotSupported, _)) => {}
        Ok(_) => panic!(
            "Kryoptic now wraps {what} private keys: hkms can offer these keys on it \
             (src/keys/spec.rs NOT_OFFERED)"
        ),
        Err(e) => panic!("wrapping a {what} private key: {e}"),
    }
}

#[test]
fn ml_dsa_and_ml_kem_inside_kryoptic_check_out_with_openssl_but_cannot_be_wrapped() {
    let tokens = KryopticTokens::create(&["pqc0"]);
    // This test binary holds this one test: the variable is read by C_Initialize below.
    std::env::set_var("KRYOPTIC_CONF", &tokens.conf);
    let pkcs11 = Pkcs11::new(kryoptic::module()).unwrap();
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label() == "pqc0")
        .expect("token pqc0");
    let mechanisms = pkcs11.get_mechanism_list(slot).unwrap();
    for m in [
        MechanismType::ML_DSA_KEY_PAIR_GEN,
        MechanismType::ML_DSA,
        MechanismType::ML_KEM_KEY_PAIR_GEN,
        MechanismType::ML_KEM,
    ] {
        assert!(mechanisms.contains(&m), "{m} missing: {mechanisms:?}");
    }
    let session = pkcs11.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::new(common::USER_PIN.into())))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let kek = wrapping_key(&session);

    // Not post-quantum, but what hkms's error table needs to know: a bad AES-GCM tag is
    // CKR_ENCRYPTED_DATA_INVALID here (SoftHSM2 says CKR_GENERAL_ERROR), and the IV comes
    // from the caller.
    let aes = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let mut iv = [7u8; 12];
    let params = cryptoki::mechanism::aead::GcmParams::new(&mut iv, b"aad", 128.into()).unwrap();
    let mut sealed = session
        .encrypt(&Mechanism::AesGcm(params), aes, b"gcm data")
        .unwrap();
    *sealed.last_mut().unwrap() ^= 1;
    let mut iv = [7u8; 12];
    let params = cryptoki::mechanism::aead::GcmParams::new(&mut iv, b"aad", 128.into()).unwrap();
    match session.decrypt(&Mechanism::AesGcm(params), aes, &sealed) {
        Err(Error::Pkcs11(RvError::EncryptedDataInvalid, _)) => {}
        other => panic!("bad GCM tag: {other:?}"),
    }

    // ML-DSA-65: a signature made inside the token verifies with OpenSSL 3.5.
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::MlDsaKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_65.into()),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let raw_public = value(&session, public);
    assert_eq!(raw_public.len(), 1952, "ML-DSA-65 public key (FIPS 204)");
    let message = b"release 2.0 of the orders service";
    let mechanism = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let signature = session.sign(&mechanism, private, message).unwrap();
    assert_eq!(signature.len(), 3309, "ML-DSA-65 signature (FIPS 204)");
    session
        .verify(&mechanism, public, message, &signature)
        .unwrap();
    std::fs::write(file("dsa.pem"), spki_pem([0x03, 0x12], &raw_public)).unwrap();
    std::fs::write(file("msg"), message).unwrap();
    std::fs::write(file("sig"), &signature).unwrap();
    let verify = |msg: &str| {
        Command::new(kryoptic::OPENSSL35)
            .args(["pkeyutl", "-verify", "-pubin", "-inkey", &file("dsa.pem")])
            .args(["-rawin", "-in", msg, "-sigfile", &file("sig")])
            .output()
            .unwrap()
    };
    let out = verify(&file("msg"));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(file("other"), b"release 2.1 of the orders service").unwrap();
    assert!(!verify(&file("other")).status.success(), "another message");
    assert_not_wrappable(&session, kek, private, "ML-DSA");

    // ML-KEM-768: encapsulation and decapsulation inside the token agree, and a secret
    // OpenSSL 3.5 encapsulates to the token's public key decapsulates to the same secret.
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::MlKemKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Encapsulate(true),
                Attribute::ParameterSet(MlKemParameterSetType::ML_KEM_768.into()),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
                Attribute::Decapsulate(true),
            ],
        )
        .unwrap();
    let raw_public = value(&session, public);
    assert_eq!(raw_public.len(), 1184, "ML-KEM-768 public key (FIPS 203)");
    let secret_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let (ciphertext, ours) = session
        .encapsulate_key(&Mechanism::MlKem, public, &secret_template)
        .unwrap();
    assert_eq!(ciphertext.len(), 1088, "ML-KEM-768 ciphertext (FIPS 203)");
    let theirs = session
        .decapsulate_key(&Mechanism::MlKem, private, &secret_template, &ciphertext)
        .unwrap();
    let shared = value(&session, ours);
    assert_eq!(shared.len(), 32);
    assert_eq!(value(&session, theirs), shared);

    std::fs::write(file("kem.pem"), spki_pem([0x04, 0x02], &raw_public)).unwrap();
    openssl35(&[
        "pkeyutl",
        "-encap",
        "-pubin",
        "-inkey",
        &file("kem.pem"),
        "-out",
        &file("ct"),
        "-secret",
        &file("ss"),
    ]);
    let outside_ct = std::fs::read(file("ct")).unwrap();
    let outside_ss = std::fs::read(file("ss")).unwrap();
    let inside = session
        .decapsulate_key(&Mechanism::MlKem, private, &secret_template, &outside_ct)
        .unwrap();
    assert_eq!(value(&session, inside), outside_ss);
    assert_not_wrappable(&session, kek, private, "ML-KEM");
    drop(tokens);
}
