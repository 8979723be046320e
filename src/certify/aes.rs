//! AES: key generation, every mode hkms uses, a bad GCM tag, key wrap with padding, and
//! the negative checks on sensitive and non-extractable keys. Each value the token computes
//! is compared with OpenSSL's under a key of known value.

use super::check::{ensure, rv_name, rv_of, During, Recorder, Stop, Verdict};
use super::context::Ctx;
use crate::hsm::crypto::{self, keywrap};
use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use openssl::symm::{Cipher, Crypter, Mode};
use zeroize::Zeroizing;

/// Random bytes from OpenSSL (values the token is checked against).
pub(super) fn host_random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    openssl::rand::rand_bytes(&mut v).expect("OpenSSL's generator works");
    v
}

/// A secret key session object whose value the host knows: created from a host-made value,
/// or (when the token refuses to import one) generated non-sensitive and read back.
pub(super) fn known_secret(
    s: &Session,
    key_type: KeyType,
    len: usize,
    usage: &[Attribute],
) -> Result<(ObjectHandle, Zeroizing<Vec<u8>>), Stop> {
    let value = Zeroizing::new(host_random(len));
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    template.extend_from_slice(usage);
    let mut created = template.clone();
    created.push(Attribute::Value(value.to_vec()));
    if let Ok(h) = s.create_object(&created) {
        return Ok((h, value));
    }
    let mechanism = if key_type == KeyType::AES {
        Mechanism::AesKeyGen
    } else {
        Mechanism::GenericSecretKeyGen
    };
    template.push(Attribute::ValueLen((len as u64).into()));
    let h = s
        .generate_key(&mechanism, &template)
        .during("making a key of known value (C_CreateObject was refused, then C_GenerateKey)")?;
    let value = s
        .get_attributes(h, &[AttributeType::Value])
        .during("reading a non-sensitive key's value")?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) => Some(Zeroizing::new(v)),
            _ => None,
        })
        .ok_or_else(|| {
            Stop(Verdict::fail(
                "cannot make a key whose value the host knows",
            ))
        })?;
    Ok((h, value))
}

/// An AES key of `bytes` generated on the token: a sensitive, non-extractable session
/// object that encrypts and decrypts.
pub(super) fn generated_aes(s: &Session, bytes: u64) -> cryptoki::error::Result<ObjectHandle> {
    s.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(bytes.into()),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ],
    )
}

fn aes_key(s: &Session, len: usize) -> Result<(ObjectHandle, Zeroizing<Vec<u8>>), Stop> {
    known_secret(
        s,
        KeyType::AES,
        len,
        &[Attribute::Encrypt(true), Attribute::Decrypt(true)],
    )
}

fn cipher(mode: &str, key_len: usize) -> Cipher {
    match (mode, key_len) {
        ("gcm", 16) => Cipher::aes_128_gcm(),
        ("gcm", _) => Cipher::aes_256_gcm(),
        ("cbc", 16) => Cipher::aes_128_cbc(),
        ("cbc", _) => Cipher::aes_256_cbc(),
        ("ecb", 16) => Cipher::aes_128_ecb(),
        _ => Cipher::aes_256_ecb(),
    }
}

/// OpenSSL's AES in a mode without AEAD.
fn ossl(c: Cipher, key: &[u8], iv: Option<&[u8]>, pad: bool, data: &[u8]) -> Result<Vec<u8>, Stop> {
    let mut crypter = Crypter::new(c, Mode::Encrypt, key, iv)?;
    crypter.pad(pad);
    let mut out = vec![0u8; data.len() + 32];
    let mut n = crypter.update(data, &mut out)?;
    n += crypter.finalize(&mut out[n..])?;
    out.truncate(n);
    Ok(out)
}

