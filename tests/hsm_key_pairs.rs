//! Private and MAC keys on the tokens, checked through PKCS#11 directly: generated on one
//! member and used on another (the domain key copied HSM-to-HSM), unwrapped only as
//! sensitive, non-extractable session objects that can do their one usage, never left
//! behind extractable, and bound to their key id, version and public key.
//!
//! One test per process: a PKCS#11 library is initialised once per process with the token
//! directory of that moment.

mod common;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use hkms::hsm::{domain, HsmError};
use hkms::keys::single_token;
use hkms::keys::spec::{KeySpec, Usage};

fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("{other}"),
    }
}

/// The secret parts of a key object cannot be read.
fn assert_unreadable(s: &Session, h: ObjectHandle, secret: AttributeType) {
    let info = s.get_attribute_info(h, &[secret]).unwrap();
    assert!(
        matches!(info[0], AttributeInfo::Sensitive),
        "{secret:?}: {info:?}"
    );
    assert!(s.get_attributes(h, &[secret]).unwrap().is_empty());
}

#[test]
fn private_keys_are_sensitive_unextractable_and_bound() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = common::Tokens::create(dir.path(), &["pk-a", "pk-b"]);
    std::env::set_var("SOFTHSM2_CONF", &tokens.conf);
    let a = common::softhsm_member(dir.path(), "a", "pk-a");
    let b = common::softhsm_member(dir.path(), "b", "pk-b");
    let dk_id = "5b0c1f5e-0000-4000-8000-00000000d0d1";
    domain::create(&a, dk_id).unwrap();
    let so_pin = cryptoki::types::AuthPin::from(common::SO_PIN.to_owned());
    domain::transfer(&a, &b, dk_id, &so_pin).unwrap();

    let key_id = "11111111-1111-4111-8111-111111111112";
    let cases = [
        (
            KeySpec::Rsa(2048),
            Usage::SignVerify,
            AttributeType::PrivateExponent,
        ),
        (
            KeySpec::Rsa(2048),
            Usage::EncryptDecrypt,
            AttributeType::PrivateExponent,
        ),
        (
            KeySpec::Ec(hkms::keys::spec::Curve::P256K),
            Usage::SignVerify,
            AttributeType::Value,
        ),
        (
            KeySpec::Hmac(hkms::keys::spec::MacHash::Sha256),
            Usage::Mac,
            AttributeType::Value,
        ),
    ];
    let s_a = a.open_session().unwrap();
    let s_b = b.open_session().unwrap();
    let mut tokens = Vec::new();
    for (i, (spec, usage, secret)) in cases.into_iter().enumerate() {
        let version = format!("22222222-2222-4222-8222-00000000000{i}");
        let rec =
            single_token::generate(&a, &s_a, key_id, &version, spec, usage, dk_id, "t").unwrap();
        assert_eq!(rec.key_spec, spec.as_str());
        assert!(rec.wrapped_key.is_empty() && rec.wrapped_cbc_key.is_empty());
        assert_eq!(rec.public_key.is_empty(), usage == Usage::Mac);
        // No extractable session object was left behind on the member that generated it
        // (the domain key itself is extractable, under SO-trusted keys only).
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
            let left = s_a
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::Token(false),
                    Attribute::Extractable(true),
                ])
                .unwrap();
            assert!(left.is_empty(), "{}: {left:?}", spec.as_str());
        }

        // Used on the other member.
        let h = single_token::handle(&b, &rec, spec, usage).unwrap();
        let attrs = s_b
            .get_attributes(
                h,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Token,
                    AttributeType::Sign,
                    AttributeType::Decrypt,
                    AttributeType::Derive,
                ],
            )
            .unwrap();
        for want in [
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Token(false),
            Attribute::Sign(usage != Usage::EncryptDecrypt),
            Attribute::Decrypt(usage == Usage::EncryptDecrypt),
            Attribute::Derive(false),
        ] {
            assert!(
                attrs.contains(&want),
                "{}: {want:?} not in {attrs:?}",
                spec.as_str()
            );
        }
        assert_unreadable(&s_b, h, secret);
        let err = s_b
            .wrap_key(&Mechanism::AesKeyWrapPad, b.domain_key().unwrap(), h)
            .unwrap_err();
        assert!(
            matches!(
                rv(err),
                RvError::KeyUnextractable | RvError::KeyNotWrappable
            ),
            "{}",
            spec.as_str()
        );
        assert!(s_b
            .update_attributes(h, &[Attribute::Extractable(true)])
            .is_err());
        // Only the mechanisms hkms uses with it: no raw RSA (a signature over anything), no
        // PKCS #1 v1.5 decryption (a padding oracle).
        if let KeySpec::Rsa(_) = spec {
            let (refused, input) = match usage {
                Usage::SignVerify => (s_b.sign(&Mechanism::RsaX509, h, &[1; 256]), "raw RSA"),
                _ => (
                    s_b.decrypt(&Mechanism::RsaPkcs, h, &[1; 256]),
                    "PKCS#1 v1.5",
                ),
            };
            let err = refused.expect_err(input);
            assert!(
                matches!(
                    rv(err),
                    RvError::MechanismInvalid | RvError::KeyFunctionNotPermitted
                ),
                "{input}"
            );
        }
        // The cache serves the same object next time.
        assert_eq!(single_token::handle(&b, &rec, spec, usage).unwrap(), h);
        tokens.push((rec, spec, usage));
    }

    // An RSA signature made on b verifies with the public key stored in the token.
    let (rec, spec, usage) = &tokens[0];
    let h = single_token::handle(&b, rec, *spec, *usage).unwrap();
    let digest = openssl::sha::sha256(b"m");
    let sig = s_b
        .sign(
            &Mechanism::RsaPkcsPss(cryptoki::mechanism::rsa::PkcsPssParams {
                hash_alg: cryptoki::mechanism::MechanismType::SHA256,
                mgf: cryptoki::mechanism::rsa::PkcsMgfType::MGF1_SHA256,
                s_len: 32u64.into(),
            }),
            h,
            &digest,
        )
        .unwrap();
    let public = openssl::pkey::PKey::public_key_from_der(&rec.public_key).unwrap();
    let mut v =
        openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &public).unwrap();
    v.set_rsa_padding(openssl::rsa::Padding::PKCS1_PSS).unwrap();
    v.update(b"m").unwrap();
    assert!(v.verify(&sig).unwrap());

    // Bound: a public key swapped for another token's, a token moved to another key or
    // version, or one unwrapped as another spec or usage, is refused.
    // (Checked on b, whose cache holds the original, and on a member with an empty cache.)
    let fresh = common::softhsm_member(dir.path(), "c", "pk-b");
    fresh.connect(Some(dk_id)).unwrap();
    let (enc, _, _) = &tokens[1];
    let mut swapped = rec.clone();
    swapped.public_key = enc.public_key.clone();
    for (token, spec, usage) in [
        (swapped, *spec, *usage),
        (
            hkms::store::records::KeyTokenRecord {
                key_id: "33333333-3333-4333-8333-333333333333".into(),
                ..rec.clone()
            },
            *spec,
            *usage,
        ),
        (rec.clone(), *spec, Usage::EncryptDecrypt),
        (rec.clone(), KeySpec::Rsa(3072), *usage),
    ] {
        for m in [&b, &fresh] {
            let err = single_token::handle(m, &token, spec, usage).unwrap_err();
            assert!(matches!(err, HsmError::TokenBinding { .. }), "{err}");
        }
    }
}
