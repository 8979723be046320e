//! The audit trail's cost on the hot path: Encrypt of 256 bytes through the gateway (KMS
//! instance API) and over gRPC, with the trail on (every request's record durable before
//! its answer, group commit), with direct appends (the default) and with
//! `direct_appends = false` (buffered writes and `fdatasync`), in a tmpfs directory (the
//! trail's own work with flushes that cost nothing, as on a disk whose write cache has
//! power-loss protection), and off (`[audit] enabled = false`), same build, same store,
//! same HSM token, in one run. Settings run in one order
//! in the first round and in the reverse order in the second, so that none gains from
//! running later. Prints figures; asserts nothing.
//!
//! `cargo bench --bench audit` (HKMS_BENCH_SECS, HKMS_BENCH_CLIENT_THREADS as for
//! `--bench gateway`; HKMS_BENCH_LEVELS default `16`).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/gateway_load.rs"]
mod load;
#[path = "support/encrypt.rs"]
mod measure;
#[path = "../tests/support/gateway.rs"]
mod support;

use bytes::Bytes;
use hkms::front::instance::auth::{http_date, sign_request};
use hkms::instance_api as api;
use measure::{grpc_encrypt, ms, secs, Figures, MESSAGE};
use prost::Message;

fn line(name: &str, f: &Figures, cpu: f64) {
    println!(
        "  {name:<24}: {:>8.0} ops/s  p50 {}  p99 {}  server CPU {cpu:>4.0} us",
        f.ops,
        ms(f.p50),
        ms(f.p99)
    );
}

/// How the trail is set for a run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trail {
    Direct,
    Fdatasync,
    /// On, in a tmpfs directory: records are formatted, chained, written and "synced" as
    /// on a disk, but a sync costs nothing. What the trail costs on a disk whose flushes
    /// are free (a write cache with power-loss protection), as against the disk at hand.
    Tmpfs,
    Off,
}

impl Trail {
    fn label(self) -> &'static str {
        match self {
            Trail::Direct => "audit on",
            Trail::Fdatasync => "on, fdatasync",
            Trail::Tmpfs => "on, tmpfs",
            Trail::Off => "audit off",
        }
    }
}

/// The tmpfs directory of [`Trail::Tmpfs`].
static TMPFS_DIR: std::sync::LazyLock<tempfile::TempDir> =
    std::sync::LazyLock::new(|| tempfile::tempdir_in("/dev/shm").expect("/dev/shm is a tmpfs"));

/// Restarts hkmsd with the trail set so.
fn set_audit(inst: &mut support::Instance, base: &str, trail: Trail) {
    let text = match trail {
        Trail::Direct => base.to_owned(),
        Trail::Fdatasync => format!("{base}[audit]\ndirect_appends = false\n"),
        Trail::Tmpfs => format!(
            "{base}[audit]\ndir = \"{}\"\n",
            TMPFS_DIR.path().join("audit").display()
        ),
        Trail::Off => format!("{base}[audit]\nenabled = false\n"),
    };
    std::fs::write(&inst.d.config, text).unwrap();
    inst.d.stop(false);
    // How many syncs the trail needed for its records (hkmsd logs it when it stops).
    let log = inst.d.log_text();
    if let Some(closed) = log.lines().find(|l| l.contains("audit trail closed")) {
        let field = |name: &str| -> f64 {
            [format!("{name}="), format!("\"{name}\":")]
                .iter()
                .find_map(|p| closed.split(p.as_str()).nth(1))
                .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let (records, syncs) = (field("records"), field("syncs"));
        if syncs > 0.0 {
            println!(
                "  (trail: {records:.0} records in {syncs:.0} syncs, {:.1} records per sync; \
                 a group's write took {:.0} us and a record waited {:.0} us on average)",
                records / syncs,
                field("write_mean_us"),
                field("wait_mean_us"),
            );
        }
    }
    inst.d.spawn().expect("hkmsd restarts");
}

fn main() {
    let mut inst = support::Instance::new();
    let key = inst.create_key();
    let ck = inst.app("bench-audit", "key/*", None);
    let base = std::fs::read_to_string(&inst.d.config).unwrap();
    if std::env::var_os("HKMS_BENCH_LEVELS").is_none() {
        std::env::set_var("HKMS_BENCH_LEVELS", "16");
    }
    let settings = load::Settings::from_env();
    let rt = &settings.runtime;
    let body = api::EncryptRequest {
        key_id: key.clone(),
        plaintext: vec![7u8; MESSAGE],
        ..Default::default()
    }
    .encode_to_vec();
    let now = hkms::access::clientkey::now_unix();
    let headers =
        sign_request(&ck.private_key(), &ck.id, "Encrypt", &body, &http_date(now)).unwrap();
    let request: load::SignedRequest = (headers, Bytes::from(body));
    println!(
        "Encrypt, {MESSAGE}-byte messages, {:?} per run, 1 SoftHSM2 member; server CPU = hkmsd (+ hkms-gateway through the gateway) per request",
        secs()
    );
    let first = [Trail::Direct, Trail::Fdatasync, Trail::Tmpfs, Trail::Off];
    let mut second = first;
    second.reverse();
    for concurrency in settings.levels.clone() {
        // Throughput summed over both rounds, by setting: (gateway, gRPC).
        let mut sums = [(0.0, 0.0); 4];
        for (round, order) in [first, second].iter().enumerate() {
            println!("concurrency {concurrency}, round {}", round + 1);
            for &trail in order {
                set_audit(&mut inst, &base, trail);
                let gw = support::GatewayProc::start(
                    &inst,
                    "bench-gateway",
                    false,
                    "[throttle]\ntier_qps = 1000000000\n",
                );
                rt.block_on(async {
                    grpc_encrypt(&inst.d, &key, 4, &[]).await;
                    load::drive(gw.port, &inst.bundle, &request, 4, &[]).await;
                });
                let (hkmsd, gateway) = (inst.d.pid().unwrap(), gw.pid());
                let label = trail.label();
                let (f, cpu) = rt.block_on(load::drive(
                    gw.port,
                    &inst.bundle,
                    &request,
                    concurrency,
                    &[hkmsd, gateway],
                ));
                line(&format!("gateway, {label}"), &f, cpu[0] + cpu[1]);
                let (g, gcpu) = rt.block_on(grpc_encrypt(&inst.d, &key, concurrency, &[hkmsd]));
                line(&format!("gRPC, {label}"), &g, gcpu[0]);
                let sum = &mut sums[first.iter().position(|t| *t == trail).unwrap()];
                sum.0 += f.ops;
                sum.1 += g.ops;
            }
        }
        let off = sums[3];
        for (trail, sum) in first.iter().zip(sums).take(3) {
            println!(
                "concurrency {concurrency}: {} / audit off (both rounds): gateway {:.3}, gRPC {:.3}",
                trail.label(),
                sum.0 / off.0,
                sum.1 / off.1
            );
        }
    }
    set_audit(&mut inst, &base, Trail::Direct);
}
