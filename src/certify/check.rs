//! One check's verdict, the failure type checks raise with `?`, and the recorder that runs
//! checks in order, times them and prints a progress line for each.

use super::catalog::{title, Outcome};
use crate::hsm::HsmError;
use cryptoki::error::{Error as CkError, RvError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Measured figures of one check, by name (units in the name: `_ms`, `_ops_per_s`...).
pub type Figures = BTreeMap<String, f64>;

/// What a check found.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub result: Outcome,
    pub reason: String,
    /// The PKCS#11 return code that decided the verdict, as a `CKR_*` name.
    pub rv: Option<String>,
    pub figures: Figures,
}

impl Verdict {
    fn new(result: Outcome, reason: impl Into<String>) -> Verdict {
        Verdict {
            result,
            reason: reason.into(),
            rv: None,
            figures: Figures::new(),
        }
    }

    pub fn pass(reason: impl Into<String>) -> Verdict {
        Verdict::new(Outcome::Pass, reason)
    }

    pub fn skip(reason: impl Into<String>) -> Verdict {
        Verdict::new(Outcome::Skip, reason)
    }

    pub fn fail(reason: impl Into<String>) -> Verdict {
        Verdict::new(Outcome::Fail, reason)
    }

    pub fn rv(mut self, rv: Option<RvError>) -> Verdict {
        self.rv = rv.map(rv_name);
        self
    }

    /// Adds a measured figure (kept to three decimals).
    pub fn figure(mut self, name: &str, value: f64) -> Verdict {
        self.figures
            .insert(name.to_owned(), (value * 1000.0).round() / 1000.0);
        self
    }

    pub fn figures(self, figures: Figures) -> Verdict {
        figures.iter().fold(self, |v, (k, x)| v.figure(k, *x))
    }
}

/// A check that could not go on: its verdict (a failure, or a skip when a prerequisite is
/// missing). Raised with `?` from cryptoki and HSM errors, which keep their return code.
#[derive(Debug)]
pub struct Stop(pub Verdict);

impl From<CkError> for Stop {
    fn from(e: CkError) -> Stop {
        Stop(ck_fail("", e))
    }
}

impl From<HsmError> for Stop {
    fn from(e: HsmError) -> Stop {
        let rv = e.rv();
        Stop(Verdict::fail(e.to_string()).rv(rv))
    }
}

impl From<openssl::error::ErrorStack> for Stop {
    fn from(e: openssl::error::ErrorStack) -> Stop {
        Stop(Verdict::fail(format!(
            "OpenSSL (the independent check) failed: {e}"
        )))
    }
}

/// A failed verdict for a cryptoki error, naming the call and its return code.
pub fn ck_fail(during: &str, e: CkError) -> Verdict {
    let prefix = if during.is_empty() {
        String::new()
    } else {
        format!("{during}: ")
    };
    match e {
        CkError::Pkcs11(rv, function) => {
            Verdict::fail(format!("{prefix}{function:?} returned {}", rv_name(rv))).rv(Some(rv))
        }
        other => Verdict::fail(format!("{prefix}{other}")),
    }
}

/// The return code of a cryptoki error, if it came from the library.
pub fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Adds what was being done to an error.
pub trait During<T> {
    fn during(self, what: &str) -> Result<T, Stop>;
}

impl<T> During<T> for Result<T, CkError> {
    fn during(self, what: &str) -> Result<T, Stop> {
        self.map_err(|e| Stop(ck_fail(what, e)))
    }
}

impl<T> During<T> for Result<T, HsmError> {
    fn during(self, what: &str) -> Result<T, Stop> {
        self.map_err(|e| {
            let rv = e.rv();
            Stop(Verdict::fail(format!("{what}: {e}")).rv(rv))
        })
    }
}

/// Fails the check with `reason` unless `cond` holds.
pub fn ensure(cond: bool, reason: impl FnOnce() -> String) -> Result<(), Stop> {
    if cond {
        Ok(())
    } else {
        Err(Stop(Verdict::fail(reason())))
    }
}

