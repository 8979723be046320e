//! hkms-gateway: the HTTPS endpoint of the KMS instance API, in front of hkmsd.

use clap::Parser;
use hkms::gateway::config::GatewayConfig;
use hkms::gateway::forward::Forwarder;
use hkms::gateway::http::{self, Gateway};
use hkms::gateway::throttle::{Endpoint, Throttle};
use hkms::gateway::tls::{self, Certs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The HTTPS endpoint of an hkms instance: speaks the KMS instance API (dkms-gcs-0.2) that
/// the official instance SDKs use, and relays every request to hkmsd.
///
/// The gateway terminates TLS (1.2 by default; ECDHE with AEAD suites only), applies the QPS
/// caps and forwards each request, as received and with the client's address, to hkmsd over
/// its Unix socket. hkmsd verifies the ClientKey signature, decides access and runs the
/// operation: the gateway holds no key and decides nothing.
///
/// Set-up, once per instance (as an operator):
///   hkms ca init --dir /etc/hkms/ca --root-key-out /media/offline/hkms-root.key
///   hkms ca issue-gateway --dir /etc/hkms/ca --dns kms.example.internal --ip 10.0.0.5
///       --cert-out /etc/hkms/gateway/gateway.pem --key-out /etc/hkms/gateway/gateway.key
///   hkms ca export --dir /etc/hkms/ca --output-dir .     (PrivateKmsCA_<instance>.pem for clients)
/// and list the gateway's uid in hkmsd's `[access] gateway_uids`.
///
/// Certificate renewal: issue a new pair over the old files, then `kill -HUP <pid>` (or wait
/// `tls.reload_check_secs`); new handshakes use the new certificate, open connections stay.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Configuration file (TOML, see scripts/hkms-gateway.example.toml).
    #[arg(
        long,
        short,
        env = "HKMS_GATEWAY_CONFIG",
        default_value = "/etc/hkms/gateway.toml"
    )]
    config: PathBuf,
    /// Log filter (error, warn, info, debug, or a tracing filter expression).
    #[arg(long, env = "HKMS_GATEWAY_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Check the configuration and the certificate pair, then exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hkms-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    // 1. Configuration and certificate.
    let config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    let certs = Arc::new(Certs::load(&config.tls).map_err(|e| e.to_string())?);
    if args.check {
        println!("configuration and certificate are usable");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        // 2. Bind every listener.
        let bind = |addr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))
        };
        let private = bind(config.private.listen).await?;
        let internet = match &config.internet {
            Some(i) => Some(bind(i.listen).await?),
            None => None,
        };
        // 3. Serve.
        let gw = Arc::new(Gateway {
            certs: certs.clone(),
            forwarder: Forwarder::new(&config.hkmsd)?,
            throttle: Throttle::new(&config.throttle),
            header_timeout: Duration::from_secs(config.http.header_timeout_secs),
            handshake_timeout: Duration::from_secs(config.http.handshake_timeout_secs),
            max_connections: config.http.max_connections,
        });
        tls::spawn_reloader(certs);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = vec![tokio::spawn(http::serve(
            gw.clone(),
            private,
            Endpoint::Private,
            stop_rx.clone(),
        ))];
        tracing::info!(
            endpoint = "private",
            listen = %config.private.listen,
            tls13 = config.tls.enable_tls13,
            tier_qps = config.throttle.tier_qps,
            "hkms-gateway listening"
        );
        if let (Some(l), Some(i)) = (internet, &config.internet) {
            tasks.push(tokio::spawn(http::serve(
                gw.clone(),
                l,
                Endpoint::Internet,
                stop_rx.clone(),
            )));
            tracing::info!(
                endpoint = "internet",
                listen = %i.listen,
                crypto_qps = config.throttle.internet_crypto_qps,
                "hkms-gateway listening (answers only while Internet access is enabled)"
            );
        }
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        // Requests in flight get a moment to finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tracing::info!("hkms-gateway stopped");
        Ok::<(), String>(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
