//! TLS of the gateway's endpoints (OpenSSL).
//!
//! Protocol: TLS 1.2 only by default (TLS 1.3 too with `tls.enable_tls13`); SSLv3, TLS 1.0
//! and 1.1 are refused. Cipher suites: ECDHE key exchange with an AEAD cipher (AES-GCM,
//! ChaCha20-Poly1305) only; TLS 1.3 suites are all AEAD. Renegotiation is off and the
//! server's suite order wins.
//!
//! Certificate renewal without downtime: [`Certs`] holds the acceptor that new handshakes
//! use. [`Certs::reload`] builds a new one from the certificate and key files and swaps it
//! in; connections already open keep their session. A pair that does not load (a half
//! written file, a key that does not match) is refused and the previous one stays in use.

use crate::gateway::config::TlsConfig;
use crate::hardening::notify::Notifier;
use crate::tls::TLS12_CIPHERS;
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslOptions, SslVersion};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// A certificate pair that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup failed ({code}): {message}")]
pub struct TlsError {
    /// Stable code: `CertificateUnreadable`, `PrivateKeyUnreadable`, `KeyMismatch`,
    /// `TlsSettings`.
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, what: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError {
        code,
        message: format!("{}: {e}", what.display()),
    }
}

/// Builds an acceptor from the configured files and protocol settings.
pub fn acceptor(cfg: &TlsConfig) -> Result<SslAcceptor, TlsError> {
    let settings = |e: openssl::error::ErrorStack| TlsError {
        code: "TlsSettings",
        message: e.to_string(),
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(settings)?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(settings)?;
    let max = if cfg.enable_tls13 {
        SslVersion::TLS1_3
    } else {
        SslVersion::TLS1_2
    };
    b.set_max_proto_version(Some(max)).map_err(settings)?;
    b.set_cipher_list(TLS12_CIPHERS).map_err(settings)?;
    b.set_options(
        SslOptions::NO_RENEGOTIATION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_COMPRESSION,
    );
    b.set_certificate_chain_file(&cfg.certificate)
        .map_err(|e| err("CertificateUnreadable", &cfg.certificate, e))?;
    b.set_private_key_file(&cfg.private_key, SslFiletype::PEM)
        .map_err(|e| err("PrivateKeyUnreadable", &cfg.private_key, e))?;
    b.check_private_key()
        .map_err(|e| err("KeyMismatch", &cfg.private_key, e))?;
    Ok(b.build())
}

fn modified(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The acceptor in use, replaceable while serving.
pub struct Certs {
    cfg: TlsConfig,
    current: RwLock<Arc<SslAcceptor>>,
    seen: Mutex<Vec<Option<SystemTime>>>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs")
            .field("certificate", &self.cfg.certificate)
            .finish_non_exhaustive()
    }
}

impl Certs {
    /// Loads the configured pair; fails when it cannot be used.
    pub fn load(cfg: &TlsConfig) -> Result<Certs, TlsError> {
        let files = [cfg.certificate.clone(), cfg.private_key.clone()];
        let seen = modified(&files);
        Ok(Certs {
            current: RwLock::new(Arc::new(acceptor(cfg)?)),
            cfg: cfg.clone(),
            seen: Mutex::new(seen),
        })
    }

    /// The acceptor for a new handshake.
    pub fn current(&self) -> Arc<SslAcceptor> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads the files again and uses them for new handshakes; keeps the old pair on error.
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = [self.cfg.certificate.clone(), self.cfg.private_key.clone()];
        let seen = modified(&files);
        let fresh = acceptor(&self.cfg)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        Ok(())
    }

    /// Reloads when either file's modification time changed since the last load.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let files = [self.cfg.certificate.clone(), self.cfg.private_key.clone()];
        let now = modified(&files);
        let changed = *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != now;
        changed.then(|| self.reload())
    }
}

/// Reloads the pair on SIGHUP and, every `tls.reload_check_secs`, when the files changed.
/// A SIGHUP reload is announced to systemd (`RELOADING=1`, then `READY=1`), so that
/// `systemctl reload` returns once the new pair is in use (or refused).
pub fn spawn_reloader(certs: Arc<Certs>, notifier: Arc<Notifier>) {
    let every = certs.cfg.reload_check_secs;
    let log = |r: Result<(), TlsError>, why: &str| match r {
        Ok(()) => tracing::info!(
            trigger = why,
            "TLS certificate reloaded; new handshakes use it"
        ),
        Err(e) => tracing::error!(
            trigger = why,
            "TLS certificate not reloaded, keeping the previous one: {e}"
        ),
    };
    {
        let certs = certs.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; certificate reload by signal is off");
                return;
            };
            while hup.recv().await.is_some() {
                notifier.notify("RELOADING=1\nSTATUS=reloading the TLS certificate");
                let result = certs.reload();
                let status = if result.is_ok() {
                    "serving; certificate reloaded"
                } else {
                    "serving; certificate reload refused, previous pair in use"
                };
                log(result, "SIGHUP");
                notifier.notify(&format!("READY=1\nSTATUS={status}"));
            }
        });
    }
    if every > 0 {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(every));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(r) = certs.reload_if_changed() {
                    log(r, "files changed");
                }
            }
        });
    }
}
