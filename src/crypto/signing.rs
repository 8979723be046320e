//! Signature and public-key encryption algorithms: which keys each one fits, the hash it
//! uses, what the HSM is asked to sign, and the host-side work around it (hashing RAW
//! messages, DigestInfo, DER-encoding ECDSA signatures, verifying with public keys).
//! Nothing here touches a private key.

use crate::error::{ErrorCode, KmsError};
use crate::hsm::crypto::asymmetric::{Hash, SignScheme};
use crate::keys::spec::{Curve, KeySpec};
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::EcGroup;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignAlgorithm {
    pub name: &'static str,
    pub scheme: SignScheme,
    pub hash: Hash,
}

const fn alg(name: &'static str, scheme: SignScheme, hash: Hash) -> SignAlgorithm {
    SignAlgorithm { name, scheme, hash }
}

const SIGN_ALGORITHMS: [SignAlgorithm; 8] = [
    alg(
        "RSA_PSS_SHA_256",
        SignScheme::Pss(Hash::Sha256),
        Hash::Sha256,
    ),
    alg(
        "RSA_PSS_SHA_384",
        SignScheme::Pss(Hash::Sha384),
        Hash::Sha384,
    ),
    alg(
        "RSA_PSS_SHA_512",
        SignScheme::Pss(Hash::Sha512),
        Hash::Sha512,
    ),
    alg("RSA_PKCS1_SHA_256", SignScheme::Pkcs1, Hash::Sha256),
    alg("RSA_PKCS1_SHA_384", SignScheme::Pkcs1, Hash::Sha384),
    alg("RSA_PKCS1_SHA_512", SignScheme::Pkcs1, Hash::Sha512),
    alg("ECDSA_SHA_256", SignScheme::Ecdsa, Hash::Sha256),
    alg("ECDSA_SHA_384", SignScheme::Ecdsa, Hash::Sha384),
];

impl SignAlgorithm {
    /// Whether a key of `spec` signs with this algorithm: RSA keys with the RSA schemes, each
    /// EC curve with the ECDSA hash of its own size.
    fn fits(self, spec: KeySpec) -> bool {
        match (spec, self.scheme) {
            (KeySpec::Rsa(_), SignScheme::Pss(_) | SignScheme::Pkcs1) => true,
            (KeySpec::Ec(Curve::P256 | Curve::P256K), SignScheme::Ecdsa) => {
                self.hash == Hash::Sha256
            }
            (KeySpec::Ec(Curve::P384), SignScheme::Ecdsa) => self.hash == Hash::Sha384,
            _ => false,
        }
    }

    /// Parses `name` for a key of `spec`.
    pub fn parse(name: &str, spec: KeySpec) -> Result<SignAlgorithm, KmsError> {
        let fitting: Vec<&str> = SIGN_ALGORITHMS
            .iter()
            .filter(|a| a.fits(spec))
            .map(|a| a.name)
            .collect();
        match SIGN_ALGORITHMS.iter().find(|a| a.name == name) {
            Some(a) if a.fits(spec) => Ok(*a),
            found => Err(KmsError::new(
                if found.is_some() || name.is_empty() {
                    ErrorCode::InvalidParameter
                } else {
                    ErrorCode::UnsupportedAlgorithm
                },
                format!(
                    "signing algorithm {name:?} {} {} keys; use {}",
                    if found.is_some() {
                        "does not fit"
                    } else {
                        "is not one hkms offers for"
                    },
                    spec.as_str(),
                    fitting.join(", ")
                ),
            )),
        }
    }

    /// The digest the HSM signs: the message hashed here (`RAW`) or the caller's digest
    /// (`DIGEST`, exactly the hash's length).
    pub fn digest(self, message_type: &str, message: &[u8]) -> Result<Vec<u8>, KmsError> {
        match message_type {
            "" | "RAW" => openssl::hash::hash(md(self.hash), message)
                .map(|d| d.to_vec())
                .map_err(internal),
            "DIGEST" => {
                if message.len() != self.hash.output_len() {
                    return Err(KmsError::invalid(format!(
                        "a DIGEST for {} is {} bytes; got {}",
                        self.name,
                        self.hash.output_len(),
                        message.len()
                    )));
                }
                Ok(message.to_vec())
            }
            other => Err(KmsError::invalid(format!(
                "MessageType {other:?} is not valid; use RAW or DIGEST"
            ))),
        }
    }

    /// What the HSM's mechanism takes for `digest`: the DigestInfo for PKCS #1 v1.5, the
    /// digest itself otherwise.
    pub fn hsm_input(self, digest: &[u8]) -> Vec<u8> {
        match self.scheme {
            SignScheme::Pkcs1 => {
                let mut v = digest_info_prefix(self.hash).to_vec();
                v.extend_from_slice(digest);
                v
            }
            _ => digest.to_vec(),
        }
    }

