//! ML-DSA (FIPS 204) and ML-KEM (FIPS 203) through the PKCS#11 3.2 mechanisms, when the
//! token lists them (`CKM_ML_DSA_KEY_PAIR_GEN` 0x1c, `CKM_ML_DSA` 0x1d,
//! `CKM_ML_KEM_KEY_PAIR_GEN` 0x0f, `CKM_ML_KEM` 0x17).
//!
//! The OpenSSL hkms links (3.0) has no ML-DSA or ML-KEM. With `--pqc-openssl` (an OpenSSL
//! 3.5 or later command) every result is checked independently: OpenSSL verifies the token's
//! signature, and the token decapsulates what OpenSSL encapsulated to the same secret.
//! Without it, results are checked on the token itself: signatures verify and fail once the
//! message changes; both sides of an encapsulation hold the same shared secret; sizes are
//! those of the standards.

use super::aes::host_random;
use super::check::{ensure, During, Recorder, Stop, Verdict};
use super::context::Ctx;
use cryptoki::mechanism::dsa::{HedgeType, SignAdditionalContext};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, KeyType, MlDsaParameterSetType, MlKemParameterSetType, ObjectClass,
    ObjectHandle,
};
use cryptoki::session::Session;

const NOT_OFFERED: &str = "mechanism not offered by the token";

/// mldsa.44, mldsa.65, mldsa.87, mlkem.768, mlkem.1024.
pub fn checks(ctx: &mut Ctx, rec: &mut Recorder) {
    let dsa = [
        ("mldsa.44", MlDsaParameterSetType::ML_DSA_44, 2420usize),
        ("mldsa.65", MlDsaParameterSetType::ML_DSA_65, 3309),
        ("mldsa.87", MlDsaParameterSetType::ML_DSA_87, 4627),
    ];
    for ((id, set, sig_len), oid) in dsa.into_iter().zip([0x11u8, 0x12, 0x13]) {
        rec.run(id, || {
            if !(ctx.has(MechanismType::ML_DSA_KEY_PAIR_GEN) && ctx.has(MechanismType::ML_DSA)) {
                return Ok(Verdict::skip(NOT_OFFERED));
            }
            mldsa(ctx, set, sig_len, oid)
        });
    }
    let kem = [
        ("mlkem.768", MlKemParameterSetType::ML_KEM_768, 1088usize),
        ("mlkem.1024", MlKemParameterSetType::ML_KEM_1024, 1568),
    ];
    for ((id, set, ct_len), oid) in kem.into_iter().zip([0x02u8, 0x03]) {
        rec.run(id, || {
            if !(ctx.has(MechanismType::ML_KEM_KEY_PAIR_GEN) && ctx.has(MechanismType::ML_KEM)) {
                return Ok(Verdict::skip(NOT_OFFERED));
            }
            mlkem(ctx, set, ct_len, oid)
        });
    }
}

fn pair(
    s: &Session,
    mechanism: Mechanism,
    key_type: KeyType,
    set: Attribute,
    public_use: Attribute,
    private_use: Attribute,
) -> Result<(ObjectHandle, ObjectHandle), Stop> {
    s.generate_key_pair(
        &mechanism,
        &[
            Attribute::Token(false),
            Attribute::KeyType(key_type),
            set,
            public_use,
        ],
        &[
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::KeyType(key_type),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            private_use,
        ],
    )
    .during("C_GenerateKeyPair")
}

fn mldsa(ctx: &Ctx, set: MlDsaParameterSetType, sig_len: usize, oid: u8) -> Result<Verdict, Stop> {
    let s = ctx.session()?;
    let started = std::time::Instant::now();
    let (public, private) = pair(
        &s,
        Mechanism::MlDsaKeyPairGen,
        KeyType::ML_DSA,
        Attribute::ParameterSet(set.into()),
        Attribute::Verify(true),
        Attribute::Sign(true),
    )?;
    let generate_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mechanism = Mechanism::MlDsa(SignAdditionalContext::new(HedgeType::Preferred, None));
    let message = host_random(100);
    let sig = s
        .sign(&mechanism, private, &message)
        .during("C_Sign (ML-DSA)")?;
    ensure(sig.len() == sig_len, || {
        format!("a {}-byte signature (FIPS 204: {sig_len})", sig.len())
    })?;
    s.verify(&mechanism, public, &message, &sig)
        .during("C_Verify of the token's own signature")?;
    let mut other = message.clone();
    other[0] ^= 1;
    ensure(s.verify(&mechanism, public, &other, &sig).is_err(), || {
        "the signature also verified over another message".into()
    })?;
    let independent = match &ctx.opts.pqc_openssl {
        Some(openssl) => {
            let spki = spki(&[0x03, oid], &public_value(&s, public)?);
            let dir = Scratch::new(&ctx.run_id, oid)?;
            let (key, msg, sig_file) = (
                dir.put("pub.der", &spki)?,
                dir.put("msg", &message)?,
                dir.put("sig", &sig)?,
            );
            run(
                openssl,
                &[
                    "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &key, "-rawin",
                    "-in", &msg, "-sigfile", &sig_file,
                ],
            )
            .map_err(|e| {
                Stop(Verdict::fail(format!(
                    "OpenSSL rejects the token's ML-DSA signature: {e}"
                )))
            })?;
            "OpenSSL verifies it"
        }
        None => "not checked independently (no --pqc-openssl)",
    };
    Ok(Verdict::pass(format!(
        "pair generated; a {sig_len}-byte signature verifies on the token and fails over \
         another message; {independent}"
    ))
    .figure("generate_ms", generate_ms))
}

