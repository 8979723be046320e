//! Every PKCS#11 mechanism hkms uses, in one place (those of imported key material in
//! `import.rs` beside this file).
//!
//! Each function takes a session and object handles and makes the calls for one primitive.
//! Nothing here decides policy or retries; [`super::pool`] does that.
//!
//! Object templates:
//! - the domain key: AES-256 token object, private, sensitive, usable only to wrap and unwrap,
//!   extractable only under a key the security officer marked trusted (`CKA_WRAP_WITH_TRUSTED`),
//!   which is how it moves HSM to HSM;
//!   It carries `CKA_UNWRAP_TEMPLATE` (whatever it unwraps is sensitive and can leave the
//!   HSM only under a key the security officer marked trusted) and `CKA_WRAP_TEMPLATE` (it
//!   wraps only sensitive keys), enforced by the HSM;
//! - a key version (token version 2): three independent AES keys generated inside the HSM,
//!   one per mode family ([`ModeFamily`]): AES-GCM, AES-CBC, and the binding key hkms uses
//!   for itself. Generated sensitive and extractable (so the domain key can wrap them, then
//!   destroyed); unwrapped sensitive, not extractable, unable to derive. So a raw AES block
//!   under the CBC key says nothing of the GCM key, and no key's value follows from another's;
//! - a legacy key version (written before token version 2): its one material, unwrapped as
//!   the version's AES-CBC key, which also decrypts the AES-GCM ciphertexts it wrote.

pub mod asymmetric;
mod attributes;
mod import;
pub mod keywrap;

use super::ffi;
use attributes::rsa_public_components;
pub use attributes::unwrap_template;
use cryptoki::error::Result;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use std::path::Path;
use zeroize::Zeroizing;

pub use import::{
    derive_from_material, generate_wrapping_pair, secret_key_len, unwrap_imported_material,
    unwrap_wrapping_key, wrap_private_key, ImportWrapping, WrappingPair,
};

/// `CKM_AES_KEY_WRAP_PAD` (RFC 5649), the mechanism of every stored key token (made and
/// opened as `CKM_AES_KEY_WRAP_KWP` on devices that name it so: see `keywrap.rs`).
pub const TOKEN_WRAP_MECHANISM: u64 = 0x210A;
/// GCM IV length in bytes.
pub const GCM_IV_LEN: usize = 12;
/// GCM tag length in bytes.
pub const GCM_TAG_LEN: usize = 16;
/// RSA modulus of the transport key that carries the domain key between members.
const TRANSPORT_KEY_BITS: u64 = 3072;

fn domain_key_label(domain_key_id: &str) -> Vec<u8> {
    format!("hkms-domain-key-{domain_key_id}").into_bytes()
}

/// What the domain key may wrap: only sensitive keys.
pub fn wrap_template() -> [Attribute; 1] {
    [Attribute::Sensitive(true)]
}

/// Attributes shared by every copy of the domain key.
fn domain_key_template(domain_key_id: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::WrapWithTrusted(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        Attribute::Label(domain_key_label(domain_key_id)),
        Attribute::Id(domain_key_id.as_bytes().to_vec()),
    ]
}

/// Generates the domain key as a token object (the first member, at `hkms init`), with its
/// wrap and unwrap templates unless `templates` is false (a device that refuses them, as its
/// profile says). `module` is the member's PKCS#11 library.
pub fn generate_domain_key(
    module: &Path,
    session: &Session,
    domain_key_id: &str,
    templates: bool,
) -> Result<ObjectHandle> {
    generate_with_templates(
        module,
        session,
        domain_key_template(domain_key_id),
        templates,
    )
}

/// A key with the domain key's attributes, wrap and unwrap templates, as a session object
/// (gone with its session): `hkms certify` checks that the HSM enforces the templates
/// without adding anything to the token.
pub fn generate_session_domain_key(
    module: &Path,
    session: &Session,
    domain_key_id: &str,
) -> Result<ObjectHandle> {
    let mut template = domain_key_template(domain_key_id);
    template.retain(|a| !matches!(a, Attribute::Token(_)));
    template.push(Attribute::Token(false));
    generate_with_templates(module, session, template, true)
}

/// An AES-256 key of `template`, with the domain key's wrap and unwrap templates when
/// `templates` is true.
fn generate_with_templates(
    module: &Path,
    session: &Session,
    mut template: Vec<Attribute>,
    templates: bool,
) -> Result<ObjectHandle> {
    template.push(Attribute::ValueLen(32.into()));
    let (wrap, unwrap) = (wrap_template(), unwrap_template());
    ffi::generate_key(
        module,
        session,
        &Mechanism::AesKeyGen,
        &template,
        key_templates(templates, &wrap, &unwrap),
    )
}