    /// The signature as callers receive it: the HSM's answer, with ECDSA's r || s turned
    /// into the DER ECDSA-Sig-Value that OpenSSL and X.509 use, and `s` in its low form
    /// (`s <= n/2`, replacing `s` by `n - s`, which is just as valid): Bitcoin and Ethereum
    /// accept only that form, and it leaves one valid encoding per signature.
    pub fn encode(self, raw: Vec<u8>, spec: KeySpec) -> Result<Vec<u8>, KmsError> {
        if self.scheme != SignScheme::Ecdsa {
            return Ok(raw);
        }
        if raw.is_empty() || !raw.len().is_multiple_of(2) {
            return Err(internal(
                "the HSM answered an ECDSA signature of odd length",
            ));
        }
        let (r, s) = raw.split_at(raw.len() / 2);
        let s = low_s(BigNum::from_slice(s).map_err(internal)?, spec)?;
        let sig = EcdsaSig::from_private_components(BigNum::from_slice(r).map_err(internal)?, s)
            .map_err(internal)?;
        sig.to_der().map_err(internal)
    }

    /// Whether `signature` is valid over `digest` for `public_key`. A malformed signature is
    /// simply not valid.
    pub fn verify(self, public_key: &PKey<Public>, digest: &[u8], signature: &[u8]) -> bool {
        let check = || -> Result<bool, openssl::error::ErrorStack> {
            let mut ctx = PkeyCtx::new(public_key)?;
            ctx.verify_init()?;
            match self.scheme {
                SignScheme::Pss(_) => {
                    ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                    ctx.set_signature_md(md_ref(self.hash))?;
                    ctx.set_rsa_mgf1_md(md_ref(self.hash))?;
                    ctx.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                }
                SignScheme::Pkcs1 => {
                    ctx.set_rsa_padding(Padding::PKCS1)?;
                    ctx.set_signature_md(md_ref(self.hash))?;
                }
                SignScheme::Ecdsa => ctx.set_signature_md(md_ref(self.hash))?,
            }
            ctx.verify(digest, signature)
        };
        check().unwrap_or(false)
    }
}

/// `s` or `n - s`, whichever is not above half the order of `spec`'s curve.
fn low_s(s: BigNum, spec: KeySpec) -> Result<BigNum, KmsError> {
    let nid = match spec {
        KeySpec::Ec(Curve::P256) => Nid::X9_62_PRIME256V1,
        KeySpec::Ec(Curve::P384) => Nid::SECP384R1,
        KeySpec::Ec(Curve::P256K) => Nid::SECP256K1,
        _ => return Err(internal("ECDSA with a key that is not an EC key")),
    };
    let group = EcGroup::from_curve_name(nid).map_err(internal)?;
    let mut ctx = BigNumContext::new().map_err(internal)?;
    let mut n = BigNum::new().map_err(internal)?;
    group.order(&mut n, &mut ctx).map_err(internal)?;
    let mut half = BigNum::new().map_err(internal)?;
    half.rshift1(&n).map_err(internal)?;
    if s > half {
        let mut low = BigNum::new().map_err(internal)?;
        low.checked_sub(&n, &s).map_err(internal)?;
        return Ok(low);
    }
    Ok(s)
}

/// An RSA-OAEP algorithm (MGF1 with the same hash, empty label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OaepAlgorithm {
    pub name: &'static str,
    pub hash: Hash,
}

impl OaepAlgorithm {
    /// Parses an AsymmetricEncrypt/Decrypt algorithm; empty means RSAES_OAEP_SHA_256.
    pub fn parse(name: &str) -> Result<OaepAlgorithm, KmsError> {
        match name {
            "" | "RSAES_OAEP_SHA_256" => Ok(OaepAlgorithm {
                name: "RSAES_OAEP_SHA_256",
                hash: Hash::Sha256,
            }),
            "RSAES_OAEP_SHA_1" => Ok(OaepAlgorithm {
                name: "RSAES_OAEP_SHA_1",
                hash: Hash::Sha1,
            }),
            other => Err(KmsError::new(
                ErrorCode::UnsupportedAlgorithm,
                format!(
                    "encryption algorithm {other:?} is not offered; use RSAES_OAEP_SHA_256 or \
                     RSAES_OAEP_SHA_1"
                ),
            )),
        }
    }

    /// The longest plaintext a key of `modulus_bytes` can encrypt.
    pub fn max_plaintext(self, modulus_bytes: usize) -> usize {
        modulus_bytes.saturating_sub(2 * self.hash.output_len() + 2)
    }

    /// Encrypts with the public key (public-key encryption needs no secret).
    pub fn encrypt(self, public_key: &PKey<Public>, plaintext: &[u8]) -> Result<Vec<u8>, KmsError> {
        let run = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let mut ctx = PkeyCtx::new(public_key)?;
            ctx.encrypt_init()?;
            ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
            ctx.set_rsa_oaep_md(md_ref(self.hash))?;
            ctx.set_rsa_mgf1_md(md_ref(self.hash))?;
            let mut out = Vec::new();
            ctx.encrypt_to_vec(plaintext, &mut out)?;
            Ok(out)
        };
        run().map_err(internal)
    }
}