/// RFC 5649 (AES key wrap with padding) computed by OpenSSL's AES.
pub(super) fn rfc5649_wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, Stop> {
    let mut aiv = [0xA6, 0x59, 0x59, 0xA6, 0, 0, 0, 0];
    aiv[4..].copy_from_slice(&(key.len() as u32).to_be_bytes());
    let mut padded = key.to_vec();
    padded.resize(key.len().div_ceil(8) * 8, 0);
    if padded.len() == 8 {
        let mut block = aiv.to_vec();
        block.extend_from_slice(&padded);
        return ossl(cipher("ecb", kek.len()), kek, None, false, &block);
    }
    let aes = openssl::aes::AesKey::new_encrypt(kek)
        .map_err(|_| Stop(Verdict::fail("OpenSSL refused the key-encryption key")))?;
    let mut out = vec![0u8; padded.len() + 8];
    openssl::aes::wrap_key(&aes, Some(aiv), &mut out, &padded)
        .map_err(|_| Stop(Verdict::fail("OpenSSL's key wrap failed")))?;
    Ok(out)
}

fn differs(what: &str) -> Stop {
    Stop(Verdict::fail(format!(
        "{what} differs from OpenSSL's for the same key and input"
    )))
}

/// Every AES check.
pub fn checks(ctx: &mut Ctx, rec: &mut Recorder) {
    rec.run("aes.generate", || {
        ctx.require(&[MechanismType::AES_KEY_GEN])?;
        let s = ctx.session()?;
        let mut v = Verdict::pass(
            "AES-128 and AES-256 keys generated sensitive and non-extractable, and read back so",
        );
        for bytes in [16u64, 32] {
            let started = std::time::Instant::now();
            let k = generated_aes(&s, bytes).during("C_GenerateKey")?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            v = v.figure(&format!("aes{}_generate_ms", bytes * 8), ms);
            let attrs = s
                .get_attributes(
                    k,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::AlwaysSensitive,
                        AttributeType::NeverExtractable,
                        AttributeType::ValueLen,
                        AttributeType::Token,
                    ],
                )
                .during("C_GetAttributeValue")?;
            let want = [
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::AlwaysSensitive(true),
                Attribute::NeverExtractable(true),
                Attribute::ValueLen(bytes.into()),
                Attribute::Token(false),
            ];
            for w in want {
                ensure(attrs.contains(&w), || {
                    format!("AES-{} key: {w:?} expected, read {attrs:?}", bytes * 8)
                })?;
            }
        }
        Ok(v)
    });

    rec.run("aes.gcm", || {
        ctx.require(&[MechanismType::AES_GCM])?;
        let s = ctx.session()?;
        let (k, value) = aes_key(&s, 32)?;
        let iv: [u8; 12] = host_random(12).try_into().expect("12 bytes");
        let aad = b"hkms certify: additional authenticated data";
        let plaintext = host_random(100);
        let hsm = crypto::gcm_encrypt(&s, k, &iv, aad, &plaintext).during("AES-GCM encryption")?;
        let mut tag = [0u8; 16];
        let mut want = openssl::symm::encrypt_aead(
            cipher("gcm", 32),
            &value,
            Some(&iv),
            aad,
            &plaintext,
            &mut tag,
        )?;
        want.extend_from_slice(&tag);
        ensure(hsm == want, || {
            "AES-GCM ciphertext || tag differs from OpenSSL's for the same key, IV and AAD".into()
        })?;
        let back = crypto::gcm_decrypt(&s, k, &iv, aad, &want).during("AES-GCM decryption")?;
        ensure(*back == plaintext, || {
            "AES-GCM decryption returned other bytes".into()
        })?;
        Ok(Verdict::pass(
            "AES-256-GCM with a caller IV (96 bits), AAD and a 128-bit tag: matches OpenSSL \
             both ways",
        ))
    });

    rec.run("aes.gcm.bad_tag", || {
        ctx.require(&[MechanismType::AES_GCM])?;
        let s = ctx.session()?;
        let (k, _) = aes_key(&s, 32)?;
        let iv = [7u8; 12];
        let mut ct = crypto::gcm_encrypt(&s, k, &iv, b"aad", b"sixteen byte msg")
            .during("AES-GCM encryption")?;
        let last = ct.len() - 1;
        ct[last] ^= 1;
        let refused = crypto::gcm_decrypt(&s, k, &iv, b"aad", &ct);
        let rv = match refused {
            Ok(_) => return Ok(Verdict::fail("a ciphertext with a wrong tag was decrypted")),
            Err(e) => rv_of(&e),
        };
        // The session must stay usable: hkms keeps it after a bad-input error.
        crypto::gcm_encrypt(&s, k, &iv, b"aad", b"x").during("AES-GCM after the refused tag")?;
        let name = rv.map(rv_name).unwrap_or_else(|| "an error".into());
        let note = match rv {
            Some(RvError::EncryptedDataInvalid) => "as PKCS#11 specifies".to_owned(),
            Some(RvError::GeneralError) => "a quirk (PKCS#11 says CKR_ENCRYPTED_DATA_INVALID); \
                hkms treats it as bad input on decryption, not as a device fault"
                .to_owned(),
            _ => "hkms treats it as bad input on decryption".to_owned(),
        };
        Ok(Verdict::pass(format!(
            "a wrong tag is refused with {name}, {note}; the session stays usable"
        ))
        .rv(rv))
    });

    for (id, pad, len) in [("aes.cbc", false, 64usize), ("aes.cbc_pad", true, 37)] {
        rec.run(id, || {
            let m = if pad {
                MechanismType::AES_CBC_PAD
            } else {
                MechanismType::AES_CBC
            };
            ctx.require(&[m])?;
            let s = ctx.session()?;
            let (k, value) = aes_key(&s, 32)?;
            let iv: [u8; 16] = host_random(16).try_into().expect("16 bytes");
            let plaintext = host_random(len);
            let hsm =
                crypto::cbc_encrypt(&s, k, &iv, pad, &plaintext).during("AES-CBC encryption")?;
            let want = ossl(cipher("cbc", 32), &value, Some(&iv), pad, &plaintext)?;
            if hsm != want {
                return Err(differs("AES-CBC ciphertext"));
            }
            let back = crypto::cbc_decrypt(&s, k, &iv, pad, &want).during("AES-CBC decryption")?;
            ensure(*back == plaintext, || {
                "AES-CBC decryption returned other bytes".into()
            })?;
            Ok(Verdict::pass(format!(
                "AES-256-CBC{} over {len} bytes matches OpenSSL both ways",
                if pad { " with PKCS#7 padding" } else { "" }
            )))
        });
    }

    rec.run("aes.ecb", || {
        ctx.require(&[MechanismType::AES_ECB])?;
        let s = ctx.session()?;
        let (k, value) = aes_key(&s, 32)?;
        let context = b"hkms key token v2\0key\0version";
        let hsm = crypto::binding(&s, k, context).during("AES-ECB (binding value)")?;
        let digest = crate::crypto::primitives::sha256(context);
        let want = ossl(cipher("ecb", 32), &value, None, false, &digest[..16])?;
        if hsm != want {
            return Err(differs("the AES-ECB block"));
        }
        Ok(Verdict::pass(
            "one AES-256-ECB block (hkms's binding value) matches OpenSSL",
        ))
    });

    rec.run("aes.key_wrap_pad", || key_wrap_pad(ctx));
    rec.run("sensitive.unreadable", || sensitive_unreadable(ctx));
    rec.run("nonextractable.unwrappable", || nonextractable(ctx));
}

