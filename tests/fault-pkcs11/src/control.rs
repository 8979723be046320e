//! The control-file format, plus helpers for tests that drive the module.
//!
//! This part is plain safe Rust: the module uses it to parse
//! `$HKMS_FAULT_DIR/<label>.fault`, and tests can use it (through the rlib)
//! to write those files and to find the built module.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cryptoki_sys::{CKR_DEVICE_ERROR, CK_MECHANISM_TYPE, CK_RV};

use crate::mech::{mechanism_name, parse_mechanism};
use crate::rv::{parse_rv, rv_name};

/// Environment variable naming the control directory.
pub const ENV_FAULT_DIR: &str = "HKMS_FAULT_DIR";
/// Environment variable overriding the path of the real PKCS#11 module.
pub const ENV_REAL_MODULE: &str = "HKMS_FAULT_REAL_MODULE";
/// Environment variable: when set to a non-empty value other than `0`, the
/// module logs injected faults and recoveries to stderr.
pub const ENV_LOG: &str = "HKMS_FAULT_LOG";
/// Environment variable read by [`locate_module`]: explicit path of the
/// built fault module (for tests).
pub const ENV_MODULE: &str = "HKMS_FAULT_MODULE";
/// Default real module (Debian/Ubuntu SoftHSM2 package).
pub const DEFAULT_REAL_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// File name of the built module.
pub const MODULE_FILE_NAME: &str = "libhkms_fault_pkcs11.so";

/// Every function of the PKCS#11 v2.40 function list, in list order.
pub const FUNCTION_NAMES: &[&str] = &[
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
];

/// Canonical spelling of a function name: accepts `C_Encrypt`, `Encrypt`,
/// `c_encrypt`, ...; `None` if it is not a v2.40 function.
pub fn canonical_function(name: &str) -> Option<&'static str> {
    let t = name.trim();
    let bare = t
        .strip_prefix("C_")
        .or_else(|| t.strip_prefix("c_"))
        .unwrap_or(t);
    FUNCTION_NAMES
        .iter()
        .copied()
        .find(|f| f[2..].eq_ignore_ascii_case(bare))
}

/// What the module does with calls for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward normally (after `latency_ms`, if any).
    #[default]
    Off,
    /// Return `rv` without forwarding.
    Error,
    /// Block the caller until the mode changes.
    Hang,
    /// Every call returns `CKR_DEVICE_ERROR`; leaving this mode resets the
    /// token (sessions closed, login lost).
    Dead,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Error => "error",
            Mode::Hang => "hang",
            Mode::Dead => "dead",
        }
    }
}

/// The parsed content of one control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// The fault mode.
    pub mode: Mode,
    /// Return value injected in `error` mode (default `CKR_DEVICE_ERROR`).
    pub rv: CK_RV,
    /// Only these functions (canonical `C_*` names) are affected; `None`
    /// means every function that concerns the token.
    pub functions: Option<Vec<&'static str>>,
    /// Sleep added before each affected call, in every mode.
    pub latency_ms: u64,
    /// In `error` mode: only the next `count` affected calls fail.
    pub count: Option<u64>,
    /// Mechanisms the token does not have, in every mode: left out of
    /// `C_GetMechanismList`, `CKR_MECHANISM_INVALID` from `C_GetMechanismInfo` and from
    /// every function given one of them (`C_SignInit`, `C_GenerateKeyPair`, ...).
    pub hide_mechanisms: Vec<CK_MECHANISM_TYPE>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            mode: Mode::Off,
            rv: CKR_DEVICE_ERROR,
            functions: None,
            latency_ms: 0,
            count: None,
            hide_mechanisms: Vec::new(),
        }
    }
}