/// `CKR_GENERAL_ERROR` for `RvError::GeneralError`: the PKCS#11 name of a return code.
pub fn rv_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(v) => return format!("CKR_VENDOR_DEFINED+0x{v:x}"),
        RvError::UnknownErrorCode(v) => return format!("0x{v:x}"),
        _ => {}
    }
    let debug = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in debug.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// One finished check, as the report holds it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub result: Outcome,
    pub reason: String,
    pub rv: Option<String>,
    pub figures: Figures,
    pub duration_ms: f64,
    /// For a skip when a profile was given: whether the profile expects it.
    pub expected_skip: Option<bool>,
    /// The profile's reason for an expected skip.
    pub profile_reason: Option<String>,
}

/// The reason of a check `--only` left out.
pub const NOT_SELECTED: &str = "not selected (--only)";

/// Checks that run even when `--only` leaves them out: the login every other check needs,
/// and the cleanup.
pub const ALWAYS: &[&str] = &["token.info", "token.mechanisms", "login.user", "cleanup"];

/// Runs checks in order and keeps their results.
#[derive(Debug)]
pub struct Recorder {
    pub results: Vec<CheckResult>,
    only: Vec<String>,
    total: usize,
}

impl Recorder {
    pub fn new(only: Vec<String>, total: usize) -> Recorder {
        Recorder {
            results: Vec::new(),
            only,
            total,
        }
    }

    /// Whether `--only` selects check `id` (an exact id or a prefix ending at a dot). The
    /// checks every other check stands on ([`ALWAYS`]) always run.
    pub fn selected(&self, id: &str) -> bool {
        self.only.is_empty()
            || ALWAYS.contains(&id)
            || self
                .only
                .iter()
                .any(|o| id == o || (id.starts_with(o.as_str()) && id[o.len()..].starts_with('.')))
    }

    /// Runs check `id`, unless `--only` leaves it out; a panic in the check is a failure.
    pub fn run(&mut self, id: &str, check: impl FnOnce() -> Result<Verdict, Stop>) -> Outcome {
        if !self.selected(id) {
            return self.record(id, Verdict::skip(NOT_SELECTED), 0.0);
        }
        let started = Instant::now();
        let verdict = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
            Ok(Ok(v)) | Ok(Err(Stop(v))) => v,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Verdict::fail(format!("the check stopped unexpectedly: {what}"))
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.record(id, verdict, ms)
    }

    /// Records a verdict reached without running a check (a prerequisite failed).
    pub fn record(&mut self, id: &str, v: Verdict, ms: f64) -> Outcome {
        let n = self.results.len() + 1;
        let detail = if v.reason.is_empty() {
            String::new()
        } else {
            format!(": {}", one_line(&v.reason, 100))
        };
        eprintln!(
            "[{n:>2}/{}] {id:<27} {}{detail} ({ms:.0} ms)",
            self.total,
            v.result.as_str()
        );
        let outcome = v.result;
        self.results.push(CheckResult {
            id: id.to_owned(),
            title: title(id).to_owned(),
            result: v.result,
            reason: v.reason,
            rv: v.rv,
            figures: v.figures,
            duration_ms: (ms * 1000.0).round() / 1000.0,
            expected_skip: None,
            profile_reason: None,
        });
        outcome
    }
}

/// The first line of `text`, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_get_their_pkcs11_names() {
        assert_eq!(rv_name(RvError::GeneralError), "CKR_GENERAL_ERROR");
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            rv_name(RvError::EncryptedDataInvalid),
            "CKR_ENCRYPTED_DATA_INVALID"
        );
    }

    #[test]
    fn only_selects_ids_and_groups() {
        let r = Recorder::new(vec!["aes".into(), "random".into()], 3);
        assert!(r.selected("aes.gcm") && r.selected("aes.gcm.bad_tag") && r.selected("random"));
        assert!(!r.selected("aesx") && !r.selected("rsa.pss"));
        assert!(r.selected("login.user") && r.selected("cleanup"));
        assert!(Recorder::new(Vec::new(), 1).selected("anything"));
    }
}