/// The domain key's wrap and unwrap templates, or none.
fn key_templates<'a>(
    templates: bool,
    wrap: &'a [Attribute],
    unwrap: &'a [Attribute],
) -> ffi::KeyTemplates<'a> {
    if templates {
        ffi::KeyTemplates { wrap, unwrap }
    } else {
        ffi::KeyTemplates {
            wrap: &[],
            unwrap: &[],
        }
    }
}

/// Whether the domain key carries the unwrap template hkms sets (`Sensitive` and
/// `WrapWithTrusted` true, `Derive` false), read back from the HSM. Domain keys made before the
/// template existed, and devices that drop it, answer false.
pub fn domain_key_enforces_unwrap_template(
    module: &Path,
    session: &Session,
    domain_key: ObjectHandle,
) -> Result<bool> {
    let Some(found) = ffi::unwrap_template(module, session, domain_key)? else {
        return Ok(false);
    };
    let holds = |kind, value: u8| {
        found
            .iter()
            .any(|(t, v)| *t == kind && v.as_slice() == [value])
    };
    Ok(holds(cryptoki_sys::CKA_SENSITIVE, 1)
        && holds(cryptoki_sys::CKA_WRAP_WITH_TRUSTED, 1)
        && holds(cryptoki_sys::CKA_DERIVE, 0))
}

/// Finds the domain key on the session's token.
pub fn find_domain_key(session: &Session, domain_key_id: &str) -> Result<Option<ObjectHandle>> {
    let found = session.find_objects(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Id(domain_key_id.as_bytes().to_vec()),
        Attribute::Label(domain_key_label(domain_key_id)),
    ])?;
    Ok(found.first().copied())
}

/// A transport key pair generated on the member that receives the domain key.
#[derive(Debug)]
pub struct TransportKey {
    pub public: ObjectHandle,
    pub private: ObjectHandle,
    pub modulus: Vec<u8>,
    pub public_exponent: Vec<u8>,
}

/// Generates an RSA transport pair as session objects; its private half can only unwrap.
pub fn generate_transport_key(session: &Session) -> Result<TransportKey> {
    let public_template = [
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Encrypt(false),
        Attribute::Wrap(true),
        Attribute::Verify(false),
        Attribute::ModulusBits(TRANSPORT_KEY_BITS.into()),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
    ];
    let private_template = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Unwrap(true),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
    ];
    let (public, private) = session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &public_template,
        &private_template,
    )?;
    let (modulus, public_exponent) = rsa_public_components(session, public)?;
    Ok(TransportKey {
        public,
        private,
        modulus,
        public_exponent,
    })
}

/// Creates the receiving member's transport public key on the source member as a trusted
/// wrapping key. Needs a session logged in as the security officer (only the SO can set
/// `CKA_TRUSTED`, and the SO can only create public objects).
pub fn import_trusted_transport_key(
    so_session: &Session,
    modulus: &[u8],
    public_exponent: &[u8],
) -> Result<ObjectHandle> {
    so_session.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Trusted(true),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
        Attribute::Verify(false),
        Attribute::Modulus(modulus.to_vec()),
        Attribute::PublicExponent(public_exponent.to_vec()),
    ])
}

fn oaep() -> Mechanism<'static> {
    // SoftHSM2 supports OAEP only with SHA-1 and MGF1-SHA1.
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ))
}

/// Wraps the domain key under a trusted transport public key (on the source member).
pub fn wrap_domain_key(
    session: &Session,
    transport_public: ObjectHandle,
    domain_key: ObjectHandle,
) -> Result<Vec<u8>> {
    session.wrap_key(&oaep(), transport_public, domain_key)
}

/// Unwraps a transported domain key into a token object (on the receiving member), with
/// the same wrap and unwrap templates as the original (none when `templates` is false).
pub fn unwrap_domain_key(
    module: &Path,
    session: &Session,
    transport_private: ObjectHandle,
    wrapped: &[u8],
    domain_key_id: &str,
    templates: bool,
) -> Result<ObjectHandle> {
    let (wrap, unwrap) = (wrap_template(), unwrap_template());
    ffi::unwrap_key(
        module,
        session,
        &oaep(),
        transport_private,
        wrapped,
        &domain_key_template(domain_key_id),
        key_templates(templates, &wrap, &unwrap),
    )
}

