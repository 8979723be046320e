//! hkmsd: the hkms daemon. Talks to the HSMs and the store; serves gRPC on a Unix socket.

use clap::Parser;
use hkms::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// The hkms daemon: keeps keys inside HSMs and serves key management and cryptography
/// over gRPC on a Unix socket.
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hkmsd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let config = Config::load(&args.config).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hkmsd")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let result = runtime.block_on(async {
        let app = hkms::daemon::build(&config).await?;
        let listener = hkms::daemon::bind(&config)?;
        tracing::info!(socket = %config.listen.socket.display(), "listening");
        hkms::daemon::serve(app, listener).await
    });
    // An HSM call stuck in a blocking thread must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
