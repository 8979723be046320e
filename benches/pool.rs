//! The HSM pool with a per-call latency injected on every PKCS#11 call (standing for a
//! network HSM): Encrypt throughput with 1, 2 and 3 members at a fixed concurrency, and the
//! time from a member's failure to the last request it delayed. Prints figures only.
//!
//! `cargo bench --bench pool` (HKMS_BENCH_SECS: length of each run, default 3;
//! HKMS_BENCH_LATENCY_MS: injected latency, default 2).

#[path = "../tests/common/mod.rs"]
mod common;

use hkms::client::Client;
use hkms::proto::*;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 24;

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// (start offset, latency) of every request in a run.
async fn run(c: &Client, key: &str, secs: f64) -> (f64, Vec<(Duration, Duration)>) {
    let start = Instant::now();
    let run = Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let mut c = c.crypto.clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while start.elapsed() < run {
                    let t = Instant::now();
                    let r = c
                        .encrypt(EncryptRequest {
                            key_id: key.clone(),
                            plaintext: vec![7u8; 256],
                            aad: vec![],
                        })
                        .await;
                    assert!(r.is_ok(), "{r:?}");
                    seen.push((t - start, t.elapsed()));
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (start.elapsed().as_secs_f64(), all)
}

async fn set_drained(c: &mut Client, name: &str, drained: bool) {
    c.admin
        .drain_member(DrainMemberRequest {
            name: name.into(),
            resume: !drained,
        })
        .await
        .unwrap();
}

fn main() {
    let secs = env_or("HKMS_BENCH_SECS", 3.0);
    let latency = env_or("HKMS_BENCH_LATENCY_MS", 2.0) as u64;
    let module = hkms_fault_pkcs11::control::locate_module().expect("fault module built");
    let faults = tempfile::tempdir().unwrap();
    let fault = |label: &str, text: &str| {
        hkms_fault_pkcs11::control::write_fault_text(faults.path(), label, text).unwrap()
    };
    let members: Vec<common::MemberSpec> = (0..3)
        .map(|i| common::MemberSpec {
            module: module.display().to_string(),
            ..common::MemberSpec::softhsm(&format!("hsm-{i}"), &format!("m{i}"))
        })
        .collect();
    let dir = faults.path().display().to_string();
    let d = common::Daemon::start_custom(
        &members,
        &[
            ("HKMS_FAULT_DIR", dir.as_str()),
            ("HKMS_FAULT_REAL_MODULE", common::SOFTHSM_MODULE),
        ],
        "hsm_call_timeout_ms = 2000\nprobe_interval_ms = 500\n",
    );
    d.init_ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = d.client().await;
        let key = common::create_key(&mut c).await;
        run(&c, &key, 0.5).await; // unwrap the key on every member
        for i in 0..3 {
            fault(&format!("m{i}"), &format!("latency_ms = {latency}\n"));
        }
        println!(
            "Encrypt of 256 B, {latency} ms injected on every PKCS#11 call (3 calls per Encrypt), \
             concurrency {CONCURRENCY}, 4 sessions per member, {secs} s per run"
        );
        let mut base = 0.0;
        for n in 1..=3usize {
            for i in 0..3 {
                set_drained(&mut c, &format!("hsm-{i}"), i >= n).await;
            }
            let (elapsed, lat) = run(&c, &key, secs).await;
            let ops = lat.len() as f64 / elapsed;
            let mut l: Vec<Duration> = lat.iter().map(|x| x.1).collect();
            l.sort();
            if n == 1 {
                base = ops;
            }
            println!(
                "{n} member(s): {ops:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  scaling vs 1 member {:.2}x",
                l[l.len() / 2].as_secs_f64() * 1e3,
                l[l.len() * 99 / 100].as_secs_f64() * 1e3,
                ops / base
            );
        }

        // Failure while loaded: when does the last request it delayed finish?
        for (what, text) in [
            ("device error", "mode = error\nrv = CKR_DEVICE_ERROR\n"),
            ("hang", "mode = hang\n"),
        ] {
            let load = {
                let c = c.clone();
                let key = key.clone();
                tokio::spawn(async move { run(&c, &key, secs).await })
            };
            tokio::time::sleep(Duration::from_secs_f64(secs / 3.0)).await;
            fault("m1", text);
            let (_, lat) = load.await.unwrap();
            // The run started `secs` before its end; map fault time onto its clock.
            let fail_at = Duration::from_secs_f64(secs / 3.0);
            let mut normal: Vec<Duration> = lat
                .iter()
                .filter(|(s, _)| *s + Duration::from_millis(100) < fail_at)
                .map(|x| x.1)
                .collect();
            normal.sort();
            // "Delayed": slower than 5x the p99 before the failure (losing a third of the
            // capacity alone makes every request somewhat slower).
            let p99 = normal[normal.len() * 99 / 100];
            let delayed: Vec<Duration> = lat
                .iter()
                .filter(|(s, l)| *s + *l >= fail_at && *l > p99 * 5)
                .map(|(s, l)| (*s + *l).saturating_sub(fail_at))
                .collect();
            let last_delayed = delayed.iter().max().copied().unwrap_or_default();
            let at_deadline = lat
                .iter()
                .filter(|(s, l)| *s + *l >= fail_at && *l >= Duration::from_millis(1900))
                .count();
            println!(
                "member failure ({what:<12}): {:>3} requests delayed beyond 5x p99 ({:.1} ms), \
                 {at_deadline} of them by the 2 s call deadline; last of them done {:.0} ms \
                 after the failure; 0 failed",
                delayed.len(),
                p99.as_secs_f64() * 1e3,
                last_delayed.as_secs_f64() * 1e3
            );
            fault("m1", &format!("latency_ms = {latency}\n"));
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                let s = c.admin.get_status(GetStatusRequest {}).await.unwrap().into_inner();
                if s.members.iter().all(|m| m.state == "Up") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for i in 0..3 {
            hkms_fault_pkcs11::control::clear_fault(faults.path(), &format!("m{i}")).unwrap();
        }
    });
}