/// A control file that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl FaultSpec {
    /// No fault.
    pub fn off() -> Self {
        FaultSpec::default()
    }

    /// `mode = error` with the given return value.
    pub fn error(rv: CK_RV) -> Self {
        FaultSpec {
            mode: Mode::Error,
            rv,
            ..FaultSpec::default()
        }
    }

    /// `mode = hang`.
    pub fn hang() -> Self {
        FaultSpec {
            mode: Mode::Hang,
            ..FaultSpec::default()
        }
    }

    /// `mode = dead`.
    pub fn dead() -> Self {
        FaultSpec {
            mode: Mode::Dead,
            ..FaultSpec::default()
        }
    }

    /// Restricts the fault to these functions (names as accepted by
    /// [`canonical_function`]).
    ///
    /// # Panics
    /// If a name is not a PKCS#11 v2.40 function.
    pub fn functions(mut self, names: &[&str]) -> Self {
        let list = names
            .iter()
            .map(|n| canonical_function(n).unwrap_or_else(|| panic!("unknown function {n:?}")))
            .collect();
        self.functions = Some(list);
        self
    }

    /// Adds `latency_ms`.
    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = ms;
        self
    }

    /// Adds `count`.
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Adds `hide_mechanisms` (`CKM_*` values).
    pub fn hide_mechanisms(mut self, mechanisms: &[CK_MECHANISM_TYPE]) -> Self {
        self.hide_mechanisms = mechanisms.to_vec();
        self
    }

    /// Whether the token is made to lack `mechanism`.
    pub fn hides(&self, mechanism: CK_MECHANISM_TYPE) -> bool {
        self.hide_mechanisms.contains(&mechanism)
    }

    /// Whether `function` (a canonical name) is subject to this spec's
    /// `functions` filter.
    pub fn applies_to(&self, function: &str) -> bool {
        match &self.functions {
            None => true,
            Some(list) => list.contains(&function),
        }
    }

    /// Parses the `key = value` format (see the crate README).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut spec = FaultSpec::default();
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx + 1;
            let err = |message: String| ParseError {
                line: line_no,
                message,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(format!("expected `key = value`, got {line:?}")))?;
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            match key.as_str() {
                "mode" => {
                    spec.mode = match value.to_ascii_lowercase().as_str() {
                        "off" => Mode::Off,
                        "error" => Mode::Error,
                        "hang" => Mode::Hang,
                        "dead" => Mode::Dead,
                        other => return Err(err(format!("unknown mode {other:?}"))),
                    }
                }
                "rv" => {
                    spec.rv = parse_rv(value)
                        .ok_or_else(|| err(format!("unknown return value {value:?}")))?
                }
                "functions" => {
                    let mut list = Vec::new();
                    for name in value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                        list.push(
                            canonical_function(name)
                                .ok_or_else(|| err(format!("unknown function {name:?}")))?,
                        );
                    }
                    spec.functions = Some(list);
                }
                "latency_ms" => {
                    spec.latency_ms = value
                        .parse()
                        .map_err(|_| err(format!("bad latency_ms {value:?}")))?
                }
                "count" => {
                    spec.count = Some(
                        value
                            .parse()
                            .map_err(|_| err(format!("bad count {value:?}")))?,
                    )
                }
                "hide_mechanisms" => {
                    let mut list = Vec::new();
                    for name in value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                        let m = parse_mechanism(name)
                            .ok_or_else(|| err(format!("unknown mechanism {name:?}")))?;
                        if !list.contains(&m) {
                            list.push(m);
                        }
                    }
                    spec.hide_mechanisms = list;
                }
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        Ok(spec)
    }

    /// Renders the spec in the control-file format ([`FaultSpec::parse`]
    /// reads it back).
    pub fn render(&self) -> String {
        let mut out = format!("mode = {}\n", self.mode.as_str());
        if self.mode == Mode::Error {
            out.push_str(&format!("rv = {}\n", rv_name(self.rv)));
        }
        if let Some(list) = &self.functions {
            out.push_str(&format!("functions = {}\n", list.join(", ")));
        }
        if self.latency_ms != 0 {
            out.push_str(&format!("latency_ms = {}\n", self.latency_ms));
        }
        if let Some(n) = self.count {
            out.push_str(&format!("count = {n}\n"));
        }
        if !self.hide_mechanisms.is_empty() {
            let names: Vec<String> = self
                .hide_mechanisms
                .iter()
                .map(|&m| mechanism_name(m))
                .collect();
            out.push_str(&format!("hide_mechanisms = {}\n", names.join(", ")));
        }
        out
    }
}

