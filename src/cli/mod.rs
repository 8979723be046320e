//! Command-line logic shared by the `hkms` binary: commands that have grown beyond a few
//! lines live here, as clap subcommands with their handlers.

pub mod aap;
pub mod aap_quick;
pub mod access;
pub mod alias;
pub mod api_key;
pub mod asymmetric_cipher;
pub mod audit;
pub mod audit_text;
pub mod ca;
pub mod certify;
pub mod client_key;
pub mod client_key_new;
pub mod client_key_rotate;
pub mod data_io;
pub mod data_key_pair;
pub mod filename;
pub mod hsm;
pub mod instance;
pub mod jobs;
pub mod key;
pub mod key_args;
pub mod key_import;
pub mod key_show;
pub mod mac;
pub mod network_rule;
pub mod policy;
pub mod public_key;
pub mod resource;
pub mod secret;
pub mod secret_manage;
pub mod secret_policy;
pub mod signature;
pub mod symmetric;

/// Writes `text` and a newline to standard error. A closed standard error (`2>&-`, a
/// reader gone) loses the message but does not turn the command's failure into a panic.
pub fn err(text: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}

/// Writes `text` to standard output as it is. A reader that has gone away (`hkms ... |
/// head -1`) is not the command's failure: what it did not read is dropped and the
/// command's exit status stands, as for the results of `hkms` itself.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}