fn md_ref(hash: Hash) -> &'static openssl::md::MdRef {
    use openssl::md::Md;
    match hash {
        Hash::Sha1 => Md::sha1(),
        Hash::Sha256 => Md::sha256(),
        Hash::Sha384 => Md::sha384(),
        Hash::Sha512 => Md::sha512(),
    }
}

fn md(hash: Hash) -> MessageDigest {
    match hash {
        Hash::Sha1 => MessageDigest::sha1(),
        Hash::Sha256 => MessageDigest::sha256(),
        Hash::Sha384 => MessageDigest::sha384(),
        Hash::Sha512 => MessageDigest::sha512(),
    }
}

/// The DER DigestInfo header of a PKCS #1 v1.5 signature (RFC 8017, section 9.2, note 1).
fn digest_info_prefix(hash: Hash) -> &'static [u8] {
    match hash {
        Hash::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        Hash::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        Hash::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        Hash::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    KmsError::new(ErrorCode::Internal, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::EcKey;
    use openssl::rsa::Rsa;

    #[test]
    fn algorithms_fit_their_keys_only() {
        let rsa = KeySpec::Rsa(2048);
        assert_eq!(
            SignAlgorithm::parse("RSA_PSS_SHA_512", rsa).unwrap().hash,
            Hash::Sha512
        );
        let e = SignAlgorithm::parse("ECDSA_SHA_256", rsa).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameter);
        let p384 = KeySpec::Ec(Curve::P384);
        assert!(SignAlgorithm::parse("ECDSA_SHA_256", p384).is_err());
        assert!(SignAlgorithm::parse("ECDSA_SHA_384", p384).is_ok());
        let e = SignAlgorithm::parse("SM2DSA", KeySpec::Ec(Curve::P256)).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedAlgorithm);
        assert!(e.message.contains("ECDSA_SHA_256"), "{}", e.message);
    }

    #[test]
    fn digests_must_have_the_hash_length() {
        let a = SignAlgorithm::parse("RSA_PKCS1_SHA_384", KeySpec::Rsa(2048)).unwrap();
        assert_eq!(a.digest("", b"m").unwrap().len(), 48);
        assert!(a.digest("DIGEST", &[0; 32]).is_err());
        assert!(a.digest("DIGEST", &[0; 49]).is_err());
        assert_eq!(a.digest("DIGEST", &[7; 48]).unwrap(), [7; 48]);
        assert!(a.digest("HASHED", b"m").is_err());
        assert_eq!(a.hsm_input(&[0; 48]).len(), 19 + 48);
    }

    #[test]
    fn host_verification_accepts_openssl_signatures_and_refuses_others() {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let public = PKey::public_key_from_der(&key.public_key_to_der().unwrap()).unwrap();
        for name in ["RSA_PSS_SHA_256", "RSA_PKCS1_SHA_512"] {
            let a = SignAlgorithm::parse(name, KeySpec::Rsa(2048)).unwrap();
            let mut signer = openssl::sign::Signer::new(md(a.hash), &key).unwrap();
            if let SignScheme::Pss(_) = a.scheme {
                signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                signer
                    .set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)
                    .unwrap();
            }
            let sig = signer.sign_oneshot_to_vec(b"hello").unwrap();
            let digest = a.digest("RAW", b"hello").unwrap();
            assert!(a.verify(&public, &digest, &sig), "{name}");
            assert!(!a.verify(&public, &a.digest("RAW", b"hellO").unwrap(), &sig));
            assert!(!a.verify(&public, &digest, b"not a signature"));
        }
        let group = EcGroup::from_curve_name(Nid::SECP256K1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let public = PKey::public_key_from_der(&ec.public_key_to_der().unwrap()).unwrap();
        let a = SignAlgorithm::parse("ECDSA_SHA_256", KeySpec::Ec(Curve::P256K)).unwrap();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &ec).unwrap();
        let der = signer.sign_oneshot_to_vec(b"m").unwrap();
        let digest = a.digest("RAW", b"m").unwrap();
        assert!(a.verify(&public, &digest, &der));
        // r || s from an HSM, re-encoded, verifies the same, with s in its low form whether
        // it came high or low.
        let sig = EcdsaSig::from_der(&der).unwrap();
        let mut n = BigNum::new().unwrap();
        group
            .order(&mut n, &mut BigNumContext::new().unwrap())
            .unwrap();
        let mut other_s = BigNum::new().unwrap();
        other_s.checked_sub(&n, sig.s()).unwrap();
        let mut half = BigNum::new().unwrap();
        half.rshift1(&n).unwrap();
        for s in [sig.s().to_owned().unwrap(), other_s] {
            let mut raw = sig.r().to_vec_padded(32).unwrap();
            raw.extend(s.to_vec_padded(32).unwrap());
            let encoded = a.encode(raw, KeySpec::Ec(Curve::P256K)).unwrap();
            assert!(a.verify(&public, &digest, &encoded));
            let back = EcdsaSig::from_der(&encoded).unwrap();
            assert!(back.s() <= &*half, "low s");
            assert_eq!(back.r(), sig.r());
        }
    }
}
