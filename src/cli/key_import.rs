//! `hkms key import-params` and `hkms key import`: material of one's own in an EXTERNAL key
//! (bring your own key).
//!
//! The material is wrapped on the operator's machine with the wrapping public key hkmsd
//! handed out (RSA-OAEP), so it never travels in plaintext; only hkmsd's HSMs can unwrap
//! it, with the private key that hkmsd keeps (wrapped under the domain key) beside the
//! import token that names it.

use super::access::Printed;
use super::ca::write_atomic;
use super::key_args::{ImportArgs, ImportParamsArgs};
use super::key_show::metadata_json;
use crate::client::Client;
use crate::error::KmsError;
use crate::proto::*;
use openssl::encrypt::Encrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey};
use openssl::rsa::Padding;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use tonic::Status;
use zeroize::{Zeroize, Zeroizing};

/// The wrapping public key (PEM), in the parameters directory.
pub const PUBLIC_KEY_FILE: &str = "publickey.pem";
/// The import token (raw bytes, mode 0600), in the parameters directory.
pub const TOKEN_FILE: &str = "importtoken.bin";
/// What the parameters are for (key id, algorithm, expiry), in the parameters directory.
pub const PARAMS_FILE: &str = "import-params.json";

/// What `import-params` records beside the public key and the token.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ParamsFile {
    key_id: String,
    wrapping_algorithm: String,
    wrapping_key_spec: String,
    token_expire_time: String,
}

/// How the material is wrapped for the wrapping public key, as the import parameters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// `RSAES_OAEP_SHA_1`: RSA-OAEP (SHA-1, MGF1-SHA1) of the material.
    OaepSha1,
    /// `RSAES_OAEP_SHA_256`: RSA-OAEP (SHA-256, MGF1-SHA256) of the material.
    OaepSha256,
    /// `RSA_AES_KEY_WRAP_SHA_1`: RSA-OAEP (SHA-1) of a fresh AES-256 key, then the material
    /// wrapped under that key (AES key wrap with padding, RFC 5649).
    RsaAesSha1,
    /// `RSA_AES_KEY_WRAP_SHA_256`: the same with SHA-256.
    RsaAesSha256,
}

impl Wrapping {
    /// The wrapping algorithm by its API name.
    pub fn from_name(name: &str) -> Result<Wrapping, String> {
        match name {
            "RSAES_OAEP_SHA_1" => Ok(Wrapping::OaepSha1),
            "RSAES_OAEP_SHA_256" => Ok(Wrapping::OaepSha256),
            "RSA_AES_KEY_WRAP_SHA_1" => Ok(Wrapping::RsaAesSha1),
            "RSA_AES_KEY_WRAP_SHA_256" => Ok(Wrapping::RsaAesSha256),
            other => Err(format!("unknown wrapping algorithm {other:?}")),
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Wrapping::OaepSha1 | Wrapping::RsaAesSha1 => MessageDigest::sha1(),
            Wrapping::OaepSha256 | Wrapping::RsaAesSha256 => MessageDigest::sha256(),
        }
    }

    fn rsa_aes(self) -> bool {
        matches!(self, Wrapping::RsaAesSha1 | Wrapping::RsaAesSha256)
    }
}

/// Wraps `material` for the RSA public key in `public_key_pem` as `wrapping` says.
pub fn wrap_material(
    public_key_pem: &[u8],
    wrapping: Wrapping,
    material: &[u8],
) -> Result<Vec<u8>, String> {
    let err = |e: openssl::error::ErrorStack| format!("cannot wrap the material: {e}");
    let key = PKey::public_key_from_pem(public_key_pem)
        .map_err(|e| format!("the wrapping public key is not a PEM public key: {e}"))?;
    if key.id() != Id::RSA {
        return Err("the wrapping public key is not an RSA key".into());
    }
    let rsa_oaep = |data: &[u8]| -> Result<Vec<u8>, String> {
        let mut enc = Encrypter::new(&key).map_err(err)?;
        enc.set_rsa_padding(Padding::PKCS1_OAEP).map_err(err)?;
        enc.set_rsa_oaep_md(wrapping.digest()).map_err(err)?;
        enc.set_rsa_mgf1_md(wrapping.digest()).map_err(err)?;
        let mut out = vec![0; enc.encrypt_len(data).map_err(err)?];
        let n = enc.encrypt(data, &mut out).map_err(err)?;
        out.truncate(n);
        Ok(out)
    };
    if !wrapping.rsa_aes() {
        return rsa_oaep(material);
    }
    let mut ephemeral = Zeroizing::new(vec![0u8; 32]);
    openssl::rand::rand_bytes(&mut ephemeral).map_err(err)?;
    let mut out = rsa_oaep(&ephemeral)?;
    out.extend(aes_key_wrap_pad(&ephemeral, material).map_err(err)?);
    Ok(out)
}

