//! GetSecretValue through hkms-gateway (HTTPS, KMS instance API, signed requests,
//! keep-alive): a dedicated gateway's throughput, latency and server CPU per read at each
//! concurrency level, then a gateway in shared-gateway mode, where secret reads are capped
//! at `throttle.secret_qps` (450 by default): reads served and refused (429) per second.
//! Prints figures; asserts nothing.
//!
//! `cargo bench --bench secrets` (HKMS_BENCH_SECS, HKMS_BENCH_CLIENT_THREADS and
//! HKMS_BENCH_LEVELS as for `--bench gateway`).

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
use hkms::proto::CreateSecretRequest;
use measure::{ms, secs, warmup};
use prost::Message;

/// A secret value of a typical size (a database password with its connection string).
const VALUE: &[u8] = b"postgres://orders:6c1f0e4b9a2d7e83@db.internal:5432/orders";

fn main() {
    let inst = support::Instance::new();
    let key = inst.create_key();
    let settings = load::Settings::from_env();
    let rt = &settings.runtime;
    rt.block_on(async {
        let mut c = inst.d.client().await;
        c.secrets
            .create_secret(CreateSecretRequest {
                secret_name: "orders/db".into(),
                secret_data: VALUE.to_vec(),
                encryption_key_id: key.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    });
    inst.d.cli_json(&[
        "policy",
        "create",
        "--name",
        "reader",
        "--role",
        "CryptoServiceSecretUser",
        "--resources",
        "secret/*",
    ]);
    inst.d
        .cli_json(&["aap", "create", "--name", "reader", "--policies", "reader"]);
    let ck = inst.client_key("reader");
    let body = api::GetSecretValueRequest {
        secret_name: "orders/db".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let now = hkms::access::clientkey::now_unix();
    let headers = sign_request(
        &ck.private_key(),
        &ck.id,
        "GetSecretValue",
        &body,
        &http_date(now),
    )
    .unwrap();
    let request = (headers, Bytes::from(body));
    let uncapped = "[throttle]\ntier_qps = 1000000000\n";
    let dedicated = support::GatewayProc::start(&inst, "dedicated", false, uncapped);
    let shared = support::GatewayProc::start(
        &inst,
        "shared",
        false,
        &format!("{uncapped}shared_gateway = true\n"),
    );
    rt.block_on(load::drive(dedicated.port, &inst.bundle, &request, 4, &[]));

    println!(
        "GetSecretValue of a {}-byte text secret, {:?} per run, 1 SoftHSM2 member",
        VALUE.len(),
        secs()
    );
    let hkmsd = inst.d.pid().unwrap();
    for &concurrency in &settings.levels {
        let (f, cpu) = rt.block_on(load::drive(
            dedicated.port,
            &inst.bundle,
            &request,
            concurrency,
            &[hkmsd, dedicated.pid()],
        ));
        println!(
            "concurrency {concurrency:>2}  dedicated gateway: {:>8.0} reads/s  p50 {}  p99 {}  server CPU {:>4.0} us ({:.0} + {:.0})",
            f.ops,
            ms(f.p50),
            ms(f.p99),
            cpu[0] + cpu[1],
            cpu[0],
            cpu[1],
        );
    }
    let concurrency = 16;
    let run = secs().as_secs_f64();
    let ((served, _), refused) = rt.block_on(load::drive_capped(
        shared.port,
        &inst.bundle,
        &request,
        concurrency,
        true,
        &[],
    ));
    // The bucket starts full: it admits one second's worth at once, then 450 a second. The
    // warm-up, at far more than 450 a second, spends the burst before the window opens.
    let (cap, burst) = if warmup().is_zero() {
        (450.0 * (run + 1.0), "450/s and a one-second burst")
    } else {
        (450.0 * run, "450/s, its burst spent in the warm-up")
    };
    println!(
        "concurrency {concurrency:>2}  shared gateway (secret_qps 450): {} reads served in {run:.0} s ({:.0}/s; the cap admits about {cap:.0}: {burst}), {:.0} refused/s with 429 Rejected.Throttling",
        served.count,
        served.ops,
        refused as f64 / run,
    );
}
