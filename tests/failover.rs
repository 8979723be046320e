//! The HSM pool under injected faults and load: three members behind the fault-injecting
//! PKCS#11 module (tests/fault-pkcs11), each over its own SoftHSM2 token, while several
//! clients keep sending Encrypt, Decrypt and GenerateDataKey.

mod common;

use common::{code, Daemon, MemberSpec};
use hkms::client::Client;
use hkms::proto::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Deadline of one HSM call in these tests.
const CALL_TIMEOUT_MS: u64 = 800;

struct Cluster {
    d: Daemon,
    faults: tempfile::TempDir,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let module = hkms_fault_pkcs11::control::locate_module()
            .expect("the fault module is built as a dev-dependency");
        let faults = tempfile::tempdir().unwrap();
        let members: Vec<MemberSpec> = (0..n)
            .map(|i| MemberSpec {
                module: module.display().to_string(),
                ..MemberSpec::softhsm(&format!("hsm-{i}"), &format!("m{i}"))
            })
            .collect();
        let dir = faults.path().display().to_string();
        let d = Daemon::start_custom(
            &members,
            &[
                ("HKMS_FAULT_DIR", dir.as_str()),
                ("HKMS_FAULT_REAL_MODULE", common::SOFTHSM_MODULE),
            ],
            &format!("hsm_call_timeout_ms = {CALL_TIMEOUT_MS}\nprobe_interval_ms = 200\n"),
        );
        d.init_ok();
        Cluster { d, faults }
    }

    /// Sets the fault of the member whose token is `label` (control file format of the
    /// fault module).
    fn fault(&self, label: &str, text: &str) {
        hkms_fault_pkcs11::control::write_fault_text(self.faults.path(), label, text).unwrap();
    }

    fn clear(&self, label: &str) {
        hkms_fault_pkcs11::control::clear_fault(self.faults.path(), label).unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Release hung calls so the daemon can stop.
        for i in 0..4 {
            let _ = hkms_fault_pkcs11::control::clear_fault(self.faults.path(), &format!("m{i}"));
        }
    }
}

