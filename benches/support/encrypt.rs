//! Measurements shared by the Encrypt benchmarks: raw SoftHSM2 AES-GCM through cryptoki,
//! and Encrypt through hkmsd's gRPC API.
#![allow(dead_code)]

use crate::common;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use hkms::proto::EncryptRequest;
use std::time::{Duration, Instant};

pub const MESSAGE: usize = 256;

/// Seconds a run's window lasts (HKMS_BENCH_SECS, default 4).
pub fn secs() -> Duration {
    env_secs("HKMS_BENCH_SECS", 4.0)
}

/// Seconds of load before a run's window opens (HKMS_BENCH_WARMUP, default 2, as the
/// peer's load generator in `../shared/bench/peer-xks/`).
pub fn warmup() -> Duration {
    env_secs("HKMS_BENCH_WARMUP", 2.0)
}

/// Seconds from the environment variable `var`, or `default`.
fn env_secs(var: &str, default: f64) -> Duration {
    Duration::from_secs_f64(
        std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// The process's SoftHSM2 library (initialised once, with `conf`), the slot of the token
/// `label` and a session logged in as the user: session objects made on it stay usable from
/// every other session of the slot while it is open.
pub fn softhsm_login(conf: &std::path::Path, label: &str) -> (Pkcs11, Slot, Session) {
    std::env::set_var("SOFTHSM2_CONF", conf);
    static CTX: std::sync::OnceLock<Pkcs11> = std::sync::OnceLock::new();
    let ctx = CTX
        .get_or_init(|| {
            let c = Pkcs11::new(common::SOFTHSM_MODULE).unwrap();
            c.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
                .unwrap();
            c
        })
        .clone();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    let login = ctx.open_rw_session(slot).unwrap();
    let _ = login.login(
        UserType::User,
        Some(&AuthPin::from(common::USER_PIN.to_owned())),
    );
    (ctx, slot, login)
}

/// AES-256-GCM encryptions per second straight through cryptoki, one session per thread.
pub fn raw_softhsm(conf: &std::path::Path, label: &str, threads: usize) -> f64 {
    let (ctx, slot, login) = softhsm_login(conf, label);
    let key = login
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Sensitive(true),
            ],
        )
        .unwrap();
    let run = secs();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let s = ctx.open_rw_session(slot).unwrap();
                let data = [7u8; MESSAGE];
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < run {
                    let mut iv = [n as u8; 12];
                    let params = GcmParams::new(&mut iv, b"", 128.into()).unwrap();
                    s.encrypt(&Mechanism::AesGcm(params), key, &data).unwrap();
                    n += 1;
                }
                n as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

pub struct Figures {
    /// Requests completed.
    pub count: usize,
    pub ops: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn figures(mut all: Vec<Duration>, elapsed: f64) -> Figures {
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Figures {
        count: all.len(),
        ops: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// Encrypt through hkmsd's gRPC API for a [`Window`]: figures and hkmsd's CPU per request
/// (`pids`: hkmsd's, or none).
pub async fn grpc_encrypt(
    d: &common::Daemon,
    key: &str,
    concurrency: usize,
    pids: &[u32],
) -> (Figures, Vec<f64>) {
    let client = d.client().await;
    let window = Window::open(pids);
    let span = window.span;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut c = client.crypto.clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while span.running() {
                    let t = Instant::now();
                    c.encrypt(EncryptRequest {
                        key_id: key.clone(),
                        plaintext: vec![7u8; MESSAGE],
                        aad: vec![],
                    })
                    .await
                    .unwrap();
                    let done = Instant::now();
                    if span.counts(done) {
                        lat.push(done - t);
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    window.close(all)
}

/// CPU time (user + system, all threads) the processes `pids` have used so far, in seconds.
pub fn cpu_secs(pids: &[u32]) -> f64 {
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            // Fields after the command name (which may hold spaces): utime is the 12th,
            // stime the 13th.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split(' ').collect();
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick
        })
        .sum()
}

/// The measured part of a run, measured as the peer's load generator measures it: the load
/// runs for [`warmup`] first (new connections, streams and buffers settle), then the
/// requests that complete in the next [`secs`] are counted, and a thread of its own reads
/// the servers' CPU time at the window's two ends.
pub struct Window {
    /// When the window opens and closes; load tasks take a copy.
    pub span: Span,
    /// CPU seconds each server process used inside the window.
    cpu: std::thread::JoinHandle<Vec<f64>>,
}

/// When a [`Window`] opens and closes.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: Instant,
    pub end: Instant,
}

impl Span {
    /// Whether load should go on.
    pub fn running(&self) -> bool {
        Instant::now() < self.end
    }

    /// Whether a request that completed at `done` is counted.
    pub fn counts(&self, done: Instant) -> bool {
        done >= self.start && done < self.end
    }
}

impl Window {
    /// Opens a window that starts after the warm-up; `pids` are the servers to measure.
    pub fn open(pids: &[u32]) -> Window {
        let start = Instant::now() + warmup();
        let end = start + secs();
        let pids = pids.to_vec();
        let cpu = std::thread::spawn(move || {
            std::thread::sleep(start.saturating_duration_since(Instant::now()));
            let before: Vec<f64> = pids.iter().map(|p| cpu_secs(&[*p])).collect();
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
            pids.iter()
                .zip(before)
                .map(|(p, b)| cpu_secs(&[*p]) - b)
                .collect()
        });
        Window {
            span: Span { start, end },
            cpu,
        }
    }

    /// The window's figures from the latencies counted in it, with the CPU each server used
    /// per request, in microseconds.
    pub fn close(self, latencies: Vec<Duration>) -> (Figures, Vec<f64>) {
        let f = figures(latencies, (self.span.end - self.span.start).as_secs_f64());
        let cpu = self
            .cpu
            .join()
            .unwrap()
            .into_iter()
            .map(|secs| secs * 1e6 / f.count.max(1) as f64)
            .collect();
        (f, cpu)
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