/// File-name form of a token label: `/` and NUL become `_`.
pub fn label_file_stem(label: &str) -> String {
    label
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect()
}

/// Path of the control file for the token labelled `label`.
pub fn fault_file(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{}.fault", label_file_stem(label)))
}

/// Writes the control file for `label` atomically (temporary file + rename),
/// so the module never sees a half-written file.
pub fn write_fault(dir: &Path, label: &str, spec: &FaultSpec) -> io::Result<()> {
    write_fault_text(dir, label, &spec.render())
}

/// Like [`write_fault`] with raw file content.
pub fn write_fault_text(dir: &Path, label: &str, text: &str) -> io::Result<()> {
    let target = fault_file(dir, label);
    let tmp = dir.join(format!(
        ".{}.fault.tmp{}",
        label_file_stem(label),
        std::process::id()
    ));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &target)
}

/// Removes the control file for `label` (no fault); absent is fine.
pub fn clear_fault(dir: &Path, label: &str) -> io::Result<()> {
    match fs::remove_file(fault_file(dir, label)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Best-effort search for the built module, for tests.
///
/// Order: `$HKMS_FAULT_MODULE` if set; then, relative to the directory
/// `<dir>` of the running executable (cargo puts test executables in
/// `<target>/<profile>/deps/`, binaries in `<target>/<profile>/`):
/// `<dir>`, `<dir>/deps`, `<dir>/..`; then `$CARGO_TARGET_DIR/debug/deps`
/// and `$CARGO_TARGET_DIR/debug`. Returns the first file that exists.
///
/// `deps/` comes first on purpose: `cargo test` rebuilds
/// `<target>/<profile>/deps/libhkms_fault_pkcs11.so` but only `cargo build`
/// refreshes the copy in `<target>/<profile>/`, which can be stale.
pub fn locate_module() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ENV_MODULE).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join(MODULE_FILE_NAME));
        candidates.push(dir.join("deps").join(MODULE_FILE_NAME));
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join(MODULE_FILE_NAME));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let debug = PathBuf::from(t).join("debug");
        candidates.push(debug.join("deps").join(MODULE_FILE_NAME));
        candidates.push(debug.join(MODULE_FILE_NAME));
    }
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::{CKR_GENERAL_ERROR, CKR_SESSION_HANDLE_INVALID};

    #[test]
    fn parse_full() {
        let spec = FaultSpec::parse(
            "# comment\nmode = error\nrv = CKR_GENERAL_ERROR # trailing\n\
             functions = C_Encrypt, EncryptInit\nlatency_ms = 2\ncount = 3\n",
        )
        .unwrap();
        assert_eq!(spec.mode, Mode::Error);
        assert_eq!(spec.rv, CKR_GENERAL_ERROR);
        assert_eq!(
            spec.functions.as_deref(),
            Some(&["C_Encrypt", "C_EncryptInit"][..])
        );
        assert_eq!(spec.latency_ms, 2);
        assert_eq!(spec.count, Some(3));
        assert!(spec.applies_to("C_Encrypt"));
        assert!(!spec.applies_to("C_Decrypt"));
    }

    #[test]
    fn parse_defaults_and_numbers() {
        assert_eq!(FaultSpec::parse("").unwrap(), FaultSpec::off());
        let s = FaultSpec::parse("mode=error").unwrap();
        assert_eq!(s.rv, CKR_DEVICE_ERROR);
        assert_eq!(FaultSpec::parse("rv = 0xB3").unwrap().rv, 0xB3);
        assert_eq!(FaultSpec::parse("rv = 179").unwrap().rv, 179);
        assert_eq!(
            FaultSpec::parse("rv = session_handle_invalid").unwrap().rv,
            CKR_SESSION_HANDLE_INVALID
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(FaultSpec::parse("mode = broken").unwrap_err().line, 1);
        assert_eq!(FaultSpec::parse("\nrv = CKR_NOPE").unwrap_err().line, 2);
        assert!(FaultSpec::parse("functions = C_Frobnicate").is_err());
        assert!(FaultSpec::parse("colour = red").is_err());
        assert!(FaultSpec::parse("mode").is_err());
        assert!(FaultSpec::parse("count = -1").is_err());
    }

    #[test]
    fn render_round_trip() {
        let spec = FaultSpec::error(CKR_GENERAL_ERROR)
            .functions(&["Encrypt", "C_Sign"])
            .latency_ms(5)
            .count(2);
        assert_eq!(FaultSpec::parse(&spec.render()).unwrap(), spec);
        let hidden = FaultSpec::off().hide_mechanisms(&[cryptoki_sys::CKM_ECDSA, 0x8000_0001]);
        assert_eq!(
            hidden.render(),
            "mode = off\nhide_mechanisms = CKM_ECDSA, 0x80000001\n"
        );
        assert_eq!(FaultSpec::parse(&hidden.render()).unwrap(), hidden);
        for s in [FaultSpec::off(), FaultSpec::hang(), FaultSpec::dead()] {
            assert_eq!(FaultSpec::parse(&s.render()).unwrap(), s);
        }
    }

    #[test]
    fn parse_hide_mechanisms() {
        use cryptoki_sys::{CKM_ECDSA, CKM_RSA_PKCS_PSS, CKM_SHA256, CKM_SHA256_HMAC};
        let spec = FaultSpec::parse("hide_mechanisms = CKM_ECDSA, CKM_RSA_PKCS_PSS\n").unwrap();
        assert_eq!(spec.mode, Mode::Off);
        assert_eq!(spec.hide_mechanisms, [CKM_ECDSA, CKM_RSA_PKCS_PSS]);
        assert!(spec.hides(CKM_ECDSA));
        assert!(!spec.hides(CKM_SHA256_HMAC));
        // Names without the prefix, any case, numbers; duplicates count once.
        let spec =
            FaultSpec::parse("mode = error\nHIDE_MECHANISMS = ecdsa 0x250,0x1041\t593 # x\n")
                .unwrap();
        assert_eq!(spec.mode, Mode::Error);
        assert_eq!(
            spec.hide_mechanisms,
            [CKM_ECDSA, CKM_SHA256, CKM_SHA256_HMAC]
        );
        // An empty list hides nothing.
        assert!(FaultSpec::parse("hide_mechanisms =")
            .unwrap()
            .hide_mechanisms
            .is_empty());
        let e = FaultSpec::parse("mode = off\nhide_mechanisms = CKM_ECDSA, CKM_NOPE").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("CKM_NOPE"), "{e}");
        assert!(FaultSpec::parse("hide_mechanisms = 0xZZ").is_err());
        assert!(FaultSpec::parse("hide_mechanisms = -1").is_err());
    }

    #[test]
    fn function_names() {
        assert_eq!(FUNCTION_NAMES.len(), 68);
        assert_eq!(canonical_function("c_generatekey"), Some("C_GenerateKey"));
        assert_eq!(canonical_function("Nope"), None);
    }

    #[test]
    fn label_stems() {
        assert_eq!(label_file_stem("a/b"), "a_b");
        assert_eq!(
            fault_file(Path::new("/x"), "A"),
            PathBuf::from("/x/A.fault")
        );
    }
}
