//! Measurements of the Sign benchmark: raw SoftHSM2 signing through cryptoki, with the
//! mechanisms hkmsd uses, and Sign through hkmsd's gRPC API.

use crate::common;
use crate::measure::{secs, softhsm_login, Figures, Window};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType};
use hkms::proto::{CreateKeyRequest, SignRequest};
use std::time::Instant;

/// The signed digest: any 32 bytes stand for a SHA-256 hash.
pub const DIGEST: [u8; 32] = [7u8; 32];

/// DER prefix of a SHA-256 DigestInfo (RFC 8017, section 9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// DER OID of prime256v1 (CKA_EC_PARAMS).
const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A key spec with the signing algorithm measured on it.
#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Rsa2048,
    EcP256,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::Rsa2048, Alg::EcP256];

    pub fn key_spec(self) -> &'static str {
        match self {
            Alg::Rsa2048 => "RSA_2048",
            Alg::EcP256 => "EC_P256",
        }
    }

    /// The algorithm's name in Sign requests.
    pub fn algorithm(self) -> &'static str {
        match self {
            Alg::Rsa2048 => "RSA_PKCS1_SHA_256",
            Alg::EcP256 => "ECDSA_SHA_256",
        }
    }

    /// What the raw measurement does.
    pub fn raw_mechanism(self) -> &'static str {
        match self {
            Alg::Rsa2048 => "CKM_RSA_PKCS over a SHA-256 DigestInfo",
            Alg::EcP256 => "CKM_ECDSA over a SHA-256 digest",
        }
    }

    fn mechanism(self) -> Mechanism<'static> {
        match self {
            Alg::Rsa2048 => Mechanism::RsaPkcs,
            Alg::EcP256 => Mechanism::Ecdsa,
        }
    }

    /// The bytes the HSM signs for [`DIGEST`].
    fn hsm_input(self) -> Vec<u8> {
        match self {
            Alg::Rsa2048 => [&SHA256_DIGEST_INFO[..], &DIGEST].concat(),
            Alg::EcP256 => DIGEST.to_vec(),
        }
    }
}

/// Signatures per second straight through cryptoki, one session per thread, with a session
/// key pair generated on the token `label`.
pub fn raw_sign(conf: &std::path::Path, label: &str, alg: Alg, threads: usize) -> f64 {
    let (ctx, slot, login) = softhsm_login(conf, label);
    let (generation, key_type, mut public) = match alg {
        Alg::Rsa2048 => (
            Mechanism::RsaPkcsKeyPairGen,
            KeyType::RSA,
            vec![
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ],
        ),
        Alg::EcP256 => (
            Mechanism::EccKeyPairGen,
            KeyType::EC,
            vec![Attribute::EcParams(P256.to_vec())],
        ),
    };
    public.extend([
        Attribute::Token(false),
        Attribute::KeyType(key_type),
        Attribute::Verify(true),
    ]);
    let private = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::KeyType(key_type),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ];
    let (_, key) = login
        .generate_key_pair(&generation, &public, &private)
        .unwrap();
    let run = secs();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let s = ctx.open_rw_session(slot).unwrap();
                let (mechanism, input) = (alg.mechanism(), alg.hsm_input());
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < run {
                    s.sign(&mechanism, key, &input).unwrap();
                    n += 1;
                }
                n as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    let ops = handles.into_iter().map(|h| h.join().unwrap()).sum();
    drop(login);
    ops
}

/// Creates a SIGN/VERIFY key of `alg`'s spec over gRPC and returns its id.
pub async fn create_key(d: &common::Daemon, alg: Alg) -> String {
    let mut c = d.client().await;
    c.keys
        .create_key(CreateKeyRequest {
            key_spec: alg.key_spec().into(),
            key_usage: "SIGN/VERIFY".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key_metadata
        .unwrap()
        .key_id
}

/// Sign of [`DIGEST`] (MessageType DIGEST) through hkmsd's gRPC API.
/// Figures of a [`Window`] and hkmsd's CPU per request (`pids`: hkmsd's, or none).
pub async fn grpc_sign(
    d: &common::Daemon,
    key: &str,
    alg: Alg,
    concurrency: usize,
    pids: &[u32],
) -> (Figures, Vec<f64>) {
    let client = d.client().await;
    let window = Window::open(pids);
    let span = window.span;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut c = client.asymmetric.clone();
            let request = SignRequest {
                key_id: key.to_owned(),
                algorithm: alg.algorithm().into(),
                message: DIGEST.to_vec(),
                message_type: "DIGEST".into(),
                ..Default::default()
            };
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while span.running() {
                    let t = Instant::now();
                    c.sign(request.clone()).await.unwrap();
                    let done = Instant::now();
                    if span.counts(done) {
                        lat.push(done - t);
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    window.close(all)
}
