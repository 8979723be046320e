//! The mechanisms of RSA, EC and HMAC keys: key generation inside the HSM, wrapping under
//! the domain key, signing, RSA-OAEP decryption, HMAC, and data key pairs.
//!
//! Private and MAC keys of customer master keys are generated as sensitive session objects,
//! wrapped under the domain key (AES key wrap with padding: the PKCS#8 encoding of a private
//! key never leaves the HSM unwrapped) and destroyed; they come back as sensitive,
//! non-extractable session objects. Public keys are read from the HSM and encoded on the host
//! as SubjectPublicKeyInfo. Data key pairs are the one exception by design: their private key
//! is returned to the caller, so it is generated as a non-sensitive session object and read.

use super::attributes::unwrap_template;
use cryptoki::error::Error as CkError;
use cryptoki::error::Result;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use zeroize::Zeroizing;

/// The kind and size of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSpec {
    /// RSA with this modulus length in bits (public exponent 65537).
    Rsa(u32),
    /// EC on this named curve.
    Ec(Nid),
}

/// What a private key may do inside the HSM (one, for life).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateUse {
    Sign,
    Decrypt,
}

/// The hash of a signature, OAEP or HMAC scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn mechanism(self) -> MechanismType {
        match self {
            Hash::Sha1 => MechanismType::SHA1,
            Hash::Sha256 => MechanismType::SHA256,
            Hash::Sha384 => MechanismType::SHA384,
            Hash::Sha512 => MechanismType::SHA512,
        }
    }

    fn mgf(self) -> PkcsMgfType {
        match self {
            Hash::Sha1 => PkcsMgfType::MGF1_SHA1,
            Hash::Sha256 => PkcsMgfType::MGF1_SHA256,
            Hash::Sha384 => PkcsMgfType::MGF1_SHA384,
            Hash::Sha512 => PkcsMgfType::MGF1_SHA512,
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// How the HSM signs a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignScheme {
    /// RSASSA-PSS with MGF1 of the same hash and a salt as long as the hash.
    Pss(Hash),
    /// RSASSA-PKCS1-v1_5 over a DigestInfo the caller built (`CKM_RSA_PKCS`).
    Pkcs1,
    /// ECDSA over the digest (`CKM_ECDSA`); the HSM answers r || s.
    Ecdsa,
}

/// The DER encoding of a named curve's OID (`CKA_EC_PARAMS`).
fn ec_params(curve: Nid) -> Result<Vec<u8>> {
    let oid: &[u8] = match curve {
        Nid::X9_62_PRIME256V1 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
        Nid::SECP384R1 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22],
        Nid::SECP256K1 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A],
        _ => return Err(CkError::InvalidValue),
    };
    Ok(oid.to_vec())
}

fn pair_templates(spec: PairSpec) -> Result<(KeyType, Vec<Attribute>)> {
    Ok(match spec {
        PairSpec::Rsa(bits) => (
            KeyType::RSA,
            vec![
                Attribute::ModulusBits(u64::from(bits).into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
        ),
        PairSpec::Ec(curve) => (KeyType::EC, vec![Attribute::EcParams(ec_params(curve)?)]),
    })
}

fn generation_mechanism(spec: PairSpec) -> Mechanism<'static> {
    match spec {
        PairSpec::Rsa(_) => Mechanism::RsaPkcsKeyPairGen,
        PairSpec::Ec(_) => Mechanism::EccKeyPairGen,
    }
}

/// Generates a key pair of a customer master key as session objects: the private key
/// sensitive, usable for `usage` only, extractable only so that the domain key can wrap it.
/// Returns (public, private); the caller wraps the private key, reads the public key and
/// destroys both.
pub fn generate_pair(
    session: &Session,
    spec: PairSpec,
    usage: PrivateUse,
) -> Result<(ObjectHandle, ObjectHandle)> {
    let (key_type, mut public) = pair_templates(spec)?;
    public.extend([
        Attribute::Token(false),
        Attribute::KeyType(key_type),
        Attribute::Verify(usage == PrivateUse::Sign),
        Attribute::Encrypt(usage == PrivateUse::Decrypt),
    ]);
    let private = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::KeyType(key_type),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Sign(usage == PrivateUse::Sign),
        Attribute::Decrypt(usage == PrivateUse::Decrypt),
        Attribute::Derive(false),
        Attribute::Unwrap(false),
    ];
    session.generate_key_pair(&generation_mechanism(spec), &public, &private)
}

