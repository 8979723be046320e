//! hkms-gateway: the HTTPS endpoint of the KMS instance API, in front of hkmsd.

use clap::Parser;
use hkms::gateway::config::GatewayConfig;
use hkms::gateway::http::{self, Gateway};
use hkms::gateway::throttle::Endpoint;
use hkms::gateway::tls::{self, Certs};
use hkms::hardening;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The HTTPS endpoint of an hkms instance: speaks the KMS instance API (dkms-gcs-0.2) that
/// the official instance SDKs use, and relays every request to hkmsd.
///
/// The gateway terminates TLS (1.2 by default; ECDHE with AEAD suites only), applies the QPS
/// caps and forwards each request, as received and with the client's address and endpoint,
/// to hkmsd. hkmsd verifies the ClientKey signature, decides access and runs the operation:
/// the gateway holds no key and decides nothing.
///
/// How it reaches hkmsd (the `[hkmsd]` table, exactly one of the two):
///   socket = "/run/hkms/hkmsd.sock"           hkmsd on the same host, over its Unix socket;
///       hkmsd must list the gateway's uid in its `[access] gateway_uids`.
///   endpoint = "https://hkmsd.example.internal:7443"
///       hkmsd on another host, over TCP with mutual TLS (hkmsd's `[listen] tcp`); also set
///       client_cert and client_key (the gateway's client certificate, which hkmsd accepts
///       when it chains to its `[listen] gateway_ca`) and ca (the instance CA bundle that
///       hkmsd's server certificate must chain to; its host name is checked).
///
/// Set-up, once per instance (as an operator):
///   hkms ca init --dir /etc/hkms/ca --root-key-out /media/offline/hkms-root.key
///   hkms ca issue-gateway --dir /etc/hkms/ca --dns kms.example.internal --ip 10.0.0.5
///       --cert-out /etc/hkms/gateway/gateway.pem --key-out /etc/hkms/gateway/gateway.key
///   hkms ca export --dir /etc/hkms/ca --output-dir .     (PrivateKmsCA_<instance>.pem for clients)
/// then, with `socket`: list the gateway's uid in hkmsd's `[access] gateway_uids`;
/// with `endpoint`: give the gateway its client certificate for hkmsd,
///   hkms ca issue-gateway-client --dir /etc/hkms/ca --name gw-1
///       --cert-out /etc/hkms/gateway/hkmsd-client.pem --key-out /etc/hkms/gateway/hkmsd-client.key
/// and give hkmsd its TCP listener (`[listen] tcp`, `tls_cert` and `tls_key` from
/// `hkms ca issue-gateway --dns <hkmsd host>`, `gateway_ca` = the instance CA bundle).
///
/// Certificate renewal: issue a new pair over the old files, then `kill -HUP <pid>` (or wait
/// `tls.reload_check_secs`); new handshakes use the new certificate, open connections stay.
///
/// Metrics and health: with an `[observability]` table, plain HTTP on `listen` (default
/// 127.0.0.1:9465): GET /metrics, /health/live, /health/ready (hkmsd reachable).
///
/// Start-up: read the configuration and the certificate; bind every listener; when started
/// as root, switch to `[hardening] run_as` (or refuse, unless --allow-root); disable core
/// dumps and ptrace, set no-new-privileges and drop every capability (CAP_NET_BIND_SERVICE
/// is needed only for the bind); install the gateway's own seccomp allow-list on every
/// thread and check that forbidden calls fail; then start the serving runtime. Under
/// systemd (hkms-gateway.service) it reports readiness, reloads and stopping, and sends
/// watchdog keep-alives. SIGTERM stops it.
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
    /// Report the hardening in force in the running gateway (found through the configured
    /// private listener, or --pid): seccomp mode and filters, no-new-privileges and
    /// capabilities of every thread, dumpable flag, core and memlock limits. Exits 0 when
    /// hardened, 1 otherwise.
    #[arg(long)]
    check_hardening: bool,
    /// With --check-hardening: inspect this process instead of the listener's owner.
    #[arg(long, requires = "check_hardening")]
    pid: Option<u32>,
    /// With --check-hardening: print the report as JSON.
    #[arg(long, requires = "check_hardening")]
    json: bool,
    /// Keep running as root (capabilities are still dropped). Only for disposable test
    /// instances: in production start the gateway as its service user or set
    /// [hardening] run_as.
    #[arg(
        long,
        env = "HKMS_GATEWAY_ALLOW_ROOT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    allow_root: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hkms::logging::init(&args.log, args.log_json);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hkms-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.check_hardening {
        return check_hardening(args);
    }
    // 1. Configuration and certificate (OpenSSL initialises and reads its configuration
    //    here, before any file access is restricted).
    let config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    let certs = Arc::new(Certs::load(&config.tls).map_err(|e| e.to_string())?);
    if args.check {
        println!("configuration and certificate are usable");
        return Ok(());
    }
    let hardening_config = config.hardening.as_process();
    // Over hkmsd's Unix socket no AF_INET/AF_INET6 socket is ever created; a TCP endpoint
    // (mutual TLS) needs them.
    let hkmsd_over_tcp = config.hkmsd.endpoint.is_some();
    let filter = hardening::seccomp::compile(
        &hardening::seccomp::gateway_list(hkmsd_over_tcp),
        &[],
        config.hardening.seccomp,
    )?;
    let notifier = Arc::new(hardening::notify::Notifier::from_env()?);

    // 2. Every listener, while CAP_NET_BIND_SERVICE (or root) may still be held.
    let bind = |addr: std::net::SocketAddr| {
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        l.set_nonblocking(true)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        Ok::<_, String>(l)
    };
    let private = match systemd_socket(config.private.listen)? {
        Some(l) => l,
        None => bind(config.private.listen)?,
    };
    let internet = match &config.internet {
        Some(i) => Some(bind(i.listen)?),
        None => None,
    };
    let observability = match &config.observability {
        Some(o) => match o.address()? {
            Some(addr) => Some(hkms::metrics::http::bind(addr)?),
            None => None,
        },
        None => None,
    };
    let hkmsd_target = config.hkmsd.target()?;

    // 3. Identity, then no core dumps, not dumpable, no new privileges, no capabilities,
    //    and the seccomp allow-list on every thread: all before the runtime starts its
    //    threads (capabilities are per thread).
    let identity =
        hardening::identity::settle(config.hardening.run_as.as_deref(), args.allow_root)?;
    if identity == hardening::identity::Identity::RootAllowed {
        tracing::warn!("running as root (--allow-root): for disposable test instances only");
    }
    tracing::info!(user = %identity, "identity settled");
    let memory = hardening::restrict_process(&hardening_config)?;
    let summary = hardening::confine(&hardening_config, &filter, memory)?;
    tracing::info!(
        seccomp = ?summary.seccomp_mode,
        allowed_syscalls = summary.allowed_syscalls,
        memory_locked = summary.memory_locked,
        "hardening in force: no core dumps, not dumpable, no new privileges, no capabilities"
    );
    if summary.memory_locked {
        tracing::info!("{}", summary.memory_note);
    } else {
        tracing::warn!("{}", summary.memory_note);
    }
    for p in &summary.probes {
        tracing::info!(call = p.call, outcome = %p.outcome, blocked = p.blocked, "seccomp probe");
    }

    // 4. The serving runtime: its threads inherit all of the above.
    let runtime = config
        .runtime
        .build("hkms-gateway", hkms::runtime::Wakes::Default)?;
    let result = runtime.block_on(async move {
        let register = |l: std::net::TcpListener| {
            tokio::net::TcpListener::from_std(l)
                .map_err(|e| format!("cannot register a listener: {e}"))
        };
        let private = register(private)?;
        let internet = internet.map(register).transpose()?;
        let gw = Arc::new(Gateway::new(certs.clone(), &config)?);
        if let Some(l) = observability {
            let site = hkms::metrics::gateway::GatewaySite::new(hkmsd_target);
            tokio::spawn(hkms::metrics::http::serve(l, Arc::new(site)));
        }
        tls::spawn_reloader(certs, notifier.clone());
        if let Some(every) = notifier.watchdog_interval() {
            let n = notifier.clone();
            // Keep-alives come from the serving runtime: a stuck runtime stops them and
            // systemd restarts the gateway.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    n.notify("WATCHDOG=1");
                }
            });
        }
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
        notifier.notify("READY=1\nSTATUS=serving");
        tracing::info!("hkms-gateway ready");
        shutdown_signal().await;
        notifier.notify("STOPPING=1\nSTATUS=stopping");
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        // Requests in flight get a moment to finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tracing::info!("hkms-gateway stopped");
        Ok::<(), String>(())
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The private listener passed by systemd as standard input (hkms-gateway.socket with
/// `StandardInput=socket`), so that the gateway itself never needs CAP_NET_BIND_SERVICE for
/// port 443. `None` when standard input is not a listening socket.
fn systemd_socket(want: std::net::SocketAddr) -> Result<Option<std::net::TcpListener>, String> {
    use nix::sys::socket::{getsockopt, sockopt};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    if !getsockopt(&stdin.as_fd(), sockopt::AcceptConn).unwrap_or(false) {
        return Ok(None);
    }
    let fd = stdin
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot take the socket from systemd: {e}"))?;
    let listener = std::net::TcpListener::from(fd);
    let got = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address of the socket from systemd: {e}"))?;
    if got.port() != want.port() {
        return Err(format!(
            "the socket passed by systemd listens on {got}, but private.listen is {want}: \
             make ListenStream= of hkms-gateway.socket and private.listen agree"
        ));
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the socket from systemd: {e}"))?;
    tracing::info!(listen = %got, "private endpoint on the socket passed by systemd");
    Ok(Some(listener))
}

fn check_hardening(args: &Args) -> Result<(), String> {
    let pid = match args.pid {
        Some(pid) => pid,
        None => {
            let config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
            hardening::report::tcp_listener_owner(config.private.listen)?
        }
    };
    let report = hardening::report::collect(pid)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.render());
    }
    if report.passed() {
        Ok(())
    } else {
        Err("hardening checks failed".into())
    }
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