fn key_wrap_pad(ctx: &Ctx) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_WRAP_PAD])?;
    // As hkms wraps: CKM_AES_KEY_WRAP_PAD, else the PKCS#11 3.0 number CKM_AES_KEY_WRAP_KWP.
    let used = ctx.key_wrap_pad().map(keywrap::name).unwrap_or_default();
    let s = ctx.session()?;
    let (kek, kek_value) = known_secret(
        &s,
        KeyType::AES,
        32,
        &[Attribute::Wrap(true), Attribute::Unwrap(true)],
    )?;
    for len in [16usize, 32] {
        let (key, value) = aes_key(&s, len)?;
        let hsm = keywrap::wrap(&s, kek, key).during(&format!("C_WrapKey ({used})"))?;
        let want = rfc5649_wrap(&kek_value, &value)?;
        if hsm != want {
            return Err(differs(&format!("the wrapped AES-{} key", len * 8)));
        }
        let back = keywrap::unwrap(
            &s,
            kek,
            &want,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
            ],
        )
        .during(&format!("C_UnwrapKey ({used})"))?;
        let block = [0x5Au8; 16];
        let hsm = s
            .encrypt(&Mechanism::AesEcb, back, &block)
            .during("AES-ECB with the unwrapped key")?;
        if hsm != ossl(cipher("ecb", len), &value, None, false, &block)? {
            return Err(differs("AES under the unwrapped key"));
        }
    }
    // A blob of a size no AES key has (hkms wraps HMAC keys and private keys too).
    let (mac, _) = known_secret(&s, KeyType::GENERIC_SECRET, 20, &[Attribute::Sign(true)])?;
    let blob = keywrap::wrap(&s, kek, mac).during("C_WrapKey of a 20-byte secret")?;
    ensure(blob.len() == 32, || {
        format!(
            "a 20-byte secret wrapped to {} bytes (RFC 5649: 32)",
            blob.len()
        )
    })?;
    Ok(Verdict::pass(format!(
        "AES-128 and AES-256 keys wrapped under AES-256 ({used}) match RFC 5649 computed by \
         OpenSSL; OpenSSL's blobs unwrap into working keys; a 20-byte secret wraps to 32 bytes"
    )))
}

