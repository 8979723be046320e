//! RSA and EC key pairs, every signature and OAEP scheme hkms uses, and HMAC, each result
//! verified with OpenSSL.

use super::aes::{host_random, known_secret};
use super::check::{ensure, rv_name, rv_of, During, Recorder, Stop, Verdict};
use super::context::Ctx;
use crate::hsm::crypto::asymmetric::{self as asym, Hash, PairSpec, PrivateUse, SignScheme};
use crate::hsm::profile::EcCurve;
use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectHandle};
use cryptoki::session::Session;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};

/// A pair generated on the token: handles and the public key as OpenSSL holds it.
struct Pair {
    private: ObjectHandle,
    public: PKey<Public>,
}

fn generate(s: &Session, spec: PairSpec, usage: PrivateUse) -> Result<(Pair, f64), Stop> {
    let started = std::time::Instant::now();
    let (public, private) = asym::generate_pair(s, spec, usage).during("C_GenerateKeyPair")?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let der = asym::public_key_der(s, public, spec).during("reading the public key")?;
    let public = PKey::public_key_from_der(&der)?;
    // The private key must be sensitive: its secret parts unreadable.
    let secret = match spec {
        PairSpec::Rsa(_) => AttributeType::PrivateExponent,
        PairSpec::Ec(_) => AttributeType::Value,
    };
    let info = s
        .get_attribute_info(private, &[secret])
        .during("C_GetAttributeValue")?;
    ensure(
        matches!(
            info.first(),
            Some(AttributeInfo::Sensitive | AttributeInfo::Unavailable)
        ),
        || format!("the private key's secret part is readable ({info:?})"),
    )?;
    Ok((Pair { private, public }, ms))
}

/// The name of a hash as standards write it.
fn name(hash: Hash) -> &'static str {
    match hash {
        Hash::Sha1 => "SHA-1",
        Hash::Sha256 => "SHA-256",
        Hash::Sha384 => "SHA-384",
        Hash::Sha512 => "SHA-512",
    }
}

fn sha(hash: Hash) -> MessageDigest {
    match hash {
        Hash::Sha1 => MessageDigest::sha1(),
        Hash::Sha256 => MessageDigest::sha256(),
        Hash::Sha384 => MessageDigest::sha384(),
        Hash::Sha512 => MessageDigest::sha512(),
    }
}

/// DigestInfo prefixes (RFC 8017) of the hashes hkms signs with PKCS#1 v1.5.
fn digest_info(hash: Hash, digest: &[u8]) -> Vec<u8> {
    let prefix: &[u8] = match hash {
        Hash::Sha256 => &hex_lit("3031300d060960864801650304020105000420"),
        Hash::Sha384 => &hex_lit("3041300d060960864801650304020205000430"),
        _ => &hex_lit("3051300d060960864801650304020305000440"),
    };
    let mut v = prefix.to_vec();
    v.extend_from_slice(digest);
    v
}

fn hex_lit(s: &str) -> Vec<u8> {
    hex::decode(s).expect("a literal")
}

/// Signs a fresh message's digest with `scheme` on the token and verifies it with OpenSSL.
fn sign_verify(s: &Session, pair: &Pair, scheme: SignScheme, hash: Hash) -> Result<(), Stop> {
    let message = host_random(200);
    let digest = openssl::hash::hash(sha(hash), &message)?.to_vec();
    let input = match scheme {
        SignScheme::Pkcs1 => digest_info(hash, &digest),
        _ => digest.clone(),
    };
    let sig = asym::sign(s, pair.private, scheme, &input).during("C_Sign")?;
    let good = match scheme {
        SignScheme::Ecdsa => {
            ensure(!sig.is_empty() && sig.len() % 2 == 0, || {
                format!("an ECDSA signature of {} bytes", sig.len())
            })?;
            let (r, sv) = sig.split_at(sig.len() / 2);
            let sig =
                EcdsaSig::from_private_components(BigNum::from_slice(r)?, BigNum::from_slice(sv)?)?;
            sig.verify(&digest, &*pair.public.ec_key()?)?
        }
        _ => {
            let mut v = Verifier::new(sha(hash), &pair.public)?;
            if let SignScheme::Pss(_) = scheme {
                v.set_rsa_padding(Padding::PKCS1_PSS)?;
                v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                v.set_rsa_mgf1_md(sha(hash))?;
            } else {
                v.set_rsa_padding(Padding::PKCS1)?;
            }
            v.update(&message)?;
            v.verify(&sig).unwrap_or(false)
        }
    };
    ensure(good, || {
        format!(
            "OpenSSL rejects the token's {scheme:?} signature with {}",
            name(hash)
        )
    })
}

