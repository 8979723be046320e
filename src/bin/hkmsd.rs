//! hkmsd: the hkms daemon. Talks to the HSMs and the store; serves gRPC on a Unix socket.

use clap::Parser;
use hkms::authn::peer::RoleConflict;
use hkms::config::Config;
use hkms::hardening;
use std::path::PathBuf;
use std::process::ExitCode;

/// The hkms daemon: keeps keys inside HSMs and serves key management and cryptography
/// over gRPC on a Unix socket (and, when `[listen] tcp` is set, over TCP with mutual TLS).
///
/// Start-up: read the configuration; when started as root, switch to `[hardening] run_as`
/// (or refuse, unless --allow-root); disable core dumps and ptrace, lock memory when
/// RLIMIT_MEMLOCK allows, set no-new-privileges and drop every capability; open the store,
/// log in to every HSM member, bind the socket, the optional TCP listener and the optional
/// metrics and health endpoint (`[observability] listen`, loopback); install the seccomp allow-list on every
/// thread and check that forbidden calls fail; serve. Under systemd (hkmsd.service) it
/// reports readiness and sends watchdog keep-alives. SIGTERM stops it. SIGHUP reloads
/// nothing (every setting is fixed at start-up): restart to apply changes.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML, see scripts/hkmsd.example.toml).
    #[arg(
        long,
        short,
        env = "HKMSD_CONFIG",
        default_value = "/etc/hkms/hkmsd.toml"
    )]
    config: PathBuf,
    /// Log filter (error, warn, info, debug, or a tracing filter expression).
    #[arg(long, env = "HKMSD_LOG", default_value = "info")]
    log: String,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Report the hardening in force in the running hkmsd (found through the configured
    /// socket, or --pid): seccomp mode and filters, no-new-privileges and capabilities of
    /// every thread, dumpable flag, core and memlock limits, locked memory. Exits 0 when
    /// hardened, 1 otherwise.
    #[arg(long)]
    check_hardening: bool,
    /// With --check-hardening: inspect this process instead of the socket's owner.
    #[arg(long, requires = "check_hardening")]
    pid: Option<u32>,
    /// With --check-hardening: print the report as JSON.
    #[arg(long, requires = "check_hardening")]
    json: bool,
    /// Read kernel log text on stdin (`journalctl -k | hkmsd --seccomp-log-calls`) and list
    /// the system calls seccomp logged for hkmsd in `[hardening] seccomp = "log"` mode, as
    /// `[seccomp.allow]` lines for the HSM profile of the vendor library that made them.
    #[arg(long)]
    seccomp_log_calls: bool,
    /// Keep running as root (capabilities are still dropped). Only for disposable test
    /// instances: in production start hkmsd as its service user or set [hardening] run_as.
    #[arg(
        long,
        env = "HKMSD_ALLOW_ROOT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    allow_root: bool,
}

/// Exit status of a configuration hkmsd refuses (EX_CONFIG of sysexits.h): systemd's
/// `RestartPreventExitStatus` can tell it from a crash.
const EXIT_CONFIG: u8 = 78;