fn mlkem(ctx: &Ctx, set: MlKemParameterSetType, ct_len: usize, oid: u8) -> Result<Verdict, Stop> {
    let s = ctx.session()?;
    let (public, private) = pair(
        &s,
        Mechanism::MlKemKeyPairGen,
        KeyType::ML_KEM,
        Attribute::ParameterSet(set.into()),
        Attribute::Encapsulate(true),
        Attribute::Decapsulate(true),
    )?;
    let secret = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let (ct, ours) = s
        .encapsulate_key(&Mechanism::MlKem, public, &secret)
        .during("C_EncapsulateKey")?;
    ensure(ct.len() == ct_len, || {
        format!("a {}-byte ciphertext (FIPS 203: {ct_len})", ct.len())
    })?;
    let theirs = s
        .decapsulate_key(&Mechanism::MlKem, private, &secret, &ct)
        .during("C_DecapsulateKey")?;
    let value = |h| -> Result<Vec<u8>, Stop> {
        s.get_attributes(h, &[AttributeType::Value])
            .during("reading the shared secret")?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Value(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| Stop(Verdict::fail("the shared secret cannot be read")))
    };
    let (a, b) = (value(ours)?, value(theirs)?);
    ensure(a == b && a.len() == 32, || {
        "encapsulation and decapsulation gave different shared secrets".into()
    })?;
    let independent = match &ctx.opts.pqc_openssl {
        Some(openssl) => {
            let spki = spki(&[0x04, oid], &public_value(&s, public)?);
            let dir = Scratch::new(&ctx.run_id, oid)?;
            let key = dir.put("pub.der", &spki)?;
            let (secret_file, ct_file) = (dir.path("secret"), dir.path("ct"));
            run(
                openssl,
                &[
                    "pkeyutl",
                    "-encap",
                    "-pubin",
                    "-keyform",
                    "DER",
                    "-inkey",
                    &key,
                    "-secret",
                    &secret_file,
                    "-out",
                    &ct_file,
                ],
            )
            .map_err(|e| {
                Stop(Verdict::fail(format!(
                    "OpenSSL cannot encapsulate to the token's public key: {e}"
                )))
            })?;
            let ct = std::fs::read(&ct_file).map_err(|e| Stop(Verdict::fail(e.to_string())))?;
            let want =
                std::fs::read(&secret_file).map_err(|e| Stop(Verdict::fail(e.to_string())))?;
            let got = s
                .decapsulate_key(&Mechanism::MlKem, private, &secret, &ct)
                .during("C_DecapsulateKey of OpenSSL's ciphertext")?;
            ensure(value(got)? == want, || {
                "the token decapsulates OpenSSL's ciphertext to another secret".into()
            })?;
            "the token decapsulates what OpenSSL encapsulated to OpenSSL's secret"
        }
        None => "not checked independently (no --pqc-openssl)",
    };
    Ok(Verdict::pass(format!(
        "pair generated; a {ct_len}-byte ciphertext; both sides hold the same 32-byte secret; \
         {independent}"
    )))
}

/// The raw public key (`CKA_VALUE` of an ML-DSA or ML-KEM public key object).
fn public_value(s: &Session, public: ObjectHandle) -> Result<Vec<u8>, Stop> {
    s.get_attributes(public, &[AttributeType::Value])
        .during("reading the public key")?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        })
        .ok_or_else(|| Stop(Verdict::fail("the public key's CKA_VALUE cannot be read")))
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    match n {
        0..=127 => out.push(n as u8),
        128..=255 => out.extend([0x81, n as u8]),
        _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(body);
    out
}

/// SubjectPublicKeyInfo of a NIST algorithm `2.16.840.1.101.3.4.<arc>` (FIPS 203/204
/// public keys, no parameters).
fn spki(arc: &[u8; 2], public: &[u8]) -> Vec<u8> {
    let mut oid = vec![0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04];
    oid.extend_from_slice(arc);
    let algorithm = der(0x30, &der(0x06, &oid));
    let mut bits = vec![0u8];
    bits.extend_from_slice(public);
    let mut body = algorithm;
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// A private scratch directory for the OpenSSL command, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(run_id: &str, n: u8) -> Result<Scratch, Stop> {
        let dir = std::env::temp_dir().join(format!("{run_id}-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| Stop(Verdict::fail(e.to_string())))?;
        Ok(Scratch(dir))
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<String, Stop> {
        std::fs::write(self.0.join(name), data).map_err(|e| Stop(Verdict::fail(e.to_string())))?;
        Ok(self.path(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the OpenSSL command; its error output when it fails.
fn run(openssl: &std::path::Path, args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new(openssl)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", openssl.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_encodes_the_algorithm_and_key() {
        let key = vec![0xAB; 1312];
        let der = spki(&[0x03, 0x11], &key);
        // As OpenSSL 3.5 writes an ML-DSA-44 public key.
        assert_eq!(
            &der[..22],
            &[
                0x30, 0x82, 0x05, 0x32, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                0x04, 0x03, 0x11, 0x03, 0x82, 0x05, 0x21, 0x00
            ]
        );
        assert_eq!(der.len(), 4 + 0x532);
        assert_eq!(&der[22..], key.as_slice());
    }
}