/// Every RSA, EC and HMAC check.
pub fn checks(ctx: &mut Ctx, rec: &mut Recorder) {
    let s = match ctx.session() {
        Ok(s) => s,
        Err(Stop(v)) => {
            for (id, _) in super::catalog::CHECKS.iter().filter(|(i, _)| {
                i.starts_with("rsa.")
                    || i.starts_with("ec.")
                    || *i == "ecdsa"
                    || i.starts_with("hmac.")
            }) {
                rec.record(id, v.clone(), 0.0);
            }
            return;
        }
    };
    let mut rsa: Option<Pair> = None;
    rec.run("rsa.generate", || {
        ctx.require(&[MechanismType::RSA_PKCS_KEY_PAIR_GEN])?;
        let mut v = Verdict::pass("RSA-2048 and RSA-3072 pairs generated, private keys sensitive");
        for bits in [2048u32, 3072] {
            let (pair, ms) = generate(&s, PairSpec::Rsa(bits), PrivateUse::Sign)?;
            let got = pair.public.bits();
            ensure(got == bits, || format!("asked RSA-{bits}, got {got} bits"))?;
            v = v.figure(&format!("rsa{bits}_generate_ms"), ms);
            if bits == 2048 {
                rsa = Some(pair);
            }
        }
        Ok(v)
    });
    let need_rsa = |rsa: &Option<Pair>| -> Result<(), Stop> {
        if rsa.is_none() {
            return Err(Stop(Verdict::skip(
                "no RSA key (rsa.generate did not pass)",
            )));
        }
        Ok(())
    };
    rec.run("rsa.pkcs1", || {
        ctx.require(&[MechanismType::RSA_PKCS])?;
        need_rsa(&rsa)?;
        let pair = rsa.as_ref().expect("checked");
        for h in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            sign_verify(&s, pair, SignScheme::Pkcs1, h)?;
        }
        Ok(Verdict::pass(
            "RSA-2048 PKCS#1 v1.5 over SHA-256/384/512 DigestInfo; OpenSSL verifies",
        ))
    });
    rec.run("rsa.pss", || {
        ctx.require(&[MechanismType::RSA_PKCS_PSS])?;
        need_rsa(&rsa)?;
        let pair = rsa.as_ref().expect("checked");
        for h in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            sign_verify(&s, pair, SignScheme::Pss(h), h)?;
        }
        Ok(Verdict::pass("RSA-2048 PSS (MGF1 same hash, salt = hash length) over SHA-256/384/512; OpenSSL verifies"))
    });

    let mut oaep: Option<Pair> = None;
    for (id, hash) in [
        ("rsa.oaep.sha1", Hash::Sha1),
        ("rsa.oaep.sha256", Hash::Sha256),
    ] {
        rec.run(id, || {
            ctx.require(&[MechanismType::RSA_PKCS_KEY_PAIR_GEN, MechanismType::RSA_PKCS_OAEP])?;
            if oaep.is_none() {
                oaep = Some(generate(&s, PairSpec::Rsa(2048), PrivateUse::Decrypt)?.0);
            }
            let pair = oaep.as_ref().expect("set");
            let plaintext = host_random(32);
            let mut enc = openssl::encrypt::Encrypter::new(&pair.public)?;
            enc.set_rsa_padding(Padding::PKCS1_OAEP)?;
            enc.set_rsa_oaep_md(sha(hash))?;
            enc.set_rsa_mgf1_md(sha(hash))?;
            let mut ct = vec![0u8; enc.encrypt_len(&plaintext)?];
            let n = enc.encrypt(&plaintext, &mut ct)?;
            ct.truncate(n);
            match asym::oaep_decrypt(&s, pair.private, hash, &ct) {
                Ok(back) => {
                    ensure(*back == plaintext, || {
                        "OAEP decryption returned other bytes than OpenSSL encrypted".into()
                    })?;
                    Ok(Verdict::pass(format!(
                        "RSA-2048 OAEP with {h} and MGF1-{h}: the token decrypts what OpenSSL encrypted", h = name(hash)
                    )))
                }
                Err(e) => match rv_of(&e) {
                    Some(rv @ (RvError::ArgumentsBad | RvError::MechanismParamInvalid | RvError::MechanismInvalid)) => {
                        Ok(Verdict::skip(format!(
                            "the token does not do OAEP with {h} ({}); hkms uses OAEP with \
                             {h} only where the member's profile allows it",
                            rv_name(rv),
                            h = name(hash)
                        ))
                        .rv(Some(rv)))
                    }
                    _ => Err(Stop(super::check::ck_fail("OAEP decryption", e))),
                },
            }
        });
    }

    let mut ec: Vec<(Nid, Pair)> = Vec::new();
    for (id, nid, name, curve) in [
        (
            "ec.generate.p256",
            Nid::X9_62_PRIME256V1,
            "P-256",
            EcCurve::P256,
        ),
        ("ec.generate.p384", Nid::SECP384R1, "P-384", EcCurve::P384),
        (
            "ec.generate.secp256k1",
            Nid::SECP256K1,
            "secp256k1",
            EcCurve::Secp256k1,
        ),
    ] {
        rec.run(id, || {
            ctx.require(&[MechanismType::ECC_KEY_PAIR_GEN])?;
            let (pair, ms) = match generate(&s, PairSpec::Ec(nid), PrivateUse::Sign) {
                Ok(p) => p,
                Err(Stop(v)) if v.rv.as_deref() == Some("CKR_CURVE_NOT_SUPPORTED") => {
                    return Ok(Verdict::skip(format!("the token does not offer {name}"))
                        .figures(v.figures));
                }
                // PKCS#11's mechanism information names no curves: a device without this
                // one may answer anything. The profile's `ec_curves` leaving it out is what
                // makes the refusal a known device difference (hkms does not send such
                // keys to the member) rather than a failure.
                Err(Stop(v)) if ctx.quirks.as_ref().is_some_and(|q| !q.ec_allows(curve)) => {
                    let mut skip = Verdict::skip(format!(
                        "the token refuses {name} keys ({}), and its HSM profile's ec_curves \
                         leaves {name} out: hkms does not make such keys on it",
                        v.rv.as_deref().unwrap_or("no return code")
                    ));
                    skip.rv = v.rv;
                    return Ok(skip);
                }
                Err(e) => return Err(e),
            };
            let curve = pair.public.ec_key()?.group().curve_name();
            ensure(curve == Some(nid), || {
                format!("asked {name}, got {curve:?}")
            })?;
            ec.push((nid, pair));
            Ok(Verdict::pass(format!(
                "{name} pair generated, private key sensitive, public point on the curve"
            ))
            .figure("generate_ms", ms))
        });
    }
    rec.run("ecdsa", || {
        ctx.require(&[MechanismType::ECDSA])?;
        if ec.is_empty() {
            return Ok(Verdict::skip("no EC key (ec.generate.* did not pass)"));
        }
        let mut done = Vec::new();
        for (nid, pair) in &ec {
            let hash = if *nid == Nid::SECP384R1 {
                Hash::Sha384
            } else {
                Hash::Sha256
            };
            sign_verify(&s, pair, SignScheme::Ecdsa, hash)?;
            done.push(format!(
                "{} with {}",
                nid.short_name().unwrap_or("?"),
                name(hash)
            ));
        }
        Ok(Verdict::pass(format!(
            "ECDSA over the digest (r || s): {}; OpenSSL verifies",
            done.join(", ")
        )))
    });

    for (id, hash, mechanism) in [
        ("hmac.sha256", Hash::Sha256, MechanismType::SHA256_HMAC),
        ("hmac.sha384", Hash::Sha384, MechanismType::SHA384_HMAC),
        ("hmac.sha512", Hash::Sha512, MechanismType::SHA512_HMAC),
    ] {
        rec.run(id, || {
            ctx.require(&[mechanism])?;
            let len = hash.output_len();
            let (key, value) =
                known_secret(&s, KeyType::GENERIC_SECRET, len, &[Attribute::Sign(true)])?;
            let message = host_random(300);
            let mac = asym::hmac(&s, key, hash, &message).during("C_Sign (HMAC)")?;
            let pkey = PKey::hmac(&value)?;
            let mut signer = openssl::sign::Signer::new(sha(hash), &pkey)?;
            signer.update(&message)?;
            ensure(mac == signer.sign_to_vec()?, || {
                format!(
                    "HMAC-{} differs from OpenSSL's for the same key and message",
                    name(hash)
                )
            })?;
            let mut v = Verdict::pass(format!("HMAC-{} matches OpenSSL", name(hash)));
            if ctx.has(MechanismType::GENERIC_SECRET_KEY_GEN) {
                let k = asym::generate_mac_key(&s, len).during("C_GenerateKey (HMAC key)")?;
                let m = asym::hmac(&s, k, hash, &message).during("C_Sign with a generated key")?;
                ensure(m.len() == len, || format!("a {}-byte MAC", m.len()))?;
                v.reason.push_str("; a generated HMAC key signs");
            }
            Ok(v)
        });
    }
}