/// AES-256 key wrap with padding (RFC 5649) of `data` under `key`.
fn aes_key_wrap_pad(key: &[u8], data: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    use openssl::cipher::Cipher;
    use openssl::cipher_ctx::{CipherCtx, CipherCtxFlags};
    let mut ctx = CipherCtx::new()?;
    ctx.set_flags(CipherCtxFlags::FLAG_WRAP_ALLOW);
    ctx.encrypt_init(Some(Cipher::aes_256_wrap_pad()), Some(key), None)?;
    let mut out = vec![0; data.len() + 16 + 8];
    let n = ctx.cipher_update(data, Some(&mut out))?;
    let m = ctx.cipher_final(&mut out[n..])?;
    out.truncate(n + m);
    Ok(out)
}

/// Reads raw key material (16 or 32 bytes) into memory that is wiped when dropped.
pub fn read_material(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let io = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len != 16 && len != 32 {
        return Err(format!(
            "{} holds {len} bytes: key material is the raw key, exactly 32 bytes \
             (Aliyun_AES_256) or 16 bytes (Aliyun_AES_128), not base64 or hex",
            path.display()
        ));
    }
    let mut material = Zeroizing::new(vec![0u8; len as usize]);
    f.read_exact(&mut material).map_err(io)?;
    let mut more = [0u8; 1];
    let extra = f.read(&mut more).map_err(io)?;
    more.zeroize();
    if extra != 0 {
        return Err(format!("{} grew while it was read", path.display()));
    }
    Ok(material)
}

/// Material length a key spec takes, when known.
fn material_len(key_spec: &str) -> Option<usize> {
    match key_spec {
        "Aliyun_AES_256" => Some(32),
        "Aliyun_AES_128" => Some(16),
        _ => None,
    }
}

fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
}

fn read_file(path: &Path) -> Result<Vec<u8>, Status> {
    std::fs::read(path).map_err(|e| {
        usage(format!(
            "cannot read {}: {e} (run `hkms key import-params` first)",
            path.display()
        ))
    })
}

/// Creates `dir` (and its parents) with mode 0700 when missing.
fn private_dir(dir: &Path) -> Result<(), Status> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))
}

/// Runs `hkms key import-params`.
pub async fn import_params(c: &mut Client, a: &ImportParamsArgs) -> Result<Printed, Status> {
    let r = c
        .keys
        .get_parameters_for_import(GetParametersForImportRequest {
            key_id: a.key.id(),
            wrapping_algorithm: a.wrapping_algorithm.clone(),
            wrapping_key_spec: a.wrapping_key_spec.clone(),
        })
        .await?
        .into_inner();
    let pem = if r.public_key_pem.is_empty() {
        PKey::public_key_from_der(&r.public_key)
            .and_then(|k| k.public_key_to_pem())
            .map_err(|e| usage(format!("hkmsd sent a public key that is not DER: {e}")))?
    } else {
        r.public_key_pem.into_bytes()
    };
    let params = ParamsFile {
        key_id: r.key_id,
        wrapping_algorithm: r.wrapping_algorithm,
        wrapping_key_spec: r.wrapping_key_spec,
        token_expire_time: r.token_expire_time,
    };
    let dir = &a.output_dir;
    let (key_file, token_file, params_file) = (
        dir.join(PUBLIC_KEY_FILE),
        dir.join(TOKEN_FILE),
        dir.join(PARAMS_FILE),
    );
    private_dir(dir)?;
    write_atomic(&token_file, &r.import_token, 0o600)?;
    write_atomic(&key_file, &pem, 0o644)?;
    let record = serde_json::to_string_pretty(&params).unwrap_or_default();
    write_atomic(&params_file, record.as_bytes(), 0o644)?;
    Ok((
        format!(
            "Import parameters for key {id} ({alg}, {spec}), valid until {exp}:\n  \
             public key:   {}\n  import token: {} (mode 0600)\n  parameters:   {}\n\
             Next: hkms key import --key-id {id} --material FILE --params-dir {}",
            key_file.display(),
            token_file.display(),
            params_file.display(),
            dir.display(),
            id = params.key_id,
            alg = params.wrapping_algorithm,
            spec = params.wrapping_key_spec,
            exp = params.token_expire_time,
        ),
        json!({
            "KeyId": params.key_id,
            "WrappingAlgorithm": params.wrapping_algorithm,
            "WrappingKeySpec": params.wrapping_key_spec,
            "TokenExpireTime": params.token_expire_time,
            "PublicKeyFile": key_file,
            "ImportTokenFile": token_file,
            "ParametersFile": params_file,
        }),
    ))
}

