//! Encrypt through hkms-gateway (HTTPS, KMS instance API, signed requests, keep-alive)
//! beside hkmsd over gRPC and raw SoftHSM2, all measured in the same run. Prints figures;
//! asserts nothing.
//!
//! The load generator signs each connection's request once, as an SDK would, and reuses it
//! (the date stays inside the ±15 minute window): client-side RSA signing is not what is
//! measured.
//!
//! Each run loads for a warm-up first and counts only the requests that complete in the
//! window after it ([`measure::Window`]), as the peer's load generator does.
//!
//! `cargo bench --bench gateway` (HKMS_BENCH_SECS sets the length of each run's window,
//! default 4; HKMS_BENCH_WARMUP the warm-up before it, default 2;
//! HKMS_BENCH_CLIENT_THREADS the load generator's threads, default 1; HKMS_BENCH_LEVELS the
//! concurrency levels, default `1,16,64`; HKMS_BENCH_PATHS which paths
//! to drive, default `grpc,gateway`: one level and one path make a steady load to profile;
//! HKMS_BENCH_AUDIT=off runs hkmsd with `[audit] enabled = false`, to set the hot path
//! beside its cost, which `--bench audit` measures; HKMS_BENCH_AUDIT=tmpfs keeps the trail
//! on in a tmpfs directory, where a flush costs nothing, to profile the trail's own work).

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
use prost::Message;

use load::SignedRequest;
use measure::{grpc_encrypt, ms, raw_softhsm, secs, MESSAGE};

/// A signed Encrypt request, as HTTP parts.
fn signed_request(ck: &support::ClientKeyFiles, key: &str) -> SignedRequest {
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: vec![7u8; MESSAGE],
        ..Default::default()
    }
    .encode_to_vec();
    let now = hkms::access::clientkey::now_unix();
    let headers =
        sign_request(&ck.private_key(), &ck.id, "Encrypt", &body, &http_date(now)).unwrap();
    (headers, Bytes::from(body))
}

fn main() {
    let mut inst = support::Instance::new();
    let audit = std::env::var("HKMS_BENCH_AUDIT").unwrap_or_else(|_| "on".into());
    // Lives as long as hkmsd writes its trail there.
    let tmpfs =
        (audit == "tmpfs").then(|| tempfile::tempdir_in("/dev/shm").expect("/dev/shm is a tmpfs"));
    let setting = match (audit.as_str(), &tmpfs) {
        ("on", _) => None,
        ("off", _) => Some("[audit]\nenabled = false\n".to_owned()),
        ("tmpfs", Some(dir)) => Some(format!(
            "[audit]\ndir = \"{}\"\n",
            dir.path().join("audit").display()
        )),
        (other, _) => panic!("HKMS_BENCH_AUDIT is on, off or tmpfs, not {other}"),
    };
    if let Some(setting) = setting {
        let mut config = std::fs::read_to_string(&inst.d.config).unwrap();
        config.push_str(&setting);
        std::fs::write(&inst.d.config, config).unwrap();
        inst.d.stop(false);
        inst.d.spawn().expect("hkmsd restarts");
    }
    let key = inst.create_key();
    let ck = inst.app("bench", "key/*", None);
    let gw = support::GatewayProc::start(
        &inst,
        "bench-gateway",
        false,
        "[throttle]\ntier_qps = 1000000000\n",
    );
    // The load generator, levels and paths as the environment asks (see the module doc).
    let settings = load::Settings::from_env();
    let rt = &settings.runtime;
    let request = signed_request(&ck, &key);
    // Warm up: unwrap the key, open sessions, connect.
    rt.block_on(async {
        grpc_encrypt(&inst.d, &key, 4, &[]).await;
        load::drive(gw.port, &inst.bundle, &request, 4, &[]).await;
    });

    println!(
        "Encrypt, {MESSAGE}-byte messages, AES-256-GCM, {:?} per run, 1 SoftHSM2 member, audit trail {audit}",
        secs()
    );
    let raw1 = raw_softhsm(&inst.d.tokens.conf, "m0", 1);
    let raw2 = raw_softhsm(&inst.d.tokens.conf, "m0", 2);
    println!("raw SoftHSM2 (cryptoki, in-process)  1 thread : {raw1:>9.0} ops/s");
    println!("raw SoftHSM2 (cryptoki, in-process)  2 threads: {raw2:>9.0} ops/s");
    let hkmsd = inst.d.pid().unwrap();
    let gateway = gw.pid();
    println!("server CPU: CPU time per request of hkmsd (gRPC), of hkmsd + hkms-gateway (gateway)");
    let levels = settings.levels.clone();
    let (drive_grpc, drive_gateway) = (settings.grpc, settings.gateway);
    for concurrency in levels {
        let raw = if concurrency == 1 { raw1 } else { raw2 };
        let mut grpc_ops = None;
        if drive_grpc {
            let (g, g_cpu) = rt.block_on(grpc_encrypt(&inst.d, &key, concurrency, &[hkmsd]));
            println!(
                "concurrency {concurrency:>2}  gRPC   : {:>8.0} ops/s  p50 {}  p99 {}  server CPU {:>4.0} us  gRPC/raw {:.3}",
                g.ops,
                ms(g.p50),
                ms(g.p99),
                g_cpu[0],
                g.ops / raw
            );
            grpc_ops = Some(g.ops);
        }
        if !drive_gateway {
            continue;
        }
        let (h, h_cpu) = rt.block_on(load::drive(
            gw.port,
            &inst.bundle,
            &request,
            concurrency,
            &[hkmsd, gateway],
        ));
        let versus_grpc = grpc_ops
            .map(|g| format!("  gateway/gRPC {:.3}", h.ops / g))
            .unwrap_or_default();
        println!(
            "concurrency {concurrency:>2}  gateway: {:>8.0} ops/s  p50 {}  p99 {}  server CPU {:>4.0} us ({:.0} + {:.0})  gateway/raw {:.3}{versus_grpc}",
            h.ops,
            ms(h.p50),
            ms(h.p99),
            h_cpu[0] + h_cpu[1],
            h_cpu[0],
            h_cpu[1],
            h.ops / raw,
        );
    }
}
