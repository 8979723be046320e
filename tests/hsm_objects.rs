//! What lands on the tokens, checked through PKCS#11 directly: the domain key and unwrapped
//! key versions are sensitive and cannot be read or exported, each version's AES-GCM and
//! AES-CBC keys are distinct keys, key tokens are bound to the key they are stored under, and
//! the domain key's unwrap template is enforced by the HSM (on the member that made it and
//! on the one that received it).
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
use hkms::hsm::{domain, HsmError, Member};
use hkms::keys::token;
use std::path::Path;

fn bools(s: &Session, h: ObjectHandle, types: &[AttributeType]) -> Vec<Attribute> {
    s.get_attributes(h, types).unwrap()
}

fn assert_secret_unreadable(s: &Session, h: ObjectHandle) {
    let info = s.get_attribute_info(h, &[AttributeType::Value]).unwrap();
    assert!(matches!(info[0], AttributeInfo::Sensitive), "{info:?}");
    let attrs = s.get_attributes(h, &[AttributeType::Value]).unwrap();
    assert!(attrs.is_empty(), "CKA_VALUE was returned");
}

/// A member as hkmsd builds it from its configuration, with the softhsm2 profile.
fn configured_member(dir: &Path, name: &str, label: &str) -> Member {
    let cfg = common::softhsm_member_config(dir, name, label);
    let m = Member::configured(Path::new("/nonexistent"), &cfg).unwrap();
    m.connect(None).unwrap();
    m
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
    // a is built without a profile; b as hkmsd builds it, with the softhsm2 profile, whose
    // working keys are public session objects.
    let a = common::softhsm_member(dir.path(), "a", "obj-a");
    let b = configured_member(dir.path(), "b", "obj-b");
    assert!(!a.public_working_keys());
    assert!(b.public_working_keys());
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
        assert_user_keys_cannot_wrap(&s, dk, &m.name);
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
    let dk_b = b.domain_key().unwrap();
    let keys = token::unwrap(&b, &s_b, dk_b, &rec, key_id, version).unwrap();
    assert_eq!(keys.legacy, None);
    assert_ne!(keys.gcm, keys.cbc);
    for h in [keys.gcm, keys.cbc] {
        let attrs = bools(
            &s_b,
            h,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Token,
                AttributeType::KeyType,
                AttributeType::Derive,
                AttributeType::Private,
            ],
        );
        for want in [
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Token(false),
            Attribute::KeyType(KeyType::AES),
            Attribute::Derive(false),
            Attribute::Private(false),
        ] {
            assert!(attrs.contains(&want), "{want:?} not in {attrs:?}");
        }
        assert_secret_unreadable(&s_b, h);
        let err = s_b
            .wrap_key(&Mechanism::AesKeyWrapPad, dk_b, h)
            .unwrap_err();
        assert!(
            matches!(
                rv(err),
                RvError::KeyUnextractable | RvError::KeyNotWrappable
            ),
            "a mode key must not be exportable"
        );
        // Extractability cannot be turned back on.
        assert!(s_b
            .update_attributes(h, &[Attribute::Extractable(true)])
            .is_err());
    }
    // One AES block under each mode key: the AES-GCM and AES-CBC keys of one version are
    // different keys, so a raw block from the CBC key says nothing of the GCM key.
    let block = |h| {
        s_b.encrypt(&Mechanism::AesCbc([0; 16]), h, &[0u8; 16])
            .unwrap()
    };
    assert_ne!(block(keys.gcm), block(keys.cbc));
    // The binding key only encrypts (it computes binding values), and is a third key.
    let binding_key = hkms::hsm::crypto::unwrap_version_key(
        &s_b,
        dk_b,
        &rec.wrapped_binding_key,
        hkms::hsm::crypto::ModeFamily::Binding,
        true,
    )
    .unwrap();
    let err = s_b
        .decrypt(&Mechanism::AesCbc([0; 16]), binding_key, &[0u8; 16])
        .unwrap_err();
    assert_eq!(rv(err), RvError::KeyFunctionNotPermitted);
    assert_ne!(block(binding_key), block(keys.gcm));
    assert_ne!(block(binding_key), block(keys.cbc));
    s_b.destroy_object(binding_key).unwrap();

    // A member whose profile does not say so unwraps the same token into private objects.
    let keys_a = token::unwrap(&a, &s_a, a.domain_key().unwrap(), &rec, key_id, version).unwrap();
    for h in [keys_a.gcm, keys_a.cbc] {
        let attrs = bools(&s_a, h, &[AttributeType::Private, AttributeType::Sensitive]);
        assert!(attrs.contains(&Attribute::Private(true)), "{attrs:?}");
        assert!(attrs.contains(&Attribute::Sensitive(true)), "{attrs:?}");
    }

    // A token is checked against the ids it is looked up by, not those written in it: a
    // record copied whole from this key to another key's place is refused.
    let other_key = "33333333-3333-4333-8333-333333333333";
    let other_version = "44444444-4444-4444-8444-444444444444";
    for (k, v) in [
        (other_key, version),
        (key_id, other_version),
        (other_key, other_version),
    ] {
        let err = token::unwrap(&b, &s_b, dk_b, &rec, k, v).unwrap_err();
        assert!(matches!(err, HsmError::TokenBinding { .. }), "{err}");
        // ... also when the record's own fields are rewritten to match its new place.
        let mut moved = rec.clone();
        moved.key_id = k.into();
        moved.key_version_id = v.into();
        let err = token::unwrap(&b, &s_b, dk_b, &moved, k, v).unwrap_err();
        assert!(matches!(err, HsmError::TokenBinding { .. }), "{err}");
    }
    // A corrupted token does not unwrap.
    let mut corrupt = rec.clone();
    corrupt.wrapped_key[5] ^= 1;
    assert!(token::unwrap(&b, &s_b, dk_b, &corrupt, key_id, version).is_err());
    let mut rebound = rec.clone();
    rebound.binding[0] ^= 1;
    let err = token::unwrap(&b, &s_b, dk_b, &rebound, key_id, version).unwrap_err();
    assert!(matches!(err, HsmError::TokenBinding { .. }), "{err}");

    unwrap_template_is_enforced_by_the_hsm(&a, &s_a, &rec.wrapped_key);
    unwrap_template_is_enforced_by_the_hsm(&b, &s_b, &rec.wrapped_key);

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