/// Runs `hkms key import`.
pub async fn import(c: &mut Client, a: &ImportArgs) -> Result<Printed, Status> {
    let dir = &a.params_dir;
    let params: ParamsFile = serde_json::from_slice(&read_file(&dir.join(PARAMS_FILE))?)
        .map_err(|e| usage(format!("{}: {e}", dir.join(PARAMS_FILE).display())))?;
    let oaep = Wrapping::from_name(&params.wrapping_algorithm).map_err(usage)?;
    let pem = read_file(&dir.join(PUBLIC_KEY_FILE))?;
    let token = read_file(&dir.join(TOKEN_FILE))?;
    let material = read_material(&a.material).map_err(usage)?;

    // The key's own id (an alias resolves) and spec, to check the files belong to it.
    let key = c
        .keys
        .describe_key(DescribeKeyRequest { key_id: a.key.id() })
        .await?
        .into_inner()
        .key_metadata
        .unwrap_or_default();
    if key.key_id != params.key_id {
        return Err(usage(format!(
            "the import parameters in {} are for key {}, not {}: run `hkms key \
             import-params --key-id {}` first",
            dir.display(),
            params.key_id,
            key.key_id,
            key.key_id
        )));
    }
    if let Some(want) = material_len(&key.key_spec).filter(|n| *n != material.len()) {
        return Err(usage(format!(
            "key {} is {} and takes {want} bytes of material; {} holds {} bytes",
            key.key_id,
            key.key_spec,
            a.material.display(),
            material.len()
        )));
    }
    let wrapped = wrap_material(&pem, oaep, &material).map_err(usage)?;
    drop(material);

    let m = c
        .keys
        .import_key_material(ImportKeyMaterialRequest {
            key_id: key.key_id,
            encrypted_key_material: wrapped,
            import_token: token,
            key_material_expire_unix: a.expire.unwrap_or(0),
        })
        .await?
        .into_inner()
        .key_metadata
        .unwrap_or_default();
    let expiry = if m.material_expire_time.is_empty() {
        "it never expires".to_owned()
    } else {
        format!("it expires on {}", m.material_expire_time)
    };
    Ok((
        format!(
            "Material imported into key {}; the key is {} and {expiry}.",
            m.key_id, m.key_state
        ),
        json!({ "KeyMetadata": metadata_json(&m) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::encrypt::Decrypter;
    use openssl::pkey::Private;
    use openssl::rsa::Rsa;

    fn unwrap(key: &PKey<Private>, oaep: Wrapping, wrapped: &[u8]) -> Vec<u8> {
        let mut dec = Decrypter::new(key).unwrap();
        dec.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        dec.set_rsa_oaep_md(oaep.digest()).unwrap();
        dec.set_rsa_mgf1_md(oaep.digest()).unwrap();
        let mut out = vec![0; dec.decrypt_len(wrapped).unwrap()];
        let n = dec.decrypt(wrapped, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn wrapped_material_unwraps_with_the_private_key() {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let pem = key.public_key_to_pem().unwrap();
        for (oaep, name) in [
            (Wrapping::OaepSha1, "RSAES_OAEP_SHA_1"),
            (Wrapping::OaepSha256, "RSAES_OAEP_SHA_256"),
        ] {
            assert_eq!(Wrapping::from_name(name), Ok(oaep));
            for len in [16, 32] {
                let material: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(7)).collect();
                let wrapped = wrap_material(&pem, oaep, &material).unwrap();
                assert_eq!(wrapped.len(), 256);
                assert_ne!(&wrapped[..len], &material[..]);
                assert_eq!(unwrap(&key, oaep, &wrapped), material, "{name} {len}");
            }
        }
        // SHA-1 and SHA-256 wrappings are not interchangeable.
        let wrapped = wrap_material(&pem, Wrapping::OaepSha256, &[1; 32]).unwrap();
        let mut dec = Decrypter::new(&key).unwrap();
        dec.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
        dec.set_rsa_oaep_md(MessageDigest::sha1()).unwrap();
        let mut out = vec![0; dec.decrypt_len(&wrapped).unwrap()];
        assert!(dec.decrypt(&wrapped, &mut out).is_err());
    }

    #[test]
    fn rsa_aes_wrapping_is_an_oaep_wrapped_aes_key_then_rfc_5649() {
        use openssl::cipher::Cipher;
        use openssl::cipher_ctx::{CipherCtx, CipherCtxFlags};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let pem = key.public_key_to_pem().unwrap();
        let material = [9u8; 32];
        for (wrapping, digest) in [
            (Wrapping::RsaAesSha1, MessageDigest::sha1()),
            (Wrapping::RsaAesSha256, MessageDigest::sha256()),
        ] {
            let wrapped = wrap_material(&pem, wrapping, &material).unwrap();
            assert_eq!(wrapped.len(), 256 + 40);
            let (head, tail) = wrapped.split_at(256);
            let mut dec = Decrypter::new(&key).unwrap();
            dec.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            dec.set_rsa_oaep_md(digest).unwrap();
            dec.set_rsa_mgf1_md(digest).unwrap();
            let mut aes = vec![0; dec.decrypt_len(head).unwrap()];
            let n = dec.decrypt(head, &mut aes).unwrap();
            aes.truncate(n);
            assert_eq!(aes.len(), 32);
            let mut ctx = CipherCtx::new().unwrap();
            ctx.set_flags(CipherCtxFlags::FLAG_WRAP_ALLOW);
            ctx.decrypt_init(Some(Cipher::aes_256_wrap_pad()), Some(&aes), None)
                .unwrap();
            let mut out = vec![0; tail.len() + 16];
            let n = ctx.cipher_update(tail, Some(&mut out)).unwrap();
            let m = ctx.cipher_final(&mut out[n..]).unwrap();
            out.truncate(n + m);
            assert_eq!(out, material);
        }
    }

    #[test]
    fn wrapping_needs_an_rsa_public_key() {
        assert!(wrap_material(b"not a key", Wrapping::OaepSha1, &[0; 32]).is_err());
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = PKey::from_ec_key(ec).unwrap().public_key_to_pem().unwrap();
        let e = wrap_material(&pem, Wrapping::OaepSha1, &[0; 32]).unwrap_err();
        assert!(e.contains("not an RSA key"), "{e}");
        assert!(Wrapping::from_name("RSAES_PKCS1_V1_5").is_err());
    }

    #[test]
    fn material_files_must_hold_16_or_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [16usize, 32] {
            let p = dir.path().join(format!("m{len}"));
            std::fs::write(&p, vec![9u8; len]).unwrap();
            assert_eq!(*read_material(&p).unwrap(), vec![9u8; len]);
        }
        for len in [0usize, 15, 24, 33, 44, 64] {
            let p = dir.path().join(format!("bad{len}"));
            std::fs::write(&p, vec![b'A'; len]).unwrap();
            let e = read_material(&p).unwrap_err();
            assert!(
                e.contains(&format!("holds {len} bytes")) && e.contains("not base64 or hex"),
                "{e}"
            );
        }
        let e = read_material(&dir.path().join("missing")).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn the_byok_help_names_the_files_import_params_writes() {
        let flow = super::super::key_args::BYOK_FLOW;
        for name in [PUBLIC_KEY_FILE, TOKEN_FILE, PARAMS_FILE] {
            assert!(flow.contains(name), "{name}");
        }
    }

    #[test]
    fn material_length_follows_the_key_spec() {
        assert_eq!(material_len("Aliyun_AES_256"), Some(32));
        assert_eq!(material_len("Aliyun_AES_128"), Some(16));
        assert_eq!(material_len(""), None);
    }
}
