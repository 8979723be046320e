//! What lands on the tokens, checked through PKCS#11 directly: the domain key and unwrapped
//! key versions are sensitive and cannot be read or exported, and key tokens are bound to
//! their key.
//!
//! One test per process: a PKCS#11 library is initialised once per process with the token
//! directory of that moment.

mod common;

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use hkms::config::MemberConfig;
use hkms::hsm::{domain, HsmError, Member};
use hkms::keys::token;

fn member(dir: &std::path::Path, name: &str, label: &str) -> Member {
    let pin_file = dir.join(format!("pin-{name}"));
    std::fs::write(&pin_file, common::USER_PIN).unwrap();
    let m = Member::new(&MemberConfig {
        name: name.into(),
        module: common::SOFTHSM_MODULE.into(),
        token_label: Some(label.into()),
        token_serial: None,
        pin_file,
        profile: "softhsm2".into(),
        max_sessions: 2,
    });
    m.connect(None).unwrap();
    m
}

fn bools(s: &Session, h: ObjectHandle, types: &[AttributeType]) -> Vec<Attribute> {
    s.get_attributes(h, types).unwrap()
}

fn assert_secret_unreadable(s: &Session, h: ObjectHandle) {
    let info = s.get_attribute_info(h, &[AttributeType::Value]).unwrap();
    assert!(matches!(info[0], AttributeInfo::Sensitive), "{info:?}");
    let attrs = s.get_attributes(h, &[AttributeType::Value]).unwrap();
    assert!(attrs.is_empty(), "CKA_VALUE was returned");
}

fn rv(e: CkError) -> RvError {
    match e {
        CkError::Pkcs11(rv, _) => rv,
        other => panic!("{other}"),
    }
}

#[test]
fn key_objects_are_sensitive_and_tokens_are_bound() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = common::Tokens::create(dir.path(), &["obj-a", "obj-b"]);
    std::env::set_var("SOFTHSM2_CONF", &tokens.conf);
    let a = member(dir.path(), "a", "obj-a");
    let b = member(dir.path(), "b", "obj-b");
    let dk_id = "5b0c1f5e-0000-4000-8000-00000000d0d0";
    domain::create(&a, dk_id).unwrap();
    let so_pin = cryptoki::types::AuthPin::from(common::SO_PIN.to_owned());
    domain::transfer(&a, &b, dk_id, &so_pin).unwrap();

    // The domain key, on both members.
    for m in [&a, &b] {
        let s = m.open_session().unwrap();
        let dk = m.domain_key().unwrap();
        let attrs = bools(
            &s,
            dk,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::WrapWithTrusted,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        );
        for want in [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::WrapWithTrusted(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
        ] {
            assert!(
                attrs.contains(&want),
                "{}: {want:?} not in {attrs:?}",
                m.name
            );
        }
        assert_secret_unreadable(&s, dk);
        // Nothing the user can create may export it: only SO-trusted keys can wrap it.
        let mine = s
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(false),
                    Attribute::ValueLen(32.into()),
                    Attribute::Wrap(true),
                ],
            )
            .unwrap();
        let err = s.wrap_key(&Mechanism::AesKeyWrapPad, mine, dk).unwrap_err();
        assert_eq!(rv(err), RvError::KeyNotWrappable, "{}", m.name);
        // Setting CKA_TRUSTED needs the SO.
        let err = s
            .update_attributes(mine, &[Attribute::Trusted(true)])
            .unwrap_err();
        assert_eq!(rv(err), RvError::AttributeReadOnly);
        s.destroy_object(mine).unwrap();
    }

    // A key version: generated on a, stored only wrapped, usable on b.
    let key_id = "11111111-1111-4111-8111-111111111111";
    let version = "22222222-2222-4222-8222-222222222222";
    let s_a = a.open_session().unwrap();
    let rec = token::generate(&a, &s_a, key_id, version, 256, dk_id, "t").unwrap();
    assert_eq!(rec.wrapped_key.len(), 40, "RFC 5649 wrap of 32 bytes");
    assert_eq!(rec.binding.len(), 16);
    // The generated (extractable) object did not outlive generation.
    let leftovers = s_a
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Extractable(true),
            Attribute::Token(false),
        ])
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let s_b = b.open_session().unwrap();
    let h = token::unwrap(&b, &s_b, b.domain_key().unwrap(), &rec).unwrap();
    let attrs = bools(
        &s_b,
        h,
        &[
            AttributeType::Sensitive,
            AttributeType::Extractable,
            AttributeType::Token,
            AttributeType::KeyType,
        ],
    );
    for want in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Token(false),
        Attribute::KeyType(KeyType::AES),
    ] {
        assert!(attrs.contains(&want), "{want:?} not in {attrs:?}");
    }
    assert_secret_unreadable(&s_b, h);
    let err = s_b
        .wrap_key(&Mechanism::AesKeyWrapPad, b.domain_key().unwrap(), h)
        .unwrap_err();
    assert!(
        matches!(
            rv(err),
            RvError::KeyUnextractable | RvError::KeyNotWrappable
        ),
        "an unwrapped key version must not be exportable"
    );
    // Extractability cannot be turned back on.
    assert!(s_b
        .update_attributes(h, &[Attribute::Extractable(true)])
        .is_err());

    // A token moved to another key's record is refused.
    let mut moved = rec.clone();
    moved.key_id = "33333333-3333-4333-8333-333333333333".into();
    let err = token::unwrap(&b, &s_b, b.domain_key().unwrap(), &moved).unwrap_err();
    assert!(matches!(err, HsmError::TokenBinding { .. }), "{err}");
    let mut other_version = rec.clone();
    other_version.key_version_id = "44444444-4444-4444-8444-444444444444".into();
    assert!(token::unwrap(&b, &s_b, b.domain_key().unwrap(), &other_version).is_err());
    // A corrupted token does not unwrap.
    let mut corrupt = rec.clone();
    corrupt.wrapped_key[5] ^= 1;
    assert!(token::unwrap(&b, &s_b, b.domain_key().unwrap(), &corrupt).is_err());

    // No secret key on either token is readable or exportable in plaintext.
    for m in [&a, &b] {
        let s = m.open_session().unwrap();
        let all = s
            .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
            .unwrap();
        assert!(!all.is_empty());
        for h in all {
            let attrs = bools(&s, h, &[AttributeType::Sensitive]);
            assert_eq!(attrs, vec![Attribute::Sensitive(true)], "{}", m.name);
            assert_secret_unreadable(&s, h);
        }
    }
}
