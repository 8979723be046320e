//! Operations per second per mechanism, one session, each measured for a short fixed time.

use super::aes::{host_random, known_secret};
use super::check::{During, Figures, Recorder, Stop, Verdict};
use super::context::Ctx;
use crate::hsm::crypto::{self, asymmetric as asym, keywrap};
use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, KeyType};
use cryptoki::session::Session;
use openssl::nid::Nid;
use std::time::{Duration, Instant};

/// Runs `op` for `time`; operations per second.
fn rate(time: Duration, mut op: impl FnMut() -> Result<(), Stop>) -> Result<f64, Stop> {
    let started = Instant::now();
    let mut n = 0u64;
    while n == 0 || started.elapsed() < time {
        op()?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// throughput.
pub fn check(ctx: &mut Ctx, rec: &mut Recorder) {
    rec.run("throughput", || {
        let s = ctx.session()?;
        let time = ctx.throughput_time();
        let mut figures = Figures::new();
        let mut skipped = Vec::new();
        measure(ctx, &s, time, &mut figures, &mut skipped)?;
        if figures.is_empty() {
            return Ok(Verdict::skip(
                "the token offers none of the measured mechanisms",
            ));
        }
        let mut reason = format!(
            "{} mechanisms, {} ms each, one session (figures in operations per second)",
            figures.len(),
            time.as_millis()
        );
        if !skipped.is_empty() {
            reason.push_str(&format!("; not offered: {}", skipped.join(", ")));
        }
        Ok(Verdict::pass(reason).figures(figures))
    });
}

fn measure(
    ctx: &Ctx,
    s: &Session,
    time: Duration,
    figures: &mut Figures,
    skipped: &mut Vec<&'static str>,
) -> Result<(), Stop> {
    let mut offered = |name: &'static str, mechanisms: &[MechanismType]| {
        let ok = mechanisms.iter().all(|m| ctx.has(*m));
        if !ok {
            skipped.push(name);
        }
        ok
    };
    let data = host_random(256);
    if offered("aes_gcm", &[MechanismType::AES_GCM]) {
        let (k, _) = known_secret(s, KeyType::AES, 32, &[Attribute::Encrypt(true)])?;
        let mut i = 0u64;
        let r = rate(time, || {
            i += 1;
            let mut iv = [0u8; 12];
            iv[4..].copy_from_slice(&i.to_be_bytes());
            crypto::gcm_encrypt(s, k, &iv, b"", &data).during("AES-GCM")?;
            Ok(())
        })?;
        figures.insert("aes256_gcm_encrypt_256B_ops_per_s".into(), r);
    }
    if offered("aes_cbc_pad", &[MechanismType::AES_CBC_PAD]) {
        let (k, _) = known_secret(s, KeyType::AES, 32, &[Attribute::Encrypt(true)])?;
        let r = rate(time, || {
            crypto::cbc_encrypt(s, k, &[0u8; 16], true, &data).during("AES-CBC-PAD")?;
            Ok(())
        })?;
        figures.insert("aes256_cbc_pad_encrypt_256B_ops_per_s".into(), r);
    }
    if offered(
        "aes_key_wrap_pad",
        &[MechanismType::AES_KEY_WRAP_PAD, MechanismType::AES_KEY_GEN],
    ) {
        let (kek, _) = known_secret(s, KeyType::AES, 32, &[Attribute::Wrap(true)])?;
        let key = crypto::generate_version_key(s, 256).during("C_GenerateKey")?;
        let r = rate(time, || {
            keywrap::wrap(s, kek, key).during("C_WrapKey")?;
            Ok(())
        })?;
        figures.insert("aes_key_wrap_pad_ops_per_s".into(), r);
    }
    if offered("hmac_sha256", &[MechanismType::SHA256_HMAC]) {
        let (k, _) = known_secret(s, KeyType::GENERIC_SECRET, 32, &[Attribute::Sign(true)])?;
        let r = rate(time, || {
            asym::hmac(s, k, asym::Hash::Sha256, &data).during("HMAC")?;
            Ok(())
        })?;
        figures.insert("hmac_sha256_256B_ops_per_s".into(), r);
    }
    let digest = crate::crypto::primitives::sha256(&data);
    if offered(
        "rsa_sign",
        &[
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            MechanismType::RSA_PKCS_PSS,
        ],
    ) {
        let (public, private) =
            asym::generate_pair(s, asym::PairSpec::Rsa(2048), asym::PrivateUse::Sign)
                .during("C_GenerateKeyPair")?;
        let scheme = asym::SignScheme::Pss(asym::Hash::Sha256);
        let r = rate(time, || {
            asym::sign(s, private, scheme, &digest).during("RSA-PSS")?;
            Ok(())
        })?;
        figures.insert("rsa2048_pss_sign_ops_per_s".into(), r);
        let _ = (s.destroy_object(private), s.destroy_object(public));
    }
    if offered(
        "ecdsa_p256",
        &[MechanismType::ECC_KEY_PAIR_GEN, MechanismType::ECDSA],
    ) {
        let (public, private) = asym::generate_pair(
            s,
            asym::PairSpec::Ec(Nid::X9_62_PRIME256V1),
            asym::PrivateUse::Sign,
        )
        .during("C_GenerateKeyPair")?;
        let r = rate(time, || {
            asym::sign(s, private, asym::SignScheme::Ecdsa, &digest).during("ECDSA")?;
            Ok(())
        })?;
        figures.insert("ecdsa_p256_sign_ops_per_s".into(), r);
        let _ = (s.destroy_object(private), s.destroy_object(public));
    }
    let r = rate(time, || {
        crypto::random(s, 32).during("C_GenerateRandom")?;
        Ok(())
    })?;
    figures.insert("random_32B_ops_per_s".into(), r);
    Ok(())
}
