//! Load on hkms-gateway: keep-alive HTTPS connections that each send one pre-signed
//! request (KMS instance API or Tencent Cloud API 3.0) over and over, as an SDK reusing a
//! signed request would.
#![allow(dead_code)]

use crate::measure::{Figures, Window};
use bytes::Bytes;
use hkms::instance_api as api;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslMethod};
use prost::Message;
use std::pin::Pin;
use std::time::Instant;

/// A signed request, as HTTP parts: headers and body.
pub type SignedRequest = (Vec<(String, String)>, Bytes);

/// Sends `request` on `concurrency` connections to the gateway on `port` for a warm-up and
/// a measured [`Window`]; every answer must be 200. Returns the window's figures and the CPU
/// per request of each server process in `pids` (none: figures only).
pub async fn drive(
    port: u16,
    bundle: &std::path::Path,
    request: &SignedRequest,
    concurrency: usize,
    pids: &[u32],
) -> (Figures, Vec<f64>) {
    drive_capped(port, bundle, request, concurrency, false, pids)
        .await
        .0
}

/// Like [`drive`]; with `capped`, answers 429 (`Rejected.Throttling`) are counted (the
/// second figure, those of the window) rather than refused, and the figures are those of
/// the requests served.
pub async fn drive_capped(
    port: u16,
    bundle: &std::path::Path,
    request: &SignedRequest,
    concurrency: usize,
    capped: bool,
    pids: &[u32],
) -> ((Figures, Vec<f64>), usize) {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(bundle).unwrap();
    let connector = b.build();
    // Connect (TLS handshakes) before the load starts: keep-alive connections.
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let ssl = connector
            .configure()
            .unwrap()
            .into_ssl("localhost")
            .unwrap();
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        Pin::new(&mut tls).connect().await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    let window = Window::open(pids);
    let span = window.span;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let (headers, body) = request.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut throttled = 0;
                while span.running() {
                    let mut req = hyper::Request::post("/").header("host", "localhost");
                    for (n, v) in &headers {
                        req = req.header(n.as_str(), v.as_str());
                    }
                    let req = req.body(Full::new(body.clone())).unwrap();
                    let t = Instant::now();
                    let resp = sender.send_request(req).await.unwrap();
                    let status = resp.status();
                    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                    let done = Instant::now();
                    if capped && status == 429 {
                        throttled += usize::from(span.counts(done));
                        continue;
                    }
                    assert_eq!(status, 200, "{:?}", api::Error::decode(bytes));
                    // Tencent's API answers errors with 200 too, in a JSON `Error` object.
                    assert!(
                        !bytes.windows(9).any(|w| w == b"\"Error\":{"),
                        "{}",
                        String::from_utf8_lossy(&bytes)
                    );
                    if span.counts(done) {
                        lat.push(done - t);
                    }
                }
                (lat, throttled)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut throttled = 0;
    for t in tasks {
        let (lat, refused) = t.await.unwrap();
        all.extend(lat);
        throttled += refused;
    }
    (window.close(all), throttled)
}

/// What the environment asks of a gateway benchmark: the load generator's runtime
/// (HKMS_BENCH_CLIENT_THREADS, default 1 thread, like the load generator of the
/// aws-kms-xks-proxy comparison; hkmsd and the gateway take their `[runtime]` default),
/// the concurrency levels (HKMS_BENCH_LEVELS, default `1,16,64`) and the paths to drive
/// (HKMS_BENCH_PATHS, default `grpc,gateway`).
pub struct Settings {
    pub runtime: tokio::runtime::Runtime,
    pub levels: Vec<usize>,
    pub grpc: bool,
    pub gateway: bool,
}

impl Settings {
    pub fn from_env() -> Settings {
        let client_threads: usize = std::env::var("HKMS_BENCH_CLIENT_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(1);
        let runtime = if client_threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(client_threads)
                .enable_all()
                .build()
                .unwrap()
        };
        let levels = std::env::var("HKMS_BENCH_LEVELS")
            .unwrap_or_else(|_| "1,16,64".into())
            .split(',')
            .map(|l| l.trim().parse().expect("HKMS_BENCH_LEVELS: numbers"))
            .collect();
        let paths = std::env::var("HKMS_BENCH_PATHS").unwrap_or_else(|_| "grpc,gateway".into());
        Settings {
            runtime,
            levels,
            grpc: paths.split(',').any(|p| p.trim() == "grpc"),
            gateway: paths.split(',').any(|p| p.trim() == "gateway"),
        }
    }
}