/// The keys of a key version, one per mode family: no two families ever share an AES key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeFamily {
    /// AES-GCM ciphertexts (Encrypt, AdvanceEncrypt, data keys).
    Gcm,
    /// AES-CBC ciphertexts, with or without padding (and, for a version written before
    /// token version 2, its one material).
    Cbc,
    /// Values hkms computes for itself: the token binding. Encrypts only.
    Binding,
}

/// Generates one key of a new key version as a session object that the domain key can
/// wrap. The caller wraps it (and uses a binding key once) and destroys it.
pub fn generate_version_key(session: &Session, bits: u32) -> Result<ObjectHandle> {
    session.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(u64::from(bits / 8).into()),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(false),
            Attribute::Derive(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
        ],
    )
}

/// Wraps a key of a key version under the domain key: part of the key token that is stored.
pub fn wrap_version_key(
    session: &Session,
    domain_key: ObjectHandle,
    key: ObjectHandle,
) -> Result<Vec<u8>> {
    keywrap::wrap(session, domain_key, key)
}

/// Unwraps one key of a key token into a session object for its mode family: sensitive,
/// never extractable again, unable to derive (the domain key's unwrap template would refuse
/// anything else), and a binding key that can only encrypt. `private` sets `CKA_PRIVATE`
/// (false only where the member's profile says `public_working_keys`).
pub fn unwrap_version_key(
    session: &Session,
    domain_key: ObjectHandle,
    wrapped: &[u8],
    family: ModeFamily,
    private: bool,
) -> Result<ObjectHandle> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(private),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(family != ModeFamily::Binding),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
    ];
    template.extend(unwrap_template());
    keywrap::unwrap(session, domain_key, wrapped, &template)
}

/// A binding value: one AES block, `AES-ECB(key, SHA-256(context)[..16])`, where the
/// context names the key id and version. `key` is the version's binding key (token version
/// 2) or, for a token written before, its one material.
pub fn binding(session: &Session, key: ObjectHandle, context: &[u8]) -> Result<Vec<u8>> {
    let digest = crate::crypto::primitives::sha256(context);
    session.encrypt(&Mechanism::AesEcb, key, &digest[..16])
}

/// AES-GCM encryption with a caller-supplied unique IV; returns ciphertext || tag.
///
/// Some devices replace the caller's IV with one they generate and write it back into the
/// parameters (AWS CloudHSM; Thales Luna in FIPS mode: `[quirks] gcm_iv` of their profiles).
/// hkms stores the IV it chose, so a ciphertext made under another one could never be
/// decrypted: it is discarded and the call fails as `C_Encrypt` returning
/// `CKR_FUNCTION_FAILED`, which the pool retries on another member.
pub fn gcm_encrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8; GCM_IV_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut used = *iv;
    let params = GcmParams::new(&mut used, aad, ((GCM_TAG_LEN * 8) as u64).into())?;
    let sealed = session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?;
    if used != *iv {
        return Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::FunctionFailed,
            cryptoki::context::Function::Encrypt,
        ));
    }
    Ok(sealed)
}

/// AES-GCM decryption of ciphertext || tag. A wrong tag fails (SoftHSM2 reports it as
/// `CKR_GENERAL_ERROR`, others as `CKR_ENCRYPTED_DATA_INVALID`).
pub fn gcm_decrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8; GCM_IV_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let mut iv = *iv;
    let params = GcmParams::new(&mut iv, aad, ((GCM_TAG_LEN * 8) as u64).into())?;
    session
        .decrypt(&Mechanism::AesGcm(params), key, ciphertext)
        .map(Zeroizing::new)
}

/// AES-CBC IV length in bytes.
pub const CBC_IV_LEN: usize = 16;

/// AES-CBC, with PKCS#7 padding (`CKM_AES_CBC_PAD`) or none (`CKM_AES_CBC`; the input must
/// be a whole number of 16-byte blocks).
fn cbc(iv: &[u8; CBC_IV_LEN], pkcs7: bool) -> Mechanism<'static> {
    if pkcs7 {
        Mechanism::AesCbcPad(*iv)
    } else {
        Mechanism::AesCbc(*iv)
    }
}

/// AES-CBC encryption.
pub fn cbc_encrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8; CBC_IV_LEN],
    pkcs7: bool,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    session.encrypt(&cbc(iv, pkcs7), key, plaintext)
}

/// AES-CBC decryption. Bad padding or a partial block fails.
pub fn cbc_decrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8; CBC_IV_LEN],
    pkcs7: bool,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    session
        .decrypt(&cbc(iv, pkcs7), key, ciphertext)
        .map(Zeroizing::new)
}

/// Random bytes from the HSM's generator.
pub fn random(session: &Session, len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    session.generate_random_slice(&mut out)?;
    Ok(out)
}
