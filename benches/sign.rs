//! Sign (RSA-2048 and ECDSA P-256 over SHA-256 digests) through hkms-gateway (HTTPS, KMS
//! instance API, signed requests, keep-alive) and through hkmsd over gRPC, beside raw
//! SoftHSM2 signing, all measured in the same run. Prints figures; asserts nothing.
//!
//! Every ratio is to raw SoftHSM2 signing of the same algorithm with 2 threads (one session
//! each). The spec's target, printed and not checked: the gateway signs with RSA-2048 at
//! concurrency 16 at least 0.90 times as fast as raw 2-thread signing.
//!
//! As in the gateway benchmark, each instance API request is signed once and reused (the
//! date stays inside the ±15 minute window): client-side RSA signing is not what is
//! measured.
//!
//! `cargo bench --bench sign` (HKMS_BENCH_SECS sets the length of each run, default 4;
//! HKMS_BENCH_CLIENT_THREADS the load generator's threads, default 1; HKMS_BENCH_LEVELS the
//! concurrency levels, default `1,16,64`; HKMS_BENCH_PATHS which paths to drive, default
//! `grpc,gateway`).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/gateway_load.rs"]
mod load;
#[path = "support/encrypt.rs"]
mod measure;
#[path = "support/sign.rs"]
mod signing;
#[path = "../tests/support/gateway.rs"]
mod support;

use bytes::Bytes;
use hkms::instance_api as api;
use prost::Message;

use load::SignedRequest;
use measure::{ms, secs};
use signing::{create_key, grpc_sign, raw_sign, Alg, DIGEST};

/// A signed instance API Sign request of [`DIGEST`] (MessageType DIGEST).
fn signed_request(ck: &support::ClientKeyFiles, key: &str, alg: Alg) -> SignedRequest {
    let body = api::SignRequest {
        key_id: key.to_owned(),
        algorithm: alg.algorithm().into(),
        message: DIGEST.to_vec(),
        message_type: "DIGEST".into(),
        ..Default::default()
    }
    .encode_to_vec();
    (ck.signed("Sign", &body), Bytes::from(body))
}

fn main() {
    let inst = support::Instance::new();
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
    let levels = settings.levels.clone();
    let (drive_grpc, drive_gateway) = (settings.grpc, settings.gateway);

    let keys: Vec<(Alg, String, SignedRequest)> = Alg::ALL
        .into_iter()
        .map(|alg| {
            let key = rt.block_on(create_key(&inst.d, alg));
            let request = signed_request(&ck, &key, alg);
            (alg, key, request)
        })
        .collect();
    // Warm up: unwrap the keys, open sessions, connect.
    for (alg, key, request) in &keys {
        rt.block_on(async {
            if drive_grpc {
                grpc_sign(&inst.d, key, *alg, 4, &[]).await;
            }
            if drive_gateway {
                load::drive(gw.port, &inst.bundle, request, 4, &[]).await;
            }
        });
    }

    println!(
        "Sign, 32-byte SHA-256 digests (MessageType DIGEST), {:?} per run, 1 SoftHSM2 member",
        secs()
    );
    let hkmsd = inst.d.pid().unwrap();
    let gateway = gw.pid();
    println!("server CPU: CPU time per request of hkmsd (gRPC), of hkmsd + hkms-gateway (gateway)");
    println!("x/raw2: ops/s over raw SoftHSM2 signing of the same algorithm with 2 threads");
    let mut target = None;
    for (alg, key, request) in &keys {
        let (alg, key) = (*alg, key.as_str());
        println!();
        println!(
            "{} {} (raw: {})",
            alg.key_spec(),
            alg.algorithm(),
            alg.raw_mechanism()
        );
        let raw1 = raw_sign(&inst.d.tokens.conf, "m0", alg, 1);
        let raw2 = raw_sign(&inst.d.tokens.conf, "m0", alg, 2);
        println!("raw SoftHSM2 (cryptoki, in-process)  1 thread : {raw1:>8.0} ops/s");
        println!(
            "raw SoftHSM2 (cryptoki, in-process)  2 threads: {raw2:>8.0} ops/s  raw2/raw1 {:.3}",
            raw2 / raw1
        );
        for &concurrency in &levels {
            let mut grpc_ops = None;
            if drive_grpc {
                let (g, g_cpu) = rt.block_on(grpc_sign(&inst.d, key, alg, concurrency, &[hkmsd]));
                println!(
                    "concurrency {concurrency:>2}  gRPC   : {:>8.0} ops/s  p50 {}  p99 {}  server CPU {:>5.0} us  gRPC/raw2 {:.3}",
                    g.ops,
                    ms(g.p50),
                    ms(g.p99),
                    g_cpu[0],
                    g.ops / raw2
                );
                grpc_ops = Some(g.ops);
            }
            if !drive_gateway {
                continue;
            }
            let (h, h_cpu) = rt.block_on(load::drive(
                gw.port,
                &inst.bundle,
                request,
                concurrency,
                &[hkmsd, gateway],
            ));
            let versus_grpc = grpc_ops
                .map(|g| format!("  gateway/gRPC {:.3}", h.ops / g))
                .unwrap_or_default();
            println!(
                "concurrency {concurrency:>2}  gateway: {:>8.0} ops/s  p50 {}  p99 {}  server CPU {:>5.0} us ({:.0} + {:.0})  gateway/raw2 {:.3}{versus_grpc}",
                h.ops,
                ms(h.p50),
                ms(h.p99),
                h_cpu[0] + h_cpu[1],
                h_cpu[0],
                h_cpu[1],
                h.ops / raw2,
            );
            if matches!(alg, Alg::Rsa2048) && concurrency == 16 {
                target = Some(h.ops / raw2);
            }
        }
    }
    if let Some(ratio) = target {
        println!();
        println!(
            "target: gateway RSA-2048 at concurrency 16 >= 0.90 x raw 2-thread signing: {ratio:.3} ({})",
            if ratio >= 0.90 { "met" } else { "not met" }
        );
    }
}