/// Why hkmsd stopped: a configuration it refuses (with a stable code), or anything else.
enum Failure {
    Config { code: &'static str, message: String },
    Other(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Failure {
        Failure::Other(e)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    hkms::logging::init(&args.log, args.log_json);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config { code, message }) => {
            eprintln!("hkmsd: {message} [{code}]");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Other(e)) => {
            eprintln!("hkmsd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    if args.check_hardening {
        return Ok(check_hardening(args)?);
    }
    if args.seccomp_log_calls {
        return Ok(seccomp_log_calls()?);
    }
    let config = Config::load(&args.config).map_err(|e| Failure::Config {
        code: "ConfigInvalid",
        message: e.to_string(),
    })?;
    hkms::authn::peer::check_roles(&config.access).map_err(|e| Failure::Config {
        code: RoleConflict::CODE,
        message: format!("config file {}: {e}", args.config.display()),
    })?;
    Ok(serve(args, config)?)
}

fn serve(args: &Args, config: Config) -> Result<(), String> {
    // 1. Configuration (loaded by the caller), then identity: a root start switches to the
    //    service user before any store file is opened or any PKCS#11 library is loaded.
    //    Then no core dumps, not dumpable, no new privileges, no capabilities (before the
    //    store starts its threads).
    let identity =
        hardening::identity::settle(config.hardening.run_as.as_deref(), args.allow_root)?;
    if identity == hardening::identity::Identity::RootAllowed {
        tracing::warn!("running as root (--allow-root): for disposable test instances only");
    }
    tracing::info!(user = %identity, "identity settled");
    let extra = hardening::profile::extra_for_all(
        &config.hardening.profiles_dir,
        config.members.iter().map(|m| m.profile.as_str()),
    )?;
    let filter =
        hardening::seccomp::compile(hardening::seccomp::HKMSD, &extra, config.hardening.seccomp)?;
    let notifier = hardening::notify::Notifier::from_env()?;
    let memory = hardening::restrict_process(&config.hardening)?;

    // 2. Store, HSM libraries and sessions, socket: on a one-thread runtime that is shut
    //    down before lock-down, so that no thread outlives it.
    let startup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the start-up runtime: {e}"))?;
    let prepared = startup.block_on(async {
        let app = hkms::daemon::build(&config).await?;
        let listener = hkms::daemon::bind(&config)?
            .into_std()
            .map_err(|e| format!("cannot detach the socket: {e}"))?;
        // The TCP listener, if configured, is bound here too: after lock-down no socket
        // can be created, only connections accepted on sockets bound before.
        let tcp = hkms::daemon::bind_tcp(&config, &app)?;
        // So is the metrics and health endpoint (`[observability] listen`).
        let observability = hkms::metrics::hkmsd::bind(&config)?;
        Ok::<_, String>((app, listener, tcp, observability))
    });
    startup.shutdown_timeout(std::time::Duration::from_secs(5));
    let (app, listener, tcp, observability) = prepared?;

    // 3. Seccomp on every thread, before the serving runtime starts its threads.
    let summary = hardening::confine(&config.hardening, &filter, memory)?;
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

    // 4. The serving runtime.
    let runtime = config.runtime.build("hkmsd", hkms::runtime::Wakes::First)?;
    let result = runtime.block_on(async {
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| format!("cannot register the socket: {e}"))?;
        tracing::info!(socket = %config.listen.socket.display(), "listening");
        let notifier = std::sync::Arc::new(notifier);
        if let Some(every) = notifier.watchdog_interval() {
            let n = notifier.clone();
            // Keep-alives come from the serving runtime: a stuck runtime stops them and
            // systemd restarts hkmsd.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    n.notify("WATCHDOG=1");
                }
            });
        }
        tokio::spawn(ignore_sighup());
        hkms::metrics::hkmsd::start(
            app.clone(),
            observability,
            std::time::Duration::from_secs(config.observability.expiry_scan_interval_secs),
        );
        notifier.notify("READY=1\nSTATUS=serving");
        let served = hkms::daemon::serve(app, listener, tcp).await;
        notifier.notify("STOPPING=1");
        served
    });
    // An HSM call stuck in a blocking thread must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// Every hkmsd setting is fixed at start-up (the store, HSM sessions and socket are opened
/// before privileges are dropped), so SIGHUP does not reload; it must not end the daemon.
async fn ignore_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    if let Ok(mut hup) = signal(SignalKind::hangup()) {
        while hup.recv().await.is_some() {
            tracing::warn!("SIGHUP ignored: hkmsd reloads nothing; restart it to apply changes");
        }
    }
}

fn seccomp_log_calls() -> Result<(), String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let calls = hardening::seccomp::calls_in_kernel_log(&text, "hkmsd");
    if calls.is_empty() {
        println!("# no seccomp records of hkmsd in the input (audit type 1326)");
        return Ok(());
    }
    println!("# System calls seccomp logged for hkmsd. Add the ones the vendor library needs to");
    println!("# its profile, each with the reason, then set [hardening] seccomp = \"enforce\".");
    println!("[seccomp.allow]");
    for (name, count, probe) in calls {
        if probe {
            println!(
                "# {name}: {count} time(s), made by hkmsd's own start-up self-test; never add it"
            );
        } else {
            println!("{name} = \"\"  # {count} time(s): give the reason");
        }
    }
    Ok(())
}

fn check_hardening(args: &Args) -> Result<(), String> {
    let pid = match args.pid {
        Some(pid) => pid,
        None => {
            let config = Config::load(&args.config).map_err(|e| e.to_string())?;
            hardening::report::socket_owner(&config.listen.socket)?
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