fn sensitive_unreadable(ctx: &Ctx) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_GEN])?;
    let s = ctx.session()?;
    let k = crypto::generate_version_key(&s, 256).during("C_GenerateKey (sensitive AES key)")?;
    let info = s
        .get_attribute_info(k, &[AttributeType::Value])
        .during("C_GetAttributeValue (length of CKA_VALUE)")?;
    ensure(
        matches!(
            info.first(),
            Some(AttributeInfo::Sensitive | AttributeInfo::Unavailable)
        ),
        || format!("CKA_VALUE of a sensitive key is readable ({info:?})"),
    )?;
    let read = s
        .get_attributes(k, &[AttributeType::Value])
        .unwrap_or_default();
    ensure(read.is_empty(), || {
        "CKA_VALUE of a sensitive key was returned".into()
    })?;
    let cleared = s.update_attributes(k, &[Attribute::Sensitive(false)]);
    let rv = match cleared {
        Ok(()) => {
            return Ok(Verdict::fail(
                "CKA_SENSITIVE of a sensitive key could be set to false",
            ))
        }
        Err(e) => rv_of(&e),
    };
    Ok(Verdict::pass(format!(
        "CKA_VALUE answers CKR_ATTRIBUTE_SENSITIVE; setting CKA_SENSITIVE to false is refused ({})",
        rv.map(rv_name).unwrap_or_default()
    ))
    .rv(Some(RvError::AttributeSensitive)))
}

fn nonextractable(ctx: &Ctx) -> Result<Verdict, Stop> {
    ctx.require(&[MechanismType::AES_KEY_GEN, MechanismType::AES_KEY_WRAP_PAD])?;
    let s = ctx.session()?;
    let (kek, _) = known_secret(
        &s,
        KeyType::AES,
        32,
        &[Attribute::Wrap(true), Attribute::Unwrap(true)],
    )?;
    let k = generated_aes(&s, 32).during("C_GenerateKey (non-extractable AES key)")?;
    let rv = match keywrap::wrap(&s, kek, k) {
        Ok(_) => return Ok(Verdict::fail("a non-extractable key was wrapped")),
        Err(e) => rv_of(&e),
    };
    if s.update_attributes(k, &[Attribute::Extractable(true)])
        .is_ok()
    {
        return Ok(Verdict::fail("CKA_EXTRACTABLE could be set back to true"));
    }
    let v = match rv {
        Some(RvError::KeyUnextractable) => Verdict::pass(
            "C_WrapKey of a non-extractable key refused with CKR_KEY_UNEXTRACTABLE; \
             CKA_EXTRACTABLE cannot be set back to true",
        ),
        Some(other) => Verdict::pass(format!(
            "C_WrapKey of a non-extractable key refused with {} (PKCS#11 says \
             CKR_KEY_UNEXTRACTABLE); CKA_EXTRACTABLE cannot be set back to true",
            rv_name(other)
        )),
        None => Verdict::fail("C_WrapKey of a non-extractable key failed without a return code"),
    };
    Ok(v.rv(rv))
}