/// The public key of a pair as SubjectPublicKeyInfo DER, read from its public object.
pub fn public_key_der(session: &Session, public: ObjectHandle, spec: PairSpec) -> Result<Vec<u8>> {
    let bad = |_| CkError::InvalidValue;
    let pkey = match spec {
        PairSpec::Rsa(_) => {
            let attrs = session.get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )?;
            let (mut n, mut e) = (None, None);
            for a in attrs {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (n, e) = n.zip(e).ok_or(CkError::InvalidValue)?;
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(&n).map_err(bad)?,
                BigNum::from_slice(&e).map_err(bad)?,
            )
            .map_err(bad)?;
            PKey::from_rsa(rsa).map_err(bad)?
        }
        PairSpec::Ec(curve) => {
            let point = ec_point(session, public, curve)?;
            let group = EcGroup::from_curve_name(curve).map_err(bad)?;
            let mut ctx = openssl::bn::BigNumContext::new().map_err(bad)?;
            let point = EcPoint::from_bytes(&group, &point, &mut ctx).map_err(bad)?;
            PKey::from_ec_key(EcKey::from_public_key(&group, &point).map_err(bad)?).map_err(bad)?
        }
    };
    pkey.public_key_to_der().map_err(bad)
}

/// `CKA_EC_POINT` as the bare uncompressed point of `curve`: PKCS#11 2.40 wraps it in a DER
/// OCTET STRING, some devices answer it bare (told apart by its length).
fn ec_point(session: &Session, public: ObjectHandle, curve: Nid) -> Result<Vec<u8>> {
    let field = match curve {
        Nid::SECP384R1 => 48,
        _ => 32,
    };
    let point_len = 1 + 2 * field;
    let attrs = session.get_attributes(public, &[AttributeType::EcPoint])?;
    let raw = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(v) => Some(v),
            _ => None,
        })
        .ok_or(CkError::InvalidValue)?;
    if raw.len() == point_len {
        return Ok(raw);
    }
    match raw.as_slice() {
        [0x04, len, rest @ ..] if usize::from(*len) == point_len && rest.len() == point_len => {
            Ok(rest.to_vec())
        }
        [0x04, 0x81, len, rest @ ..]
            if usize::from(*len) == point_len && rest.len() == point_len =>
        {
            Ok(rest.to_vec())
        }
        _ => Err(CkError::InvalidValue),
    }
}

/// The only mechanisms an unwrapped private key may be used with: hkms picks the mechanism
/// of every call, and the HSM refuses any other (raw RSA, PKCS #1 v1.5 decryption...).
fn allowed_mechanisms(spec: PairSpec, usage: PrivateUse) -> Vec<MechanismType> {
    match (spec, usage) {
        (PairSpec::Rsa(_), PrivateUse::Sign) => {
            vec![MechanismType::RSA_PKCS_PSS, MechanismType::RSA_PKCS]
        }
        (PairSpec::Rsa(_), PrivateUse::Decrypt) => vec![MechanismType::RSA_PKCS_OAEP],
        (PairSpec::Ec(_), _) => vec![MechanismType::ECDSA],
    }
}