async fn member_status(c: &mut Client) -> HashMap<String, MemberStatus> {
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

async fn ops(c: &mut Client) -> HashMap<String, u64> {
    member_status(c)
        .await
        .into_iter()
        .map(|(k, v)| (k, v.operations))
        .collect()
}

async fn wait_for_state(c: &mut Client, name: &str, state: &str, within: Duration) {
    let until = Instant::now() + within;
    loop {
        let s = member_status(c).await;
        if s[name].state == state {
            return;
        }
        assert!(Instant::now() < until, "{name} not {state}: {:?}", s[name]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `name` to be up again, then checks that it serves a share of a short load.
async fn rejoins_and_takes_traffic(c: &mut Client, f: &Fixture, name: &str) {
    wait_for_state(c, name, "Up", Duration::from_secs(5)).await;
    let before = ops(c).await;
    let report = load(c, f, 6, Duration::from_millis(800)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let after = ops(c).await;
    assert!(
        after[name] > before[name] + 10,
        "{name} takes traffic again: {after:?}"
    );
}

/// Load for `run` in the background.
fn background_load(c: &Client, f: &Fixture, run: Duration) -> tokio::task::JoinHandle<LoadReport> {
    let client = c.clone();
    let f = Fixture {
        key: f.key.clone(),
        blobs: f.blobs.clone(),
    };
    tokio::spawn(async move { load(&client, &f, 6, run).await })
}

struct Fixture {
    key: String,
    blobs: Vec<(Vec<u8>, Vec<u8>)>,
}

async fn fixture(c: &mut Client) -> Fixture {
    let key = common::create_key(c).await;
    let mut blobs = Vec::new();
    for i in 0..6u8 {
        let pt = vec![i; 64];
        let blob = c
            .crypto
            .encrypt(EncryptRequest {
                key_id: key.clone(),
                plaintext: pt.clone(),
                aad: vec![],
            })
            .await
            .unwrap()
            .into_inner()
            .ciphertext_blob;
        blobs.push((pt, blob));
    }
    Fixture { key, blobs }
}

#[derive(Debug, Default)]
struct LoadReport {
    ok: u64,
    errors: Vec<String>,
    max_latency: Duration,
}

/// `workers` clients, each looping over Encrypt, Decrypt and GenerateDataKey for `run`.
async fn load(c: &Client, f: &Fixture, workers: usize, run: Duration) -> LoadReport {
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let mut c = c.clone();
            let key = f.key.clone();
            let blobs = f.blobs.clone();
            tokio::spawn(async move {
                let mut r = LoadReport::default();
                let mut i = w;
                while start.elapsed() < run {
                    let t = Instant::now();
                    let result = match i % 3 {
                        0 => c
                            .crypto
                            .encrypt(EncryptRequest {
                                key_id: key.clone(),
                                plaintext: vec![1; 256],
                                aad: vec![],
                            })
                            .await
                            .map(|_| ()),
                        1 => {
                            let (pt, blob) = &blobs[i % blobs.len()];
                            c.crypto
                                .decrypt(DecryptRequest {
                                    ciphertext_blob: blob.clone(),
                                    aad: vec![],
                                })
                                .await
                                .map(|r| assert_eq!(&r.into_inner().plaintext, pt))
                        }
                        _ => c
                            .crypto
                            .generate_data_key(GenerateDataKeyRequest {
                                key_id: key.clone(),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ()),
                    };
                    r.max_latency = r.max_latency.max(t.elapsed());
                    match result {
                        Ok(()) => r.ok += 1,
                        Err(s) => r.errors.push(code(s)),
                    }
                    i += 1;
                }
                r
            })
        })
        .collect();
    let mut total = LoadReport::default();
    for t in tasks {
        let r = t.await.unwrap();
        total.ok += r.ok;
        total.errors.extend(r.errors);
        total.max_latency = total.max_latency.max(r.max_latency);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_error_mid_load_is_invisible_and_the_member_rejoins() {
    let cl = Cluster::start(3);
    let mut c = cl.d.client().await;
    let f = fixture(&mut c).await;

    let running = background_load(&c, &f, Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(800)).await;
    cl.fault("m1", "mode = error\nrv = CKR_DEVICE_ERROR\n");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_fault = ops(&mut c).await;
    let report = running.await.unwrap();
    let end = ops(&mut c).await;

    assert!(
        report.errors.is_empty(),
        "client-visible errors: {:?}",
        report.errors
    );
    assert!(report.ok > 100, "{report:?}");
    let status = member_status(&mut c).await;
    assert_eq!(status["hsm-1"].state, "Down", "{:?}", status["hsm-1"]);
    // Members on the fault module call on blocking threads, under the deadline.
    assert!(status.values().all(|m| m.calls == "Threads"), "{status:?}");
    assert!(
        status["hsm-1"].last_error.contains("DeviceError"),
        "{:?}",
        status["hsm-1"]
    );
    assert_eq!(
        end["hsm-1"], after_fault["hsm-1"],
        "a down member takes no traffic"
    );
    for other in ["hsm-0", "hsm-2"] {
        assert!(
            end[other] > after_fault[other] + 20,
            "{other} took over: {end:?}"
        );
    }

    // Back without a restart: the prober reconnects it after a test operation succeeds.
    cl.clear("m1");
    rejoins_and_takes_traffic(&mut c, &f, "hsm-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_member_does_not_hang_requests() {
    let cl = Cluster::start(3);
    let mut c = cl.d.client().await;
    let f = fixture(&mut c).await;

    let running = background_load(&c, &f, Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(800)).await;
    cl.fault("m2", "mode = hang\n");
    let report = running.await.unwrap();

    assert!(
        report.errors.is_empty(),
        "client-visible errors: {:?}",
        report.errors
    );
    // A request caught in the hung member waits one call deadline, then fails over.
    let bound = Duration::from_millis(CALL_TIMEOUT_MS + 700);
    assert!(
        report.max_latency < bound,
        "max latency {:?} >= {bound:?}",
        report.max_latency
    );
    let status = member_status(&mut c).await;
    assert_eq!(status["hsm-2"].state, "Down");
    assert!(
        status["hsm-2"].last_error.contains("did not answer"),
        "{:?}",
        status["hsm-2"]
    );
    // Threads stuck in the hung member never exceed its session limit.
    assert!(status["hsm-2"].sessions_in_use <= status["hsm-2"].max_sessions);

    cl.clear("m2");
    rejoins_and_takes_traffic(&mut c, &f, "hsm-2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_sessions_logins_and_device_resets_are_repaired_transparently() {
    let cl = Cluster::start(3);
    let mut c = cl.d.client().await;
    let f = fixture(&mut c).await;

    for fault in [
        "mode = error\nrv = CKR_SESSION_HANDLE_INVALID\nfunctions = C_EncryptInit, C_DecryptInit\ncount = 4\n",
        "mode = error\nrv = CKR_USER_NOT_LOGGED_IN\nfunctions = C_EncryptInit, C_DecryptInit\ncount = 4\n",
    ] {
        let errors_before = member_status(&mut c).await["hsm-0"].errors;
        cl.fault("m0", fault);
        let report = load(&c, &f, 6, Duration::from_millis(1200)).await;
        assert!(report.errors.is_empty(), "{fault}: {:?}", report.errors);
        let s = member_status(&mut c).await;
        assert!(s["hsm-0"].errors >= errors_before + 4, "{fault}: faults were hit: {:?}", s["hsm-0"]);
        assert_eq!(s["hsm-0"].state, "Up", "{fault}: repaired in place: {:?}", s["hsm-0"]);
        cl.clear("m0");
    }

    // A device reset: sessions, login and unwrapped keys are gone when it comes back.
    cl.fault("m0", "mode = dead\n");
    let report = load(&c, &f, 6, Duration::from_millis(800)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(member_status(&mut c).await["hsm-0"].state, "Down");
    cl.fault("m0", "mode = off\n");
    rejoins_and_takes_traffic(&mut c, &f, "hsm-0").await;
    let after = member_status(&mut c).await;
    // Key versions were unwrapped again after the reset, not used through stale handles.
    assert!(after["hsm-0"].cached_keys >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_member_down_requests_fail_fast_then_recover() {
    let cl = Cluster::start(3);
    let mut c = cl.d.client().await;
    let f = fixture(&mut c).await;
    for label in ["m0", "m1", "m2"] {
        cl.fault(label, "mode = dead\n");
    }
    for _ in 0..5 {
        let t = Instant::now();
        let err = c
            .crypto
            .encrypt(EncryptRequest {
                key_id: f.key.clone(),
                plaintext: b"x".to_vec(),
                aad: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(code(err), "HsmUnavailable");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "took {:?}",
            t.elapsed()
        );
    }
    cl.fault("m1", "mode = off\n");
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c
            .crypto
            .decrypt(DecryptRequest {
                ciphertext_blob: f.blobs[0].1.clone(),
                aad: vec![],
            })
            .await;
        match r {
            Ok(r) => {
                assert_eq!(r.into_inner().plaintext, f.blobs[0].0);
                break;
            }
            Err(s) => {
                assert_eq!(code(s), "HsmUnavailable");
                assert!(Instant::now() < until, "no member came back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_members_share_the_load_evenly() {
    let cl = Cluster::start(3);
    let mut c = cl.d.client().await;
    let f = fixture(&mut c).await;
    let before = ops(&mut c).await;
    let report = load(&c, &f, 6, Duration::from_secs(2)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let after = ops(&mut c).await;
    let served: Vec<u64> = ["hsm-0", "hsm-1", "hsm-2"]
        .iter()
        .map(|m| after[*m] - before[*m])
        .collect();
    let (min, max) = (*served.iter().min().unwrap(), *served.iter().max().unwrap());
    assert!(min > 100, "{served:?}");
    assert!(
        (max - min) as f64 <= 0.10 * max as f64,
        "per-member operations differ by more than 10%: {served:?}"
    );
}

#[test]
fn a_member_enrolled_while_running_serves_old_ciphertexts_and_membership_persists() {
    // Three tokens exist; the configuration names two. (SoftHSM2 reads its token directory
    // when the library is initialised, so the third token must exist before hkmsd starts.)
    let members: Vec<MemberSpec> = (0..3)
        .map(|i| MemberSpec::softhsm(&format!("hsm-{i}"), &format!("m{i}")))
        .collect();
    let mut d = Daemon::start_with(&members, &[]);
    d.stop(false);
    d.write_config(&members[..2]);
    d.spawn().unwrap();
    d.init_ok();
    let pin: PathBuf = d.path("pin-new");
    std::fs::write(&pin, common::USER_PIN).unwrap();
    let so = d.so_pin_file();
    let key = d.cli_json(&["key", "create"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let blobs: Vec<String> = (0..4)
        .map(|i| {
            d.cli_json(&[
                "encrypt",
                "--key-id",
                &key,
                "--plaintext",
                &format!("old {i}"),
            ])["CiphertextBlob"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    let add = |name: &str, label: &str, so: &str| {
        let mut args = vec![
            "hsm",
            "add",
            "--name",
            name,
            "--module",
            common::SOFTHSM_MODULE,
        ];
        args.extend(["--token-label", label, "--pin-file", pin.to_str().unwrap()]);
        args.extend(["--so-pin-file", so]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let bad_so = d.path("bad-so");
    std::fs::write(&bad_so, "99999999").unwrap();
    let args = add("hsm-2", "m2", bad_so.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(d.cli_error(&args), "HsmError");
    let args = add("hsm-0", "m2", so.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(d.cli_error(&args), "InvalidParameter", "duplicate name");
    let args = add("hsm-2", "m2", so.to_str().unwrap());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let added = d.cli_json(&args);
    assert_eq!(added["Member"]["State"], "Up");

    // Only the new member serves: it decrypts what was encrypted before it joined.
    assert_eq!(
        d.cli_error(&["hsm", "remove", "hsm-0"]),
        "InvalidState",
        "drain first"
    );
    d.cli_json(&["hsm", "drain", "hsm-0"]);
    d.cli_json(&["hsm", "drain", "hsm-1"]);
    assert_eq!(
        d.cli_error(&["hsm", "drain", "hsm-2"]),
        "InvalidState",
        "last one"
    );
    let before = d.cli_json(&["hsm", "status"]);
    for (i, blob) in blobs.iter().enumerate() {
        let out = d.cli(&["decrypt", "--ciphertext-blob", blob]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("old {i}"));
    }
    let after = d.cli_json(&["hsm", "status"]);
    let ops = |v: &serde_json::Value, i: usize| v["Members"][i]["Operations"].as_u64().unwrap();
    assert_eq!(after["Members"][2]["Name"], "hsm-2");
    assert!(ops(&after, 2) >= ops(&before, 2) + 4);
    assert_eq!(ops(&after, 0), ops(&before, 0));
    assert_eq!(ops(&after, 1), ops(&before, 1));
    assert_eq!(after["Members"][0]["State"], "Draining");
    // SoftHSM2 members, configured or enrolled, run their calls on the worker (profile).
    assert_eq!(after["Members"][0]["Calls"], "Inline");
    assert_eq!(after["Members"][2]["Calls"], "Inline");

    d.cli_json(&["hsm", "remove", "hsm-0"]);
    d.cli_json(&["hsm", "resume", "hsm-1"]);
    d.restart();
    let status = d.cli_json(&["hsm", "status"]);
    let names: Vec<&str> = status["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hsm-1", "hsm-2"]);
    assert_eq!(
        status["Members"][1]["Calls"], "Inline",
        "recorded members read their profile"
    );
    assert!(status["Members"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["State"] == "Up"));
    for (i, blob) in blobs.iter().enumerate() {
        let out = d.cli(&["decrypt", "--ciphertext-blob", blob]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("old {i}"));
    }
}
