//! Python virtual environments of the official client SDKs and test tools, each installed
//! by its script in `scripts/` when missing and cached under `~/.cache/hkms/`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One virtual environment: where it lives, what it must import, what installs it.
pub struct Venv {
    /// Environment variable that moves it elsewhere.
    pub env_var: &'static str,
    /// Its directory under `~/.cache/hkms/`.
    pub cache_name: &'static str,
    /// A Python statement that succeeds once it is complete.
    pub imports: &'static str,
    /// The script (under `scripts/`) that installs it, given its directory.
    pub installer: &'static str,
    /// What it holds, for messages.
    pub what: &'static str,
}

/// The official Python SDK and Alibaba's Secrets Manager Client for Python.
pub const SDK: Venv = Venv {
    env_var: "HKMS_SDK_VENV",
    cache_name: "sdk-venv",
    imports: "import sdk.client, openapi.models, \
        alibaba_cloud_secretsmanager_client.secret_manager_cache_client_builder",
    installer: "install-sdk-test-deps.sh",
    what: "the SDK",
};

impl Venv {
    fn dir(&self) -> PathBuf {
        std::env::var_os(self.env_var)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/hkms")
                    .join(self.cache_name)
            })
    }

    /// Its Python, installing it first when needed. `None` only when this host cannot
    /// create a Python virtual environment at all (never on CI).
    pub fn python(&self) -> Option<PathBuf> {
        let venv = self.dir();
        let python = venv.join("bin/python");
        let ready = |p: &PathBuf| {
            Command::new(p)
                .args(["-c", self.imports])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if ready(&python) {
            return Some(python);
        }
        let venv_ok = Command::new("python3")
            .args(["-m", "venv", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !venv_ok {
            // CI installs python3-venv (scripts/install-deps.sh): there, a missing venv
            // module is a broken set-up, not a reason to skip.
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 with the venv module is missing, so tests of {} cannot run",
                self.what
            );
            eprintln!(
                "SKIPPED: python3 with the venv module is not available, so {} cannot be installed",
                self.what
            );
            return None;
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(self.installer);
        let out = Command::new(script).arg(&venv).output().unwrap();
        assert!(
            out.status.success(),
            "installing {} failed:\n{}{}",
            self.what,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            ready(&python),
            "{} does not import after installation",
            self.what
        );
        Some(python)
    }
}

/// The SDK's Python (see [`SDK`]).
pub fn sdk_python() -> Option<PathBuf> {
    SDK.python()
}