/// Unwraps a stored private key into a sensitive, non-extractable session object usable
/// for `usage` only, with the mechanisms hkms uses for it only.
pub fn unwrap_private_key(
    session: &Session,
    domain_key: ObjectHandle,
    wrapped: &[u8],
    spec: PairSpec,
    usage: PrivateUse,
) -> Result<ObjectHandle> {
    let key_type = match spec {
        PairSpec::Rsa(_) => KeyType::RSA,
        PairSpec::Ec(_) => KeyType::EC,
    };
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Extractable(false),
        Attribute::Sign(usage == PrivateUse::Sign),
        Attribute::SignRecover(false),
        Attribute::Decrypt(usage == PrivateUse::Decrypt),
        Attribute::Unwrap(false),
        Attribute::AllowedMechanisms(allowed_mechanisms(spec, usage)),
    ];
    template.extend(unwrap_template());
    super::keywrap::unwrap(session, domain_key, wrapped, &template)
}

/// Signs `input` (a digest; for [`SignScheme::Pkcs1`] a DigestInfo) with a private key.
pub fn sign(
    session: &Session,
    key: ObjectHandle,
    scheme: SignScheme,
    input: &[u8],
) -> Result<Vec<u8>> {
    let mechanism = match scheme {
        SignScheme::Pss(hash) => Mechanism::RsaPkcsPss(PkcsPssParams {
            hash_alg: hash.mechanism(),
            mgf: hash.mgf(),
            s_len: (hash.output_len() as u64).into(),
        }),
        SignScheme::Pkcs1 => Mechanism::RsaPkcs,
        SignScheme::Ecdsa => Mechanism::Ecdsa,
    };
    session.sign(&mechanism, key, input)
}

/// RSA-OAEP decryption (MGF1 with the same hash, empty label).
pub fn oaep_decrypt(
    session: &Session,
    key: ObjectHandle,
    hash: Hash,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let params = PkcsOaepParams::new(hash.mechanism(), hash.mgf(), PkcsOaepSource::empty());
    session
        .decrypt(&Mechanism::RsaPkcsOaep(params), key, ciphertext)
        .map(Zeroizing::new)
}

/// Generates a key pair of a customer master key inside the HSM and returns its private key
/// wrapped under `domain_key` and its public key (SubjectPublicKeyInfo DER). The generated
/// objects are destroyed before returning, whatever happens.
pub fn generate_wrapped_pair(
    session: &Session,
    domain_key: ObjectHandle,
    spec: PairSpec,
    usage: PrivateUse,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let (public, private) = generate_pair(session, spec, usage)?;
    let result = super::wrap_version_key(session, domain_key, private)
        .and_then(|wrapped| Ok((wrapped, public_key_der(session, public, spec)?)));
    let _ = session.destroy_object(private);
    let _ = session.destroy_object(public);
    result
}

/// Generates an HMAC key of `len` bytes inside the HSM and returns it wrapped under
/// `domain_key`; the generated object is destroyed before returning.
pub fn generate_wrapped_mac_key(
    session: &Session,
    domain_key: ObjectHandle,
    len: usize,
) -> Result<Vec<u8>> {
    let key = generate_mac_key(session, len)?;
    let result = super::wrap_version_key(session, domain_key, key);
    let _ = session.destroy_object(key);
    result
}

/// Generates an HMAC key of `len` bytes as a sensitive session object that the domain key
/// can wrap; the caller wraps and destroys it.
pub fn generate_mac_key(session: &Session, len: usize) -> Result<ObjectHandle> {
    session.generate_key(
        &Mechanism::GenericSecretKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen((len as u64).into()),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
        ],
    )
}

/// Unwraps a stored HMAC key into a sensitive, non-extractable session object that can
/// only compute MACs with `hash`.
pub fn unwrap_mac_key(
    session: &Session,
    domain_key: ObjectHandle,
    wrapped: &[u8],
    hash: Hash,
) -> Result<ObjectHandle> {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Verify(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::AllowedMechanisms(vec![hmac_mechanism(hash).mechanism_type()]),
    ];
    template.extend(unwrap_template());
    super::keywrap::unwrap(session, domain_key, wrapped, &template)
}

