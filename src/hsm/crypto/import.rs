//! The mechanisms of imported key material (bring your own key): the RSA wrapping pair,
//! unwrapping the owner's material inside the HSM (RSA-OAEP, or RSA-AES key wrap in two
//! steps), and deriving a version's other keys from it.

use super::attributes::{rsa_public_components, unwrap_template};
use cryptoki::error::Result;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// An RSA key pair that receives imported key material (`GetParametersForImport`). Its
/// private half is sensitive and leaves the HSM only wrapped under the domain key.
#[derive(Debug)]
pub struct WrappingPair {
    pub public: ObjectHandle,
    pub private: ObjectHandle,
    /// The public key, SubjectPublicKeyInfo DER.
    pub public_der: Vec<u8>,
}

/// Generates a wrapping pair of `bits` as session objects. The caller wraps the private
/// half under the domain key and destroys both.
pub fn generate_wrapping_pair(session: &Session, bits: u32) -> Result<WrappingPair> {
    let public_template = [
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Verify(false),
        Attribute::ModulusBits(u64::from(bits).into()),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
    ];
    let private_template = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Unwrap(true),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Derive(false),
    ];
    let (public, private) = session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &public_template,
        &private_template,
    )?;
    let der = rsa_public_components(session, public).and_then(|(n, e)| public_key_der(&n, &e));
    match der {
        Ok(public_der) => Ok(WrappingPair {
            public,
            private,
            public_der,
        }),
        Err(e) => {
            let _ = session.destroy_object(private);
            let _ = session.destroy_object(public);
            Err(e)
        }
    }
}

/// SubjectPublicKeyInfo DER of an RSA public key given by its modulus and exponent.
fn public_key_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>> {
    openssl::bn::BigNum::from_slice(n)
        .and_then(|n| Ok((n, openssl::bn::BigNum::from_slice(e)?)))
        .and_then(|(n, e)| openssl::rsa::Rsa::from_public_components(n, e))
        .and_then(openssl::pkey::PKey::from_rsa)
        .and_then(|k| k.public_key_to_der())
        .map_err(|_| {
            cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::GeneralError,
                cryptoki::context::Function::GetAttributeValue,
            )
        })
}

/// Wraps a wrapping pair's private half under the domain key (part of the import
/// parameters that are stored).
pub fn wrap_private_key(
    session: &Session,
    domain_key: ObjectHandle,
    private: ObjectHandle,
) -> Result<Vec<u8>> {
    super::keywrap::wrap(session, domain_key, private)
}

/// Unwraps a stored wrapping private key: sensitive, not extractable, able only to unwrap.
pub fn unwrap_wrapping_key(
    session: &Session,
    domain_key: ObjectHandle,
    wrapped: &[u8],
) -> Result<ObjectHandle> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Extractable(false),
        Attribute::Unwrap(true),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
    ];
    template.extend(unwrap_template());
    super::keywrap::unwrap(session, domain_key, wrapped, &template)
}

/// How imported material is encrypted for the wrapping key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportWrapping {
    /// RSAES-OAEP with SHA-1 and MGF1-SHA1.
    OaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA256.
    OaepSha256,
    /// RSA-AES key wrap (as `CKM_RSA_AES_KEY_WRAP` defines it), made of two steps every
    /// member has: RSAES-OAEP (SHA-1) unwraps an ephemeral AES key, which then unwraps the
    /// material (AES key wrap with padding, RFC 5649). Neither key leaves the HSM.
    RsaAesSha1,
    /// The same with RSAES-OAEP SHA-256.
    RsaAesSha256,
}

/// Unwraps imported material with the wrapping private key into a session AES key:
/// sensitive, extractable only so the domain key can wrap it, and able only to derive the
/// version's other keys. `modulus_len` is the wrapping key's modulus in bytes (where an
/// RSA-AES wrapping splits). Its length is the caller's to check ([`secret_key_len`]).
pub fn unwrap_imported_material(
    session: &Session,
    wrapping_key: ObjectHandle,
    wrapping: ImportWrapping,
    encrypted: &[u8],
    modulus_len: usize,
) -> Result<ObjectHandle> {
    let (hash, mgf) = match wrapping {
        ImportWrapping::OaepSha1 | ImportWrapping::RsaAesSha1 => {
            (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1)
        }
        ImportWrapping::OaepSha256 | ImportWrapping::RsaAesSha256 => {
            (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256)
        }
    };
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()));
    let material_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
    ];
    if matches!(
        wrapping,
        ImportWrapping::OaepSha1 | ImportWrapping::OaepSha256
    ) {
        return session.unwrap_key(&oaep, wrapping_key, encrypted, &material_template);
    }
    if encrypted.len() <= modulus_len {
        return Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::WrappedKeyLenRange,
            cryptoki::context::Function::UnwrapKey,
        ));
    }
    let (head, tail) = encrypted.split_at(modulus_len);
    let ephemeral = session.unwrap_key(
        &oaep,
        wrapping_key,
        head,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Derive(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(true),
        ],
    )?;
    let material = super::keywrap::unwrap(session, ephemeral, tail, &material_template);
    let _ = session.destroy_object(ephemeral);
    material
}

/// The length in bytes of a secret key object, as its `CKA_VALUE_LEN` says (0 when the
/// token does not say: SoftHSM2 leaves it unset on unwrapped keys).
pub fn secret_key_len(session: &Session, key: ObjectHandle) -> Result<usize> {
    let attrs = session.get_attributes(key, &[cryptoki::object::AttributeType::ValueLen])?;
    Ok(attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::ValueLen(l) => Some(u64::from(l) as usize),
            _ => None,
        })
        .unwrap_or(0))
}

/// Derives an AES key from imported material inside the HSM:
/// `AES-CBC(material, IV = 0, data)` (`CKM_AES_CBC_ENCRYPT_DATA`), as long as `data` (16 or
/// 32 bytes). Extractable only when the domain key must wrap it.
pub fn derive_from_material(
    session: &Session,
    material: ObjectHandle,
    data: &[u8],
    extractable: bool,
) -> Result<ObjectHandle> {
    let params = cryptoki::mechanism::ekdf::AesCbcDeriveParams::new([0u8; 16], data);
    session.derive_key(
        &Mechanism::AesCbcEncryptData(params),
        material,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((data.len() as u64).into()),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(extractable),
            Attribute::Encrypt(true),
            Attribute::Decrypt(false),
            Attribute::Derive(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
        ],
    )
}
