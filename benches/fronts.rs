//! Encrypt of 256 bytes through each front of the same gateway port, beside gRPC, in one
//! run: the Tencent Cloud API 3.0 front (JSON, TC3-HMAC-SHA256 with an API key), the KMS
//! instance API front (protobuf, RSA-signed with a ClientKey) and hkmsd over gRPC. The
//! paths alternate over two rounds so that neither gains from running later. Prints
//! figures; asserts nothing.
//!
//! The load generator signs each request once and reuses it (within both APIs' time
//! windows): client-side signing is not what is measured; hkmsd verifies every request.
//!
//! `cargo bench --bench fronts` (HKMS_BENCH_SECS, HKMS_BENCH_CLIENT_THREADS as for
//! `--bench gateway`; HKMS_BENCH_LEVELS default `16`).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/gateway_load.rs"]
mod load;
#[path = "support/encrypt.rs"]
mod measure;
#[path = "../tests/support/gateway.rs"]
mod support;
#[path = "../tests/support/tencent.rs"]
mod tencent;

use base64::Engine;
use bytes::Bytes;
use hkms::front::instance::auth::{http_date, sign_request};
use hkms::instance_api as api;
use measure::{grpc_encrypt, ms, secs, Figures, MESSAGE};
use prost::Message;

fn line(name: &str, f: &Figures, cpu: f64) {
    println!(
        "  {name:<9}: {:>8.0} ops/s  p50 {}  p99 {}  server CPU {cpu:>4.0} us",
        f.ops,
        ms(f.p50),
        ms(f.p99)
    );
}

fn main() {
    let inst = support::Instance::new();
    let key = inst.create_key();
    let ck = inst.app("bench-instance", "key/*", None);
    let tk = tencent::tc_app(
        &inst,
        "bench-tencent",
        "CryptoServiceKeyUser",
        "key/*",
        None,
    );
    let gw = support::GatewayProc::start(
        &inst,
        "bench-gateway",
        false,
        "[throttle]\ntier_qps = 1000000000\n",
    );
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
    let instance_request: load::SignedRequest = (headers, Bytes::from(body));

    let body = serde_json::to_vec(&serde_json::json!({
        "KeyId": key,
        "Plaintext": base64::engine::general_purpose::STANDARD.encode(vec![7u8; MESSAGE]),
    }))
    .unwrap();
    let signing = tencent::Signing::new(&tk, tencent::KMS_VERSION);
    let headers = tencent::signed_headers(&signing, "Encrypt", &body);
    let tencent_request: load::SignedRequest = (headers, Bytes::from(body));

    rt.block_on(async {
        grpc_encrypt(&inst.d, &key, 4, &[]).await;
        load::drive(gw.port, &inst.bundle, &instance_request, 4, &[]).await;
        load::drive(gw.port, &inst.bundle, &tencent_request, 4, &[]).await;
    });
    println!(
        "Encrypt, {MESSAGE}-byte messages, {:?} per run, 1 SoftHSM2 member; server CPU = hkmsd (+ hkms-gateway for the fronts) per request",
        secs()
    );
    let (hkmsd, gateway) = (inst.d.pid().unwrap(), gw.pid());
    for concurrency in settings.levels.clone() {
        let (mut tencent_ops, mut instance_ops) = (0.0, 0.0);
        for round in 1..=2 {
            println!("concurrency {concurrency}, round {round}");
            let order: [(&str, &load::SignedRequest); 2] = if round == 1 {
                [
                    ("tencent", &tencent_request),
                    ("instance", &instance_request),
                ]
            } else {
                [
                    ("instance", &instance_request),
                    ("tencent", &tencent_request),
                ]
            };
            for (name, request) in order {
                let (f, cpu) = rt.block_on(load::drive(
                    gw.port,
                    &inst.bundle,
                    request,
                    concurrency,
                    &[hkmsd, gateway],
                ));
                line(name, &f, cpu[0] + cpu[1]);
                if name == "tencent" {
                    tencent_ops += f.ops;
                } else {
                    instance_ops += f.ops;
                }
            }
            let (g, cpu) = rt.block_on(grpc_encrypt(&inst.d, &key, concurrency, &[hkmsd]));
            line("gRPC", &g, cpu[0]);
        }
        println!(
            "concurrency {concurrency}: Tencent front / instance-API front (both rounds) {:.3}",
            tencent_ops / instance_ops
        );
    }
}
