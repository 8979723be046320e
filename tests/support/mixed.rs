//! A mixed cluster for tests: one hkmsd over a SoftHSM2 member and a Kryoptic member
//! (tests/support/kryoptic.rs), with helpers that run a call on one member alone.
#![allow(dead_code)]

use crate::common::{self, Daemon, MemberSpec};
use crate::kryoptic::{self, KryopticTokens};
use hkms::client::Client;
use hkms::proto::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const SOFT: &str = "hsm-softhsm";
pub const KRY: &str = "hsm-kryoptic";
pub const KRY_LABEL: &str = "kry0";

pub struct Mixed {
    pub d: Daemon,
    faults: tempfile::TempDir,
    _tokens: KryopticTokens,
}

impl Mixed {
    /// SoftHSM2 first (it gives the domain key: Kryoptic cannot mark a key trusted), then
    /// Kryoptic; initialised.
    pub fn start() -> Mixed {
        let tokens = KryopticTokens::create(&[KRY_LABEL]);
        let fault_module = hkms_fault_pkcs11::control::locate_module()
            .expect("the fault module is built as a dev-dependency");
        let faults = tempfile::tempdir().unwrap();
        let members = [
            MemberSpec::softhsm(SOFT, "soft0"),
            MemberSpec {
                module: fault_module.display().to_string(),
                profile: Some("kryoptic".into()),
                ..MemberSpec::softhsm(KRY, KRY_LABEL)
            },
        ];
        let kry = kryoptic::module().display().to_string();
        let conf = tokens.conf.display().to_string();
        let fault_dir = faults.path().display().to_string();
        let d = Daemon::start_config(
            &members,
            &[
                ("KRYOPTIC_CONF", conf.as_str()),
                ("HKMS_FAULT_DIR", fault_dir.as_str()),
                ("HKMS_FAULT_REAL_MODULE", kry.as_str()),
            ],
            "hsm_call_timeout_ms = 2000\nprobe_interval_ms = 200\n",
            &tokens.hardening(),
        );
        let out = d.init_ok();
        assert_eq!(out["Members"], serde_json::json!([SOFT, KRY]), "{out}");
        Mixed {
            d,
            faults,
            _tokens: tokens,
        }
    }

    pub fn fault(&self, text: &str) {
        hkms_fault_pkcs11::control::write_fault_text(self.faults.path(), KRY_LABEL, text).unwrap();
    }

    pub fn clear(&self) {
        hkms_fault_pkcs11::control::clear_fault(self.faults.path(), KRY_LABEL).unwrap();
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        let _ = hkms_fault_pkcs11::control::clear_fault(self.faults.path(), KRY_LABEL);
    }
}

pub async fn members(c: &mut Client) -> HashMap<String, MemberStatus> {
    c.admin
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect()
}

pub async fn ops(c: &mut Client) -> HashMap<String, u64> {
    members(c)
        .await
        .into_iter()
        .map(|(k, v)| (k, v.operations))
        .collect()
}

pub async fn wait_for_state(c: &mut Client, name: &str, state: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = members(c).await;
        if s[name].state == state {
            return;
        }
        assert!(Instant::now() < until, "{name} not {state}: {:?}", s[name]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn encrypt(c: &mut Client, key: &str, pt: &[u8]) -> Vec<u8> {
    c.crypto
        .encrypt(EncryptRequest {
            key_id: key.into(),
            plaintext: pt.to_vec(),
            aad: b"mixed".to_vec(),
        })
        .await
        .unwrap_or_else(|e| panic!("encrypt: {e}"))
        .into_inner()
        .ciphertext_blob
}

pub async fn decrypt(c: &mut Client, blob: &[u8]) -> Vec<u8> {
    c.crypto
        .decrypt(DecryptRequest {
            ciphertext_blob: blob.to_vec(),
            aad: b"mixed".to_vec(),
        })
        .await
        .unwrap_or_else(|e| panic!("decrypt: {e}"))
        .into_inner()
        .plaintext
}

/// Runs `f` with only `member` taking requests (the other drained), and checks that
/// `member` did the work.
pub async fn on_member<T>(
    c: &mut Client,
    member: &str,
    f: impl AsyncFnOnce(&mut Client) -> T,
) -> T {
    let other = if member == SOFT { KRY } else { SOFT };
    common::drain(c, other, false).await;
    let before = ops(c).await;
    let out = f(c).await;
    let after = ops(c).await;
    common::drain(c, other, true).await;
    assert!(
        after[member] > before[member],
        "{member} served: {before:?} -> {after:?}"
    );
    assert_eq!(after[other], before[other], "{other} was drained");
    out
}
