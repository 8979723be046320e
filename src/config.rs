//! hkmsd configuration: a TOML file (see `hsm-profiles/` and `scripts/hkmsd.example.toml`).
//!
//! PINs are never part of the configuration: each member names a file that holds its PIN.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Whole daemon configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Listen,
    pub store: StoreConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Process hardening: service user, seccomp mode, memory locking (`[hardening]`).
    #[serde(default)]
    pub hardening: crate::hardening::HardeningConfig,
    /// HSM members of the cluster; at least one.
    #[serde(rename = "member")]
    pub members: Vec<MemberConfig>,
    /// Who may administer the appliance and who may relay application requests.
    #[serde(default)]
    pub access: AccessConfig,
    /// Async worker threads (`[runtime]`).
    #[serde(default)]
    pub runtime: crate::runtime::RuntimeConfig,
    /// The audit trail (`[audit]`).
    #[serde(default)]
    pub audit: crate::audit::config::AuditConfig,
    /// The metrics and health endpoint and the credential expiry scan (`[observability]`).
    #[serde(default)]
    pub observability: crate::metrics::config::DaemonObservability,
}

/// Local identities allowed on the Unix socket, checked with the peer's credentials
/// (SO_PEERCRED). Everyone else is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// User ids that may administer the appliance (init, keys, access control).
    #[serde(default = "default_operator_uids")]
    pub operator_uids: Vec<u32>,
    /// Group ids whose members may administer the appliance (primary group of the peer).
    #[serde(default)]
    pub operator_gids: Vec<u32>,
    /// User ids of hkms-gateway processes: the only peers that may relay application
    /// requests and assert their source address.
    #[serde(default)]
    pub gateway_uids: Vec<u32>,
}

fn default_operator_uids() -> Vec<u32> {
    vec![0]
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            operator_uids: default_operator_uids(),
            operator_gids: Vec::new(),
            gateway_uids: Vec::new(),
        }
    }
}

/// Where hkmsd accepts gRPC connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Unix socket for local operators and a co-located gateway.
    pub socket: PathBuf,
    /// Permission bits of the socket file (octal in the file, e.g. 0o660).
    #[serde(default = "default_socket_mode")]
    pub socket_mode: u32,
    /// Optional TCP listener ("address:port") for applications that call the gRPC API
    /// directly with mutual TLS (their ClientKey certificate) and for gateways on other
    /// hosts (a gateway client certificate of the instance CA). Absent: no TCP listener.
    #[serde(default)]
    pub tcp: Option<std::net::SocketAddr>,
    /// PEM certificate chain hkmsd presents on the TCP listener.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that gateway client certificates must chain to (the instance CA).
    /// Absent: no gateway is accepted over TCP.
    #[serde(default)]
    pub gateway_ca: Option<PathBuf>,
}

fn default_socket_mode() -> u32 {
    0o660
}

/// The embedded sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub path: PathBuf,
}

/// Request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest plaintext accepted by Encrypt (bytes).
    #[serde(default = "default_max_plaintext")]
    pub max_plaintext_bytes: usize,
    /// Largest additional authenticated data (bytes).
    #[serde(default = "default_max_aad")]
    pub max_aad_bytes: usize,
    /// Seconds a request waits for an HSM session before it fails with HsmUnavailable.
    #[serde(default = "default_session_wait")]
    pub session_wait_secs: u64,
    /// Deadline of one HSM operation (milliseconds). A member that misses it is taken out
    /// of rotation and the request is retried on another member.
    #[serde(default = "default_hsm_call_timeout")]
    pub hsm_call_timeout_ms: u64,
    /// How often members that are down are probed (milliseconds).
    #[serde(default = "default_probe_interval")]
    pub probe_interval_ms: u64,
    /// Transient failures in a row after which a member is taken out of rotation.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Accept an Iv chosen by the caller for AES_GCM (instance API Encrypt). Off: hkms
    /// makes a fresh random IV for every encryption. On only for old clients that send
    /// their own: a caller that repeats an IV under a key exposes the XOR of the two
    /// plaintexts and can forge AES-GCM tags under that key.
    #[serde(default)]
    pub allow_caller_gcm_iv: bool,
    /// Decrypt AES-GCM ciphertexts made by key versions of earlier releases with their old
    /// material (which also serves AES-CBC, so a caller allowed AES_CBC on such a key can
    /// read and forge them). Turn off once they are re-encrypted.
    #[serde(default = "default_true")]
    pub legacy_gcm_decrypt: bool,
    /// How often hkmsd runs the jobs that are due (automatic rotation, deletion at the end
    /// of a pending window, expiry of imported material), in seconds, at least 1.
    #[serde(default = "default_jobs_interval")]
    pub jobs_interval_secs: u64,
}

