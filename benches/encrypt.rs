//! Encrypt throughput: hkmsd over gRPC (Unix socket) against raw SoftHSM2 AES-GCM measured
//! by this same program in the same run. Prints figures; asserts nothing.
//!
//! `cargo bench --bench encrypt` (set HKMS_BENCH_SECS to change the length of each run).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/encrypt.rs"]
mod measure;

use hkms::proto::*;

use measure::{grpc_encrypt, ms, raw_softhsm, secs, MESSAGE};

fn main() {
    let d = common::Daemon::initialised(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = rt.block_on(async {
        let mut c = d.client().await;
        common::create_key(&mut c).await
    });
    // Warm up: unwrap the key on both members, open sessions.
    rt.block_on(grpc_encrypt_warmup(&d, &key));

    println!(
        "Encrypt, {MESSAGE}-byte messages, AES-256-GCM, {:?} per run, 2 SoftHSM2 members",
        secs()
    );
    let raw1 = raw_softhsm(&d.tokens.conf, "m0", 1);
    let raw2 = raw_softhsm(&d.tokens.conf, "m0", 2);
    println!("raw SoftHSM2 (cryptoki, in-process)  1 thread : {raw1:>9.0} ops/s");
    println!("raw SoftHSM2 (cryptoki, in-process)  2 threads: {raw2:>9.0} ops/s");
    for concurrency in [1usize, 16] {
        let (f, _) = rt.block_on(grpc_encrypt(&d, &key, concurrency, &[]));
        let base = if concurrency == 1 { raw1 } else { raw2 };
        println!(
            "hkmsd gRPC Encrypt   concurrency {concurrency:>2}: {:>9.0} ops/s  p50 {}  p99 {}  ratio to raw {} = {:.3}",
            f.ops,
            ms(f.p50),
            ms(f.p99),
            if concurrency == 1 { "1 thread" } else { "2 threads" },
            f.ops / base
        );
    }
}

async fn grpc_encrypt_warmup(d: &common::Daemon, key: &str) {
    let mut c = d.client().await;
    for _ in 0..200 {
        c.crypto
            .encrypt(EncryptRequest {
                key_id: key.into(),
                plaintext: vec![0; MESSAGE],
                aad: vec![],
            })
            .await
            .unwrap();
    }
}
