//! Bring your own key on real SoftHSM2 members: material wrapped by the `openssl` CLI with
//! the wrapping public key, imported, used, expired, deleted and imported again.

#[path = "support/clock.rs"]
mod clock;
mod common;

use clock::TestClock;
use common::{code, describe, drain, Daemon, MemberSpec};
use hkms::client::Client;
use hkms::proto::*;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use std::path::Path;
use std::process::Command;

const DAY: i64 = 86_400;

fn daemon(clock: &TestClock) -> Daemon {
    let path = clock.path.display().to_string();
    let d = Daemon::start_custom(
        &[
            MemberSpec::softhsm("hsm-0", "m0"),
            MemberSpec::softhsm("hsm-1", "m1"),
        ],
        &[(hkms::clock::TEST_CLOCK_ENV, path.as_str())],
        "",
    );
    d.init_ok();
    d
}

async fn create_external(c: &mut Client, spec: &str) -> KeyMetadata {
    c.keys
        .create_key(CreateKeyRequest {
            key_spec: spec.into(),
            origin: "EXTERNAL".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap()
}

async fn params(
    c: &mut Client,
    key_id: &str,
    algorithm: &str,
) -> Result<GetParametersForImportResponse, tonic::Status> {
    c.keys
        .get_parameters_for_import(GetParametersForImportRequest {
            key_id: key_id.into(),
            wrapping_algorithm: algorithm.into(),
            wrapping_key_spec: "RSA_2048".into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// `material` encrypted with the parameters' public key by the openssl CLI (OAEP, SHA-1).
fn wrap_with_openssl(dir: &Path, p: &GetParametersForImportResponse, material: &[u8]) -> Vec<u8> {
    let (public, plain, wrapped) = (
        dir.join("public.pem"),
        dir.join("material.bin"),
        dir.join("wrapped.bin"),
    );
    std::fs::write(&public, &p.public_key_pem).unwrap();
    std::fs::write(&plain, material).unwrap();
    let out = Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-pubin", "-inkey"])
        .arg(&public)
        .args([
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha1",
        ])
        .arg("-in")
        .arg(&plain)
        .arg("-out")
        .arg(&wrapped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&wrapped).unwrap()
}

async fn import(
    c: &mut Client,
    key_id: &str,
    wrapped: &[u8],
    token: &[u8],
    expire: i64,
) -> Result<KeyMetadata, tonic::Status> {
    c.keys
        .import_key_material(ImportKeyMaterialRequest {
            key_id: key_id.into(),
            encrypted_key_material: wrapped.to_vec(),
            import_token: token.to_vec(),
            key_material_expire_unix: expire,
        })
        .await
        .map(|r| r.into_inner().key_metadata.unwrap())
}

/// `material` wrapped RSA-AES style by the openssl CLI: a fresh AES-256 key under RSA-OAEP
/// (SHA-1), then the material under that key with AES key wrap with padding (RFC 5649).
fn rsa_aes_wrap_with_openssl(
    dir: &Path,
    p: &GetParametersForImportResponse,
    material: &[u8],
) -> Vec<u8> {
    let mut aes = [0u8; 32];
    openssl::rand::rand_bytes(&mut aes).unwrap();
    let head = wrap_with_openssl(dir, p, &aes);
    let (plain, wrapped) = (dir.join("material.bin"), dir.join("kwp.bin"));
    std::fs::write(&plain, material).unwrap();
    let hex: String = aes.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("openssl")
        .args([
            "enc",
            "-id-aes256-wrap-pad",
            "-K",
            &hex,
            "-iv",
            "A65959A6",
            "-in",
        ])
        .arg(&plain)
        .arg("-out")
        .arg(&wrapped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = head;
    all.extend(std::fs::read(&wrapped).unwrap());
    all
}

/// An AES-GCM ciphertext in hkms's documented format (`src/crypto/ciphertext.rs`), made
/// here with the raw material: magic "hk", format 2, algorithm 1, key id, version id, IV,
/// then ciphertext and tag, the header and the caller's AAD authenticated.
fn seal_outside(material: &[u8], key_id: &str, version: &str, aad: &[u8], text: &[u8]) -> Vec<u8> {
    let mut header = b"hk".to_vec();
    header.extend([2u8, 1u8]);
    header.extend(uuid::Uuid::parse_str(key_id).unwrap().as_bytes());
    header.extend(uuid::Uuid::parse_str(version).unwrap().as_bytes());
    let mut iv = [0u8; 12];
    openssl::rand::rand_bytes(&mut iv).unwrap();
    header.extend(iv);
    let mut full_aad = header.clone();
    full_aad.extend(aad);
    let mut tag = [0u8; 16];
    let body = encrypt_aead(
        Cipher::aes_256_gcm(),
        material,
        Some(&iv),
        &full_aad,
        text,
        &mut tag,
    )
    .unwrap();
    let mut blob = header;
    blob.extend(body);
    blob.extend(tag);
    blob
}

/// Opens a ciphertext hkms made, here with the raw material.
fn open_outside(material: &[u8], blob: &[u8], aad: &[u8]) -> Vec<u8> {
    let (header, rest) = blob.split_at(48);
    assert_eq!(&header[..4], b"hk\x02\x01");
    let (body, tag) = rest.split_at(rest.len() - 16);
    let mut full_aad = header.to_vec();
    full_aad.extend(aad);
    decrypt_aead(
        Cipher::aes_256_gcm(),
        material,
        Some(&header[36..48]),
        &full_aad,
        body,
        tag,
    )
    .unwrap()
}

async fn decrypt(c: &mut Client, blob: &[u8]) -> Result<Vec<u8>, tonic::Status> {
    c.crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: blob.to_vec(),
            aad: b"tenant=7".to_vec(),
        })
        .await
        .map(|r| r.into_inner().plaintext)
}

async fn on_each_member(c: &mut Client, blob: &[u8], text: &[u8]) {
    for drained in ["hsm-1", "hsm-0"] {
        drain(c, drained, false).await;
        let r = decrypt(c, blob).await;
        drain(c, drained, true).await;
        assert_eq!(r.unwrap(), text, "with {drained} drained");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_material_is_the_key_and_only_the_same_material_comes_back() {
    let clock = TestClock::default();
    let d = daemon(&clock);
    let mut c = d.client().await;
    let files = tempfile::tempdir().unwrap();
    let key = create_external(&mut c, "Aliyun_AES_256").await;
    assert_eq!(key.key_state, "PendingImport");
    assert_eq!(key.origin, "EXTERNAL");
    let id = key.key_id.clone();
    let e = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: id.clone(),
            plaintext: b"x".to_vec(),
            aad: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "KeyPendingImport");

    // What SoftHSM2 cannot do is refused, naming what is missing.
    let e = params(&mut c, &id, "RSAES_OAEP_SHA_256").await.unwrap_err();
    assert_eq!(code(e.clone()), "UnsupportedAlgorithm");
    assert!(e.message().contains("SHA-1 only"), "{e:?}");
    let e = params(&mut c, &id, "RSA_AES_KEY_WRAP_SHA_256")
        .await
        .unwrap_err();
    assert_eq!(code(e.clone()), "UnsupportedAlgorithm");
    assert!(e.message().contains("SHA-1 only"), "{e:?}");
    let e = params(&mut c, &id, "RSAES_PKCS1_V1_5").await.unwrap_err();
    assert_eq!(code(e), "UnsupportedAlgorithm");
    assert_eq!(
        code(params(&mut c, &id, "ROT13").await.unwrap_err()),
        "InvalidParameter"
    );
    // Generated keys take no material.
    let generated = common::create_key(&mut c).await;
    assert_eq!(
        code(
            params(&mut c, &generated, "RSAES_OAEP_SHA_1")
                .await
                .unwrap_err()
        ),
        "InvalidState"
    );

    let p = params(&mut c, &id, "RSAES_OAEP_SHA_1").await.unwrap();
    assert!(p.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let mut material = [0u8; 32];
    openssl::rand::rand_bytes(&mut material).unwrap();

    // Material of the wrong length, and a token of another key, change nothing.
    let short = wrap_with_openssl(files.path(), &p, &material[..16]);
    let e = import(&mut c, &id, &short, &p.import_token, 0)
        .await
        .unwrap_err();
    assert_eq!(code(e.clone()), "InvalidParameter", "{e:?}");
    assert!(e.message().contains("16 bytes"), "{e:?}");
    let odd = wrap_with_openssl(files.path(), &p, &material[..30]);
    let e = import(&mut c, &id, &odd, &p.import_token, 0)
        .await
        .unwrap_err();
    assert_eq!(code(e.clone()), "InvalidParameter", "{e:?}");
    let other = create_external(&mut c, "").await;
    let wrapped = wrap_with_openssl(files.path(), &p, &material);
    assert_eq!(
        code(
            import(&mut c, &other.key_id, &wrapped, &p.import_token, 0)
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    assert_eq!(
        code(
            import(
                &mut c,
                &id,
                &wrapped,
                b"0123456789abcdef0123456789abcdef",
                0
            )
            .await
            .unwrap_err()
        ),
        "ImportTokenExpired"
    );
    let mut damaged = wrapped.clone();
    damaged[10] ^= 1;
    assert_eq!(
        code(
            import(&mut c, &id, &damaged, &p.import_token, 0)
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    assert_eq!(describe(&mut c, &id).await.key_state, "PendingImport");

    // Imported, with an expiry in two days.
    let expire = clock.now() + 2 * DAY;
    let meta = import(&mut c, &id, &wrapped, &p.import_token, expire)
        .await
        .unwrap();
    assert_eq!(meta.key_state, "Enabled");
    assert!(!meta.material_expire_time.is_empty());

    // The material is the key: a ciphertext made here decrypts in hkms on every member,
    // and one made by hkms opens here.
    let version = meta.primary_key_version.clone();
    let outside = seal_outside(&material, &id, &version, b"tenant=7", b"made outside");
    on_each_member(&mut c, &outside, b"made outside").await;
    let inside = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: id.clone(),
            plaintext: b"made inside".to_vec(),
            aad: b"tenant=7".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        open_outside(&material, &inside.ciphertext_blob, b"tenant=7"),
        b"made inside"
    );

    // Imported keys do not rotate.
    let e = c
        .keys
        .create_key_version(CreateKeyVersionRequest { key_id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(code(e), "InvalidState");

    // Deleted: unreadable until imported again; other material is refused.
    let meta = c
        .keys
        .delete_key_material(DeleteKeyMaterialRequest { key_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, "PendingImport");
    assert_eq!(
        code(decrypt(&mut c, &outside).await.unwrap_err()),
        "KeyPendingImport"
    );
    // Parameters made on one member serve an import on the other: the wrapping key is a
    // token under the domain key, not an object of one HSM.
    drain(&mut c, "hsm-1", false).await;
    let p2 = params(&mut c, &id, "").await.unwrap();
    drain(&mut c, "hsm-1", true).await;
    drain(&mut c, "hsm-0", false).await;
    let mut different = material;
    different[0] ^= 0xff;
    let wrapped_other = wrap_with_openssl(files.path(), &p2, &different);
    let before = describe(&mut c, &id).await;
    let e = import(&mut c, &id, &wrapped_other, &p2.import_token, 0)
        .await
        .unwrap_err();
    assert_eq!(code(e), "MaterialNotMatch");
    assert_eq!(describe(&mut c, &id).await, before);
    let wrapped_again = wrap_with_openssl(files.path(), &p2, &material);
    let meta = import(&mut c, &id, &wrapped_again, &p2.import_token, expire)
        .await
        .unwrap();
    drain(&mut c, "hsm-0", true).await;
    assert_eq!(meta.key_state, "Enabled");
    on_each_member(&mut c, &outside, b"made outside").await;
    on_each_member(&mut c, &inside.ciphertext_blob, b"made inside").await;

    // Expiry: refused as soon as the time passes, deleted by the clock job.
    clock.advance(2 * DAY + 60);
    assert_eq!(
        code(decrypt(&mut c, &outside).await.unwrap_err()),
        "KeyPendingImport"
    );
    let ran = c
        .admin
        .run_due_jobs(RunDueJobsRequest {})
        .await
        .unwrap()
        .into_inner()
        .outcomes;
    assert!(
        ran.iter()
            .any(|o| o.job.as_ref().unwrap().kind == "ExpireMaterial" && o.error.is_empty()),
        "{ran:?}"
    );
    let meta = describe(&mut c, &id).await;
    assert_eq!(meta.key_state, "PendingImport");
    assert!(meta.material_expire_time.is_empty());

    // Import parameters last 24 hours.
    let p3 = params(&mut c, &id, "RSAES_OAEP_SHA_1").await.unwrap();
    let wrapped3 = wrap_with_openssl(files.path(), &p3, &material);
    clock.advance(DAY + 1);
    let e = import(&mut c, &id, &wrapped3, &p3.import_token, 0)
        .await
        .unwrap_err();
    assert_eq!(code(e), "ImportTokenExpired");
    assert_eq!(describe(&mut c, &id).await.key_state, "PendingImport");

    // Material deleted while the deletion is pending: cancelling brings the key back
    // without material (PendingImport), never Disabled with nothing to decrypt with.
    let p4 = params(&mut c, &id, "RSAES_OAEP_SHA_1").await.unwrap();
    let wrapped4 = wrap_with_openssl(files.path(), &p4, &material);
    import(&mut c, &id, &wrapped4, &p4.import_token, 0)
        .await
        .unwrap();
    c.keys
        .disable_key(DisableKeyRequest { key_id: id.clone() })
        .await
        .unwrap();
    c.keys
        .schedule_key_deletion(ScheduleKeyDeletionRequest {
            key_id: id.clone(),
            pending_window_in_days: 7,
        })
        .await
        .unwrap();
    let meta = c
        .keys
        .delete_key_material(DeleteKeyMaterialRequest { key_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, "PendingDeletion");
    let meta = c
        .keys
        .cancel_key_deletion(CancelKeyDeletionRequest { key_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state, "PendingImport");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_aes_key_wrap_imports_an_aes_128_key() {
    let clock = TestClock::default();
    let d = daemon(&clock);
    let mut c = d.client().await;
    let files = tempfile::tempdir().unwrap();
    let key = create_external(&mut c, "Aliyun_AES_128").await;
    let id = key.key_id.clone();
    let p = params(&mut c, &id, "RSA_AES_KEY_WRAP_SHA_1").await.unwrap();
    assert_eq!(p.wrapping_algorithm, "RSA_AES_KEY_WRAP_SHA_1");
    let mut material = [0u8; 16];
    openssl::rand::rand_bytes(&mut material).unwrap();

    // A plain OAEP wrapping does not pass for RSA-AES, nor a damaged AES half.
    let oaep_only = wrap_with_openssl(files.path(), &p, &material);
    assert_eq!(
        code(
            import(&mut c, &id, &oaep_only, &p.import_token, 0)
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    let mut wrapped = rsa_aes_wrap_with_openssl(files.path(), &p, &material);
    let last = wrapped.len() - 1;
    wrapped[last] ^= 1;
    assert_eq!(
        code(
            import(&mut c, &id, &wrapped, &p.import_token, 0)
                .await
                .unwrap_err()
        ),
        "InvalidParameter"
    );
    assert_eq!(describe(&mut c, &id).await.key_state, "PendingImport");

    let wrapped = rsa_aes_wrap_with_openssl(files.path(), &p, &material);
    let meta = import(&mut c, &id, &wrapped, &p.import_token, 0)
        .await
        .unwrap();
    assert_eq!(meta.key_state, "Enabled");
    let enc = c
        .crypto
        .encrypt(EncryptRequest {
            key_id: id.clone(),
            plaintext: b"wrapped twice".to_vec(),
            aad: b"tenant=7".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let blob = enc.ciphertext_blob;
    let (header, rest) = blob.split_at(48);
    let (body, tag) = rest.split_at(rest.len() - 16);
    let mut aad = header.to_vec();
    aad.extend(b"tenant=7");
    let opened = decrypt_aead(
        Cipher::aes_128_gcm(),
        &material,
        Some(&header[36..48]),
        &aad,
        body,
        tag,
    )
    .unwrap();
    assert_eq!(opened, b"wrapped twice");
}
