//! Export files for tests of `hkms audit`: made with the library's line formats and a fresh
//! EC P-256 key, as hkmsd would.

#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hkms::audit::record::{
    checkpoint_line, checkpoint_message, header_line, seal_line, seal_message, Checkpoint, Header,
    Record, Seal, EXPORT_FORMAT, FORMAT_VERSION, GENESIS,
};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Signer(PKey<Private>);

impl Signer {
    pub fn new() -> Signer {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        Signer(PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap())
    }

    pub fn pem(&self) -> String {
        String::from_utf8(self.0.public_key_to_pem().unwrap()).unwrap()
    }

    fn sign(&self, message: &[u8]) -> String {
        let mut s = openssl::sign::Signer::new(MessageDigest::sha256(), &self.0).unwrap();
        B64.encode(s.sign_oneshot_to_vec(message).unwrap())
    }
}

/// A clean export of `n` records with a checkpoint after every third one, as lines.
pub fn export(signer: &Signer, n: u64) -> Vec<String> {
    let mut lines = vec![header_line(&Header {
        format: EXPORT_FORMAT.into(),
        version: FORMAT_VERSION,
        instance_id: "kms-cli-test".into(),
        exported_at: "2026-12-06T05:00:00Z".into(),
        since: String::new(),
        until: String::new(),
        public_keys: BTreeMap::from([("audit-v1".to_owned(), signer.pem())]),
    })];
    let mut prev = GENESIS.to_owned();
    for seq in 1..=n {
        let mut r = Record {
            seq,
            time: format!("2026-12-06T04:00:{:02}.000001Z", seq % 60),
            request_id: format!("r-{seq}"),
            front: "grpc".into(),
            principal: "operator".into(),
            uid: Some(0),
            operation: "/hkms.v1.KeyService/CreateKey".into(),
            result: "OK".into(),
            latency_us: 100,
            prev: prev.clone(),
            ..Default::default()
        };
        lines.push(r.to_line());
        if seq % 3 == 0 {
            let time = "2026-12-06T04:01:00Z".to_owned();
            lines.push(checkpoint_line(&Checkpoint {
                seq,
                signature: signer.sign(&checkpoint_message(seq, &r.hash, &time)),
                head: r.hash.clone(),
                time,
                key_version_id: "audit-v1".into(),
            }));
        }
        prev = r.hash;
    }
    let mut seal = Seal {
        first_seq: 1,
        last_seq: n,
        first_prev: GENESIS.into(),
        head: prev,
        records: n,
        since: String::new(),
        until: String::new(),
        time: "2026-12-06T05:00:01Z".into(),
        key_version_id: "audit-v1".into(),
        signature: String::new(),
    };
    seal.signature = signer.sign(&seal_message(&seal));
    lines.push(seal_line(&seal));
    lines
}

pub fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    path
}
