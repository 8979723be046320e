//! ML-DSA (FIPS 204) and ML-KEM (FIPS 203) through the PKCS#11 3.2 mechanisms, when the
//! token lists them (`CKM_ML_DSA_KEY_PAIR_GEN` 0x1c, `CKM_ML_DSA` 0x1d,
//! `CKM_ML_KEM_KEY_PAIR_GEN` 0x0f, `CKM_ML_KEM` 0x17).
//!
//! The OpenSSL hkms links (3.0) has no ML-DSA or ML-KEM, so the results are checked on the
//! token itself: signatures verify and fail once the message changes; both sides of an
//! encapsulation hold the same shared secret; sizes are those of the standards.

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
    for (id, set, sig_len) in dsa {
        rec.run(id, || {
            if !(ctx.has(MechanismType::ML_DSA_KEY_PAIR_GEN) && ctx.has(MechanismType::ML_DSA)) {
                return Ok(Verdict::skip(NOT_OFFERED));
            }
            mldsa(ctx, set, sig_len)
        });
    }
    let kem = [
        ("mlkem.768", MlKemParameterSetType::ML_KEM_768, 1088usize),
        ("mlkem.1024", MlKemParameterSetType::ML_KEM_1024, 1568),
    ];
    for (id, set, ct_len) in kem {
        rec.run(id, || {
            if !(ctx.has(MechanismType::ML_KEM_KEY_PAIR_GEN) && ctx.has(MechanismType::ML_KEM)) {
                return Ok(Verdict::skip(NOT_OFFERED));
            }
            mlkem(ctx, set, ct_len)
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

fn mldsa(ctx: &Ctx, set: MlDsaParameterSetType, sig_len: usize) -> Result<Verdict, Stop> {
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
    Ok(Verdict::pass(format!(
        "pair generated; a {sig_len}-byte signature verifies on the token and fails over \
         another message (no independent ML-DSA verifier in the OpenSSL hkms links)"
    ))
    .figure("generate_ms", generate_ms))
}

fn mlkem(ctx: &Ctx, set: MlKemParameterSetType, ct_len: usize) -> Result<Verdict, Stop> {
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
    Ok(Verdict::pass(format!(
        "pair generated; a {ct_len}-byte ciphertext; both sides hold the same 32-byte secret"
    )))
}
