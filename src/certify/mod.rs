//! `hkms certify`: runs, against any PKCS#11 module, every mechanism and behaviour hkms
//! relies on, each as a named check that passes, fails or is skipped with a reason, and
//! writes a report (`report.json`, `report.html`).
//!
//! The token is left as it was found: keys are session objects (gone when their session
//! closes); the only token objects are the domain-key copies of `domain.transfer`, named
//! after the run id `hkms-certify-<random>` and destroyed at the end whatever happened. The
//! `cleanup` check proves it by counting the objects the user sees before and after. PINs
//! are read from files and never printed or stored.
//!
//! Every value the token computes is checked independently with OpenSSL (ciphertexts,
//! signatures, MACs, wrapped keys), so a token that answers garbage fails.
//!
//! # `report.json` (schema `hkms-certify/1`)
//!
//! | field | meaning |
//! |---|---|
//! | `schema` | `"hkms-certify/1"`; a new major number for any incompatible change |
//! | `hkms_version` | version of the hkms binary that ran the checks |
//! | `run_id` | `hkms-certify-<random>`, the name of every token object the run made |
//! | `started_at`, `finished_at` | RFC 3339 UTC |
//! | `duration_ms` | wall time of the run |
//! | `module` | path of the PKCS#11 library |
//! | `library` | `C_GetInfo`: `manufacturer`, `description`, `version`, `cryptoki_version` |
//! | `token` | `C_GetTokenInfo`: `label`, `manufacturer`, `model`, `serial`, `hardware_version`, `firmware_version`, `max_sessions`, `min_pin_len`, `max_pin_len` (null when the token did not answer) |
//! | `second_token` | label given with `--second-token`, or null |
//! | `second_module` | library of the second token given with `--second-module` when it is not `module`, or null |
//! | `profile` | name given with `--profile`, or null; `profile_source`: the file it came from |
//! | `summary` | counts `pass`, `fail`, `skip`, `unexpected_skip` (skips a profile does not expect; 0 without a profile), and `exit_code` |
//! | `checks` | one object per check, in the fixed order of [`CHECKS`] |
//!
//! Each check: `id` (one of [`CHECKS`]), `title`, `result` (`pass` / `fail` / `skip`),
//! `reason` (what was seen, or why it failed or was skipped), `rv` (the `CKR_*` return code
//! that decided the result, or null), `figures` (measured numbers by name, the unit in the
//! name: `_ms`, `_ops_per_s`, `_bytes`...), `duration_ms`, `expected_skip` (for a skip when a
//! profile was given: true when its `[certify.expected_skip]` table names the check, else
//! false; null otherwise) and `profile_reason` (the profile's reason for an expected skip).

mod aes;
mod asym;
mod catalog;
pub mod check;
mod context;
mod expect;
mod pqc;
pub mod report;
mod session;
mod throughput;
mod token;
mod wrap;

pub use catalog::{title, Outcome, CHECKS, SCHEMA};
pub use check::{CheckResult, Verdict};
pub use context::{Options, SetupError};

use check::Recorder;
use context::Ctx;
use std::time::Instant;

/// Runs every check and returns the report (not yet written).
pub fn run(opts: Options) -> Result<report::Report, SetupError> {
    let expected = match &opts.profile {
        Some(name) => Some(expect::expected_skips(&opts.profiles_dir, name).map_err(SetupError)?),
        None => None,
    };
    let started = Instant::now();
    let started_at = crate::clock::now_rfc3339();
    let mut ctx = Ctx::new(opts)?;
    let mut rec = Recorder::new(ctx.opts.only.clone(), CHECKS.len());
    let info = token::info(&ctx);

    token::checks(&mut ctx, &mut rec);
    let logged_in = rec
        .results
        .iter()
        .any(|r| r.id == "login.user" && r.result == Outcome::Pass);
    if logged_in {
        aes::checks(&mut ctx, &mut rec);
        wrap::checks(&mut ctx, &mut rec);
        asym::checks(&mut ctx, &mut rec);
        token::random(&mut ctx, &mut rec);
        session::checks(&mut ctx, &mut rec);
        throughput::check(&mut ctx, &mut rec);
        pqc::checks(&mut ctx, &mut rec);
    } else {
        for (id, _) in CHECKS {
            if !rec.results.iter().any(|r| r.id == *id) && *id != "cleanup" {
                rec.record(
                    id,
                    Verdict::skip("the user could not log in (login.user)"),
                    0.0,
                );
            }
        }
    }
    token::cleanup(&mut ctx, &mut rec);

    let mut checks = rec.results;
    if let Some((_, table)) = &expected {
        expect::apply(&mut checks, table);
    }
    Ok(report::Report::new(
        &ctx,
        info,
        checks,
        expected.map(|(source, _)| source),
        started_at,
        started.elapsed(),
    ))
}
