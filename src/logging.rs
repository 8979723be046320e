//! Log set-up shared by hkmsd and hkms-gateway: structured logs on stderr, never secrets.

/// Installs the global subscriber: `filter` is a tracing filter expression (falls back to
/// `info`), `json` selects JSON lines. Colours only on a terminal, so the journal and log
/// files get plain text.
pub fn init(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