fn hmac_mechanism(hash: Hash) -> Mechanism<'static> {
    match hash {
        Hash::Sha1 => Mechanism::Sha1Hmac,
        Hash::Sha256 => Mechanism::Sha256Hmac,
        Hash::Sha384 => Mechanism::Sha384Hmac,
        Hash::Sha512 => Mechanism::Sha512Hmac,
    }
}

/// HMAC of `message` with an HMAC key.
pub fn hmac(session: &Session, key: ObjectHandle, hash: Hash, message: &[u8]) -> Result<Vec<u8>> {
    session.sign(&hmac_mechanism(hash), key, message)
}

/// A data key pair from the HSM's generator: the pair is generated as non-sensitive session
/// objects (its private key is handed to the caller), read, and destroyed. Returns the
/// private key as an OpenSSL key (PKCS#8 and SubjectPublicKeyInfo are encoded from it).
pub fn data_key_pair(session: &Session, spec: PairSpec) -> Result<PKey<Private>> {
    let (key_type, mut public) = pair_templates(spec)?;
    public.extend([Attribute::Token(false), Attribute::KeyType(key_type)]);
    let private = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::KeyType(key_type),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Sign(false),
        Attribute::Decrypt(false),
    ];
    let (pub_h, priv_h) =
        session.generate_key_pair(&generation_mechanism(spec), &public, &private)?;
    let result = read_pair(session, pub_h, priv_h, spec);
    let _ = session.destroy_object(priv_h);
    let _ = session.destroy_object(pub_h);
    result
}

fn read_pair(
    session: &Session,
    public: ObjectHandle,
    private: ObjectHandle,
    spec: PairSpec,
) -> Result<PKey<Private>> {
    let bad = |_| CkError::InvalidValue;
    match spec {
        PairSpec::Rsa(_) => {
            let kinds = [
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::PrivateExponent,
                AttributeType::Prime1,
                AttributeType::Prime2,
                AttributeType::Exponent1,
                AttributeType::Exponent2,
                AttributeType::Coefficient,
            ];
            let attrs = session.get_attributes(private, &kinds)?;
            let mut parts: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(kinds.len());
            for a in attrs {
                parts.push(Zeroizing::new(match a {
                    Attribute::Modulus(v)
                    | Attribute::PublicExponent(v)
                    | Attribute::PrivateExponent(v)
                    | Attribute::Prime1(v)
                    | Attribute::Prime2(v)
                    | Attribute::Exponent1(v)
                    | Attribute::Exponent2(v)
                    | Attribute::Coefficient(v) => v,
                    _ => return Err(CkError::InvalidValue),
                }));
            }
            if parts.len() != kinds.len() {
                return Err(CkError::InvalidValue);
            }
            let bn = |i: usize| BigNum::from_slice(&parts[i]).map_err(bad);
            let rsa = Rsa::from_private_components(
                bn(0)?,
                bn(1)?,
                bn(2)?,
                bn(3)?,
                bn(4)?,
                bn(5)?,
                bn(6)?,
                bn(7)?,
            )
            .map_err(bad)?;
            PKey::from_rsa(rsa).map_err(bad)
        }
        PairSpec::Ec(curve) => {
            let attrs = session.get_attributes(private, &[AttributeType::Value])?;
            let scalar = Zeroizing::new(
                attrs
                    .into_iter()
                    .find_map(|a| match a {
                        Attribute::Value(v) => Some(v),
                        _ => None,
                    })
                    .ok_or(CkError::InvalidValue)?,
            );
            let point = ec_point(session, public, curve)?;
            let group = EcGroup::from_curve_name(curve).map_err(bad)?;
            let mut ctx = openssl::bn::BigNumContext::new().map_err(bad)?;
            let point = EcPoint::from_bytes(&group, &point, &mut ctx).map_err(bad)?;
            let d = BigNum::from_slice(&scalar).map_err(bad)?;
            let key = EcKey::from_private_components(&group, &d, &point).map_err(bad)?;
            key.check_key().map_err(bad)?;
            PKey::from_ec_key(key).map_err(bad)
        }
    }
}