/// The domain key's `CKA_UNWRAP_TEMPLATE`, enforced by SoftHSM2 itself: with the hkms user's
/// PIN, a stored token cannot be unwrapped into a readable key, nor into one that can be
/// exported under a key the user made.
fn unwrap_template_is_enforced_by_the_hsm(m: &Member, s: &Session, wrapped: &[u8]) {
    let dk = m.domain_key().unwrap();
    assert!(
        hkms::hsm::crypto::domain_key_enforces_unwrap_template(m.module_path(), s, dk).unwrap(),
        "{}: the domain key carries its unwrap template",
        m.name
    );
    let base = || {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
        ]
    };
    let unwrap = |extra: &[Attribute]| {
        let mut t = base();
        t.extend_from_slice(extra);
        s.unwrap_key(&Mechanism::AesKeyWrapPad, dk, wrapped, &t)
    };
    // Not sensitive: its value would be readable.
    let err = unwrap(&[
        Attribute::Sensitive(false),
        Attribute::WrapWithTrusted(true),
        Attribute::Derive(false),
    ])
    .unwrap_err();
    assert_eq!(rv(err), RvError::TemplateInconsistent);
    // Extractable without wrap-with-trusted: it could be wrapped under any key.
    let err = unwrap(&[
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(false),
        Attribute::Derive(false),
    ])
    .unwrap_err();
    assert_eq!(rv(err), RvError::TemplateInconsistent);
    // Able to derive: a key derived from it could be made non-sensitive and read.
    let err = unwrap(&[
        Attribute::Sensitive(true),
        Attribute::WrapWithTrusted(true),
        Attribute::Derive(true),
    ])
    .unwrap_err();
    assert_eq!(rv(err), RvError::TemplateInconsistent);
    // Leaving the attributes out does not help either.
    let err = unwrap(&[Attribute::Extractable(true)]).unwrap_err();
    assert_eq!(rv(err), RvError::TemplateInconsistent);
    // What the template allows: sensitive, extractable only under a trusted key (as a
    // future domain-key rotation needs). A key the hkms user makes is not trusted, so it
    // cannot wrap the result.
    let h = unwrap(&[
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(true),
        Attribute::Derive(false),
    ])
    .unwrap();
    assert_secret_unreadable(s, h);
    assert_user_keys_cannot_wrap(s, h, &m.name);
    s.destroy_object(h).unwrap();
}

/// A wrapping key the hkms user makes cannot wrap `target` (only keys the SO marked
/// trusted can), and the user cannot mark its own key trusted.
fn assert_user_keys_cannot_wrap(s: &Session, target: ObjectHandle, who: &str) {
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
    let err = s
        .wrap_key(&Mechanism::AesKeyWrapPad, mine, target)
        .unwrap_err();
    assert_eq!(rv(err), RvError::KeyNotWrappable, "{who}");
    let err = s
        .update_attributes(mine, &[Attribute::Trusted(true)])
        .unwrap_err();
    assert_eq!(rv(err), RvError::AttributeReadOnly, "{who}");
    s.destroy_object(mine).unwrap();
}
