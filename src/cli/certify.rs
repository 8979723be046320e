//! `hkms certify`: the command line of [`crate::certify`].

use crate::certify::{self, Options};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Long help of `hkms certify`.
pub const ABOUT: &str = "\
Check that an HSM does everything hkms relies on, and write a report.

Runs locally against a PKCS#11 library (no hkmsd needed): token and mechanism information,
login and a wrong PIN, sessions, AES key generation and every mode hkms uses, AES key wrap
with padding, the domain-key copy to a second token, wrap and unwrap templates, sensitive
and non-extractable keys (negative checks), RSA and EC keys with every signature and OAEP
scheme, HMAC, the random generator, concurrency, recovery of hkms's HSM pool after its
sessions are closed and after a logout, throughput per mechanism, and ML-DSA / ML-KEM when
the token lists them. Every value the token computes is checked with OpenSSL.

Each check passes, fails or is skipped with a reason. The report goes to OUT/report.json
(schema hkms-certify/1) and OUT/report.html; a summary table is printed, and a progress line
per check goes to stderr.

The token is left as it was found: keys are session objects, and the only token objects
(the domain-key copies) are named hkms-certify-<random> and destroyed at the end, which the
`cleanup` check verifies. PINs are read from files and never printed or stored. One wrong
PIN is tried (login.bad_pin), and only when the token does not report few attempts left.

Exit codes: 0 every check passed or was skipped; 1 a check failed; 2 usage or setup error
(library not loadable, token not found, PIN file unreadable, report not writable).";

/// Example of `hkms certify`.
pub const EXAMPLES: &str = "\
Example (two SoftHSM2 tokens, SO PIN of the first for the domain-key copy):
  hkms certify --module /usr/lib/softhsm/libsofthsm2.so --token-label hsm-a \\
      --pin-file pin-a --so-pin-file so-pin-a --second-token hsm-b \\
      --profile softhsm2 --out certify-report
The domain-key copy from SoftHSM2 to a Kryoptic token (which cannot give it itself):
  hkms certify --module /usr/lib/softhsm/libsofthsm2.so --token-label hsm-a \\
      --pin-file pin-a --so-pin-file so-pin-a --second-token kry-b \\
      --second-module /usr/local/lib/hkms/kryoptic/libkryoptic_pkcs11.so \\
      --second-pin-file pin-b --only domain.transfer --out transfer-report";

/// What follows the options in `hkms certify --help`: the check ids, and an example.
pub fn after_help() -> String {
    let ids: Vec<&str> = certify::CHECKS.iter().map(|(id, _)| *id).collect();
    let mut lines = vec![String::from(
        "Checks (ids for --only and [certify.expected_skip]):",
    )];
    let mut line = String::from(" ");
    for id in ids {
        if line.len() + id.len() > 88 {
            lines.push(std::mem::replace(&mut line, String::from(" ")));
        }
        line.push(' ');
        line.push_str(id);
    }
    lines.push(line);
    format!("{}\n\n{EXAMPLES}", lines.join("\n"))
}

#[derive(Debug, Args)]
pub struct CertifyArgs {
    /// PKCS#11 library of the HSM.
    #[arg(long)]
    pub module: PathBuf,
    /// Label of the token to certify.
    #[arg(long)]
    pub token_label: String,
    /// File holding the user PIN (first line).
    #[arg(long)]
    pub pin_file: PathBuf,
    /// File holding the security officer PIN of the token: needed for domain.transfer
    /// (the SO marks the transport key trusted).
    #[arg(long)]
    pub so_pin_file: Option<PathBuf>,
    /// Label of a second token that receives the domain-key copy (on --second-module).
    #[arg(long)]
    pub second_token: Option<String>,
    /// PKCS#11 library of the second token, when it is another implementation than
    /// --module's (a copy across two implementations, as in a mixed cluster). Default:
    /// --module.
    #[arg(long, requires = "second_token")]
    pub second_module: Option<PathBuf>,
    /// File holding the user PIN of the second token (default: --pin-file).
    #[arg(long, requires = "second_token")]
    pub second_pin_file: Option<PathBuf>,
    /// HSM profile (hsm-profiles/<NAME>.toml): its [certify.expected_skip] table marks
    /// skips as expected; other skips are warnings.
    #[arg(long)]
    pub profile: Option<String>,
    /// Directory of HSM profiles (built-in profiles are the fallback).
    #[arg(long, default_value = "/usr/share/hkms/hsm-profiles")]
    pub profiles_dir: PathBuf,
    /// Milliseconds each throughput figure is measured for.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60000))]
    pub throughput_ms: u64,
    /// Run only these checks (ids or groups such as `aes`, comma-separated); the others are
    /// reported as skipped. token.info, token.mechanisms, login.user and cleanup always run.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// An OpenSSL 3.5 (or later) command: ML-DSA signatures and ML-KEM encapsulations are
    /// then checked independently (the OpenSSL hkms links has neither).
    #[arg(long)]
    pub pqc_openssl: Option<PathBuf>,
    /// Directory for report.json and report.html (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs the checks, writes the report and prints the summary; the exit code says how it
/// went.
pub fn run(args: &CertifyArgs, json: bool) -> ExitCode {
    let unknown: Vec<&String> = args
        .only
        .iter()
        .filter(|o| {
            !certify::CHECKS
                .iter()
                .any(|(id, _)| id == o || id.starts_with(&format!("{o}.")))
        })
        .collect();
    if !unknown.is_empty() {
        super::err(&format!("hkms certify: --only names no check: {unknown:?}"));
        return ExitCode::from(2);
    }
    let opts = Options {
        module: args.module.clone(),
        token_label: args.token_label.clone(),
        pin_file: args.pin_file.clone(),
        so_pin_file: args.so_pin_file.clone(),
        second_token: args.second_token.clone(),
        second_module: args.second_module.clone(),
        second_pin_file: args.second_pin_file.clone(),
        profile: args.profile.clone(),
        profiles_dir: args.profiles_dir.clone(),
        throughput_time: Duration::from_millis(args.throughput_ms),
        only: args.only.clone(),
        pqc_openssl: args.pqc_openssl.clone(),
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        super::err(&format!(
            "hkms certify: cannot create {}: {e}",
            args.out.display()
        ));
        return ExitCode::from(2);
    }
    let report = match certify::run(opts) {
        Ok(r) => r,
        Err(e) => {
            super::err(&format!("hkms certify: {}", e.0));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = report.write(&args.out) {
        super::err(&format!(
            "hkms certify: cannot write the report in {}: {e}",
            args.out.display()
        ));
        return ExitCode::from(2);
    }
    if json {
        super::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ));
    } else {
        super::out(&format!(
            "{}report: {} and report.html\n",
            report.table(),
            args.out.join("report.json").display()
        ));
    }
    ExitCode::from(report.summary.exit_code)
}
