//! Kryoptic tokens for tests: the second PKCS#11 implementation, built and installed by
//! scripts/install-kryoptic.sh. Kryoptic reads the file named by `KRYOPTIC_CONF`: one
//! `[[slots]]` entry per token, each with its own SQLite database. Tokens are initialised
//! with OpenSC's pkcs11-tool (SO PIN, then the user PIN), as an operator would.
#![allow(dead_code)]

use crate::common::{SO_PIN, USER_PIN};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/install-kryoptic.sh installs the module.
pub const KRYOPTIC_MODULE: &str = "/usr/local/lib/hkms/kryoptic/libkryoptic_pkcs11.so";
/// OpenSSL 3.5's command, installed beside the module (ML-DSA and ML-KEM).
pub const OPENSSL35: &str = "/usr/local/lib/hkms/kryoptic/openssl";

/// The Kryoptic module; panics with the way to get it when it is missing.
pub fn module() -> PathBuf {
    let p = PathBuf::from(
        std::env::var("HKMS_KRYOPTIC_MODULE").unwrap_or_else(|_| KRYOPTIC_MODULE.into()),
    );
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-kryoptic.sh",
        p.display()
    );
    p
}

/// Kryoptic tokens under one directory, with their configuration file.
pub struct KryopticTokens {
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
}

impl KryopticTokens {
    /// Creates `labels` as fresh tokens (SO PIN and user PIN of tests/common).
    pub fn create(labels: &[&str]) -> KryopticTokens {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("kryoptic.conf");
        let mut text = String::new();
        for (i, _) in labels.iter().enumerate() {
            text.push_str(&format!(
                "[[slots]]\nslot = {}\ndbtype = \"sqlite\"\ndbargs = {:?}\n",
                i + 1,
                dir.path().join(format!("token-{}.sql", i + 1))
            ));
        }
        std::fs::write(&conf, text).unwrap();
        let tokens = KryopticTokens { dir, conf };
        for (i, label) in labels.iter().enumerate() {
            let slot = (i + 1).to_string();
            tokens.tool(&[
                "--slot",
                &slot,
                "--init-token",
                "--label",
                label,
                "--so-pin",
                SO_PIN,
            ]);
            tokens.tool(&[
                "--slot",
                &slot,
                "--login",
                "--login-type",
                "so",
                "--so-pin",
                SO_PIN,
                "--init-pin",
                "--new-pin",
                USER_PIN,
            ]);
        }
        tokens
    }

    /// Runs pkcs11-tool on these tokens; panics with its output on failure.
    pub fn tool(&self, args: &[&str]) -> String {
        let out = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module())
            .args(args)
            .env("KRYOPTIC_CONF", &self.conf)
            .output()
            .expect("pkcs11-tool is installed (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An empty directory of HSM profiles: a member with `profile = "kryoptic"` then reads
    /// the profile shipped in hsm-profiles/kryoptic.toml (built into hkmsd), not a file an
    /// operator's machine may hold.
    pub fn profiles_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("profiles");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `[hardening]` naming [`KryopticTokens::profiles_dir`], for `Daemon::start_config`.
    pub fn hardening(&self) -> String {
        format!("[hardening]\nprofiles_dir = {:?}\n", self.profiles_dir())
    }
}

/// A path in `dir`, as text.
pub fn path_str(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