fn default_jobs_interval() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

fn default_hsm_call_timeout() -> u64 {
    2000
}
fn default_probe_interval() -> u64 {
    2000
}
fn default_breaker_failures() -> u32 {
    3
}

fn default_max_plaintext() -> usize {
    2 * 1024 * 1024
}
fn default_max_aad() -> usize {
    8 * 1024
}
fn default_session_wait() -> u64 {
    5
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_plaintext_bytes: default_max_plaintext(),
            max_aad_bytes: default_max_aad(),
            session_wait_secs: default_session_wait(),
            hsm_call_timeout_ms: default_hsm_call_timeout(),
            probe_interval_ms: default_probe_interval(),
            breaker_failures: default_breaker_failures(),
            allow_caller_gcm_iv: false,
            legacy_gcm_decrypt: true,
            jobs_interval_secs: default_jobs_interval(),
        }
    }
}

/// One HSM of the cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Name used in logs and status output.
    pub name: String,
    /// Path of the PKCS#11 library. Members with the same path share one loaded library.
    pub module: PathBuf,
    /// Token label; give this or `token_serial`.
    pub token_label: Option<String>,
    /// Token serial number; give this or `token_label`.
    pub token_serial: Option<String>,
    /// File that holds the user PIN (first line; mode 0400 or 0600 recommended).
    pub pin_file: PathBuf,
    /// HSM profile name (a file `hsm-profiles/<name>.toml`), for documentation and quirks.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Most sessions opened on this member at once.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Run this member's calls on the async workers instead of handing each to a blocking
    /// thread. Unset: as the member's profile says (`[calls] inline`).
    #[serde(default)]
    pub inline_calls: Option<bool>,
}

fn default_profile() -> String {
    "softhsm2".into()
}
fn default_max_sessions() -> usize {
    8
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.members.is_empty() {
            return Err("at least one [[member]] is required".into());
        }
        let mut names = std::collections::HashSet::new();
        for m in &self.members {
            if !names.insert(&m.name) {
                return Err(format!("member name {:?} is used twice", m.name));
            }
            match (&m.token_label, &m.token_serial) {
                (None, None) => {
                    return Err(format!(
                        "member {:?}: set token_label or token_serial",
                        m.name
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "member {:?}: set only one of token_label and token_serial",
                        m.name
                    ))
                }
                _ => {}
            }
            if m.max_sessions == 0 || m.max_sessions > 1024 {
                return Err(format!("member {:?}: max_sessions must be 1..1024", m.name));
            }
        }
        if self.limits.hsm_call_timeout_ms < 10 || self.limits.probe_interval_ms < 10 {
            return Err(
                "limits.hsm_call_timeout_ms and probe_interval_ms must be at least 10".into(),
            );
        }
        if self.limits.max_plaintext_bytes == 0 {
            return Err("limits.max_plaintext_bytes must be positive".into());
        }
        let l = &self.listen;
        match (l.tcp, &l.tls_cert, &l.tls_key) {
            (Some(_), Some(_), Some(_)) => {}
            (Some(_), _, _) => {
                return Err("listen.tcp needs listen.tls_cert and listen.tls_key".into())
            }
            (None, None, None) if l.gateway_ca.is_none() => {}
            (None, ..) => {
                return Err(
                    "listen.tls_cert, tls_key and gateway_ca apply only with listen.tcp".into(),
                )
            }
        }
        Ok(())
    }
}

