//! The virtual environment of the official Python SDK and of Alibaba's Secrets Manager
//! Client for Python, installed by `scripts/install-sdk-test-deps.sh` when missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn venv_dir() -> PathBuf {
    std::env::var_os("HKMS_SDK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/hkms/sdk-venv")
        })
}

/// What the environment must import: the SDK and the Secrets Manager Client.
const IMPORTS: &str = "import sdk.client, openapi.models, \
    alibaba_cloud_secretsmanager_client.secret_manager_cache_client_builder";

/// The SDK's Python, installing it first when needed. `None` only when this host cannot
/// create a Python virtual environment at all.
pub fn sdk_python() -> Option<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let ready = |p: &PathBuf| {
        Command::new(p)
            .args(["-c", IMPORTS])
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
        // CI installs python3-venv (scripts/install-deps.sh): there, a missing venv module
        // is a broken set-up, not a reason to skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with the venv module is missing, so the SDK tests cannot run"
        );
        eprintln!("SKIPPED: python3 with the venv module is not available, so the SDK cannot be installed");
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/install-sdk-test-deps.sh"
    );
    let out = Command::new(script).arg(&venv).output().unwrap();
    assert!(
        out.status.success(),
        "installing the SDK failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ready(&python), "the SDK does not import after installation");
    Some(python)
}