/// Checks one member's settings (also used by `hkms hsm add`).
pub fn validate_member(m: &MemberConfig) -> Result<(), String> {
    if m.name.is_empty() || m.name.len() > 64 {
        return Err("member name must be 1..64 characters".into());
    }
    match (&m.token_label, &m.token_serial) {
        (None, None) => Err(format!(
            "member {:?}: set token_label or token_serial",
            m.name
        )),
        (Some(_), Some(_)) => Err(format!(
            "member {:?}: set only one of token_label and token_serial",
            m.name
        )),
        _ if m.max_sessions == 0 || m.max_sessions > 1024 => {
            Err(format!("member {:?}: max_sessions must be 1..1024", m.name))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    const BASE: &str = r#"
        [listen]
        socket = "/run/hkms/hkmsd.sock"
        [store]
        path = "/var/lib/hkms/store"
    "#;

    #[test]
    fn example_config_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/hkmsd.example.toml"
        ))
        .unwrap();
        let c = parse(&text).unwrap();
        assert_eq!(c.members.len(), 2);
        assert_eq!(c.listen.socket_mode, 0o660);
    }

    #[test]
    fn member_needs_exactly_one_token_selector() {
        let none = format!("{BASE}\n[[member]]\nname='a'\nmodule='/x.so'\npin_file='/p'\n");
        assert!(parse(&none)
            .unwrap_err()
            .contains("token_label or token_serial"));
        let both = format!(
            "{BASE}\n[[member]]\nname='a'\nmodule='/x.so'\npin_file='/p'\ntoken_label='a'\ntoken_serial='1'\n"
        );
        assert!(parse(&both).unwrap_err().contains("only one"));
    }

    #[test]
    fn duplicate_member_names_are_refused() {
        let m = "[[member]]\nname='a'\nmodule='/x.so'\npin_file='/p'\ntoken_label='a'\n";
        let text = format!("{BASE}\n{m}{m}");
        assert!(parse(&text).unwrap_err().contains("used twice"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = format!("{BASE}\nbogus = 1\n");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn access_defaults_to_root_operator_and_no_gateway() {
        let m = "[[member]]\nname='a'\nmodule='/x.so'\npin_file='/p'\ntoken_label='a'\n";
        let c = parse(&format!("{BASE}\n{m}")).unwrap();
        assert_eq!(c.access.operator_uids, [0]);
        assert!(c.access.gateway_uids.is_empty());
        let c = parse(&format!(
            "{BASE}\n{m}[access]\noperator_uids = [1000]\noperator_gids = [990]\ngateway_uids = [991]\n"
        ))
        .unwrap();
        assert_eq!(c.access.operator_uids, [1000]);
        assert_eq!(c.access.operator_gids, [990]);
        assert_eq!(c.access.gateway_uids, [991]);
    }

    #[test]
    fn tcp_listener_is_off_by_default_and_needs_its_certificate() {
        let m = "[[member]]\nname='a'\nmodule='/x.so'\npin_file='/p'\ntoken_label='a'\n";
        let c = parse(&format!("{BASE}\n{m}")).unwrap();
        assert!(c.listen.tcp.is_none());
        let listen = "[listen]\nsocket = '/run/hkms/hkmsd.sock'\n";
        let store = "[store]\npath = '/var/lib/hkms/store'\n";
        let with = |extra: &str| parse(&format!("{listen}{extra}{store}{m}"));
        let c = with("tcp = '0.0.0.0:7443'\ntls_cert = '/c.pem'\ntls_key = '/k.pem'\n").unwrap();
        assert_eq!(c.listen.tcp.unwrap().port(), 7443);
        assert!(c.listen.gateway_ca.is_none());
        assert!(with("tcp = '0.0.0.0:7443'\ntls_cert = '/c.pem'\n")
            .unwrap_err()
            .contains("tls_key"));
        assert!(with("gateway_ca = '/ca.pem'\n")
            .unwrap_err()
            .contains("only with listen.tcp"));
        assert!(with("tcp = 'not an address'\n").is_err());
    }

    #[test]
    fn no_members_is_refused() {
        assert!(parse(BASE).is_err());
    }
}
