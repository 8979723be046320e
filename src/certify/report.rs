//! The report: `report.json` (schema in the module docs of [`super`]), a self-contained
//! `report.html`, and the summary table printed at the end of a run.

use super::catalog::{Outcome, CHECKS, SCHEMA};
use super::check::{one_line, CheckResult};
use super::context::Ctx;
use super::token::{Info, LibraryInfo, TokenInfo};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Counts of results, and the exit code they make.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    /// Skips the profile does not expect (a warning, not a failure).
    pub unexpected_skip: usize,
    pub exit_code: u8,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub hkms_version: &'static str,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: f64,
    pub module: String,
    pub library: Option<LibraryInfo>,
    pub token: Option<TokenInfo>,
    pub second_token: Option<String>,
    /// Library of the second token when it is not `module` (`--second-module`).
    pub second_module: Option<String>,
    pub profile: Option<String>,
    pub profile_source: Option<String>,
    pub summary: Summary,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub(super) fn new(
        ctx: &Ctx,
        info: Info,
        mut checks: Vec<CheckResult>,
        profile_source: Option<String>,
        started_at: String,
        took: Duration,
    ) -> Report {
        let order = |id: &str| CHECKS.iter().position(|(i, _)| *i == id);
        checks.sort_by_key(|c| order(&c.id));
        let count = |o: Outcome| checks.iter().filter(|c| c.result == o).count();
        let fail = count(Outcome::Fail);
        let summary = Summary {
            pass: count(Outcome::Pass),
            fail,
            skip: count(Outcome::Skip),
            unexpected_skip: checks
                .iter()
                .filter(|c| c.expected_skip == Some(false))
                .count(),
            exit_code: u8::from(fail > 0),
        };
        Report {
            schema: SCHEMA,
            hkms_version: env!("CARGO_PKG_VERSION"),
            run_id: ctx.run_id.clone(),
            started_at,
            finished_at: crate::clock::now_rfc3339(),
            duration_ms: (took.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            module: ctx.opts.module.display().to_string(),
            library: info.library,
            token: info.token,
            second_token: ctx.opts.second_token.clone(),
            second_module: ctx
                .opts
                .second_module
                .as_ref()
                .filter(|m| **m != ctx.opts.module)
                .map(|m| m.display().to_string()),
            profile: ctx.opts.profile.clone(),
            profile_source,
            summary,
            checks,
        }
    }

    /// Writes `report.json` and `report.html` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json + "\n")?;
        std::fs::write(dir.join("report.html"), self.html())
    }

    /// The summary table for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!("{:<27} {:<6} detail\n", "check", "result");
        for c in &self.checks {
            let mut detail = one_line(&c.reason, 90);
            if c.expected_skip == Some(false) {
                detail = format!("UNEXPECTED SKIP: {detail}");
            } else if c.expected_skip == Some(true) {
                detail = format!("expected: {detail}");
            }
            out.push_str(&format!("{:<27} {:<6} {detail}\n", c.id, c.result.as_str()));
        }
        let s = &self.summary;
        out.push_str(&format!(
            "\n{} passed, {} failed, {} skipped",
            s.pass, s.fail, s.skip
        ));
        if s.unexpected_skip > 0 {
            out.push_str(&format!(
                " (warning: {} skips the profile does not expect)",
                s.unexpected_skip
            ));
        }
        out.push('\n');
        if let Some(t) = self.checks.iter().find(|c| c.id == "throughput") {
            for (name, v) in &t.figures {
                out.push_str(&format!("  {name:<40} {v:>12.0}\n"));
            }
        }
        out
    }

    /// A self-contained HTML page: inline style, every text escaped, no external assets.
    pub fn html(&self) -> String {
        let e = escape;
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        h.push_str(&format!(
            "<title>hkms certify: {}</title>\n",
            e(&self
                .token
                .as_ref()
                .map(|t| t.label.clone())
                .unwrap_or_default())
        ));
        h.push_str(
            "<style>body{font-family:sans-serif;margin:2em;color:#222}\
             table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;\
             padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}\
             .pass{background:#dfd}.fail{background:#fdd}.skip{background:#ffd}\
             code{font-size:90%}</style></head><body>\n",
        );
        h.push_str("<h1>hkms certify report</h1>\n<table>\n");
        let mut row = |k: &str, v: String| {
            h.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(&v)));
        };
        row("schema", self.schema.into());
        row("hkms version", self.hkms_version.into());
        row("run id", self.run_id.clone());
        row(
            "started / finished",
            format!("{} / {}", self.started_at, self.finished_at),
        );
        row("module", self.module.clone());
        if let Some(l) = &self.library {
            row(
                "library",
                format!(
                    "{} {} ({}), PKCS#11 {}",
                    l.manufacturer, l.description, l.version, l.cryptoki_version
                ),
            );
        }
        if let Some(t) = &self.token {
            row(
                "token",
                format!(
                    "{:?}: {} {} serial {}, hardware {}, firmware {}",
                    t.label,
                    t.manufacturer,
                    t.model,
                    t.serial,
                    t.hardware_version,
                    t.firmware_version
                ),
            );
        }
        row(
            "second token",
            match (&self.second_token, &self.second_module) {
                (Some(t), Some(m)) => format!("{t} (on {m})"),
                (Some(t), None) => t.clone(),
                (None, _) => "none".into(),
            },
        );
        row(
            "profile",
            match (&self.profile, &self.profile_source) {
                (Some(p), Some(src)) => format!("{p} ({src})"),
                _ => "none".into(),
            },
        );
        let s = &self.summary;
        row(
            "summary",
            format!(
                "{} passed, {} failed, {} skipped ({} unexpected); exit code {}",
                s.pass, s.fail, s.skip, s.unexpected_skip, s.exit_code
            ),
        );
        h.push_str("</table>\n<h2>Checks</h2>\n<table>\n");
        h.push_str("<tr><th>check</th><th>result</th><th>reason</th><th>return code</th><th>figures</th><th>ms</th></tr>\n");
        for c in &self.checks {
            let mut result = c.result.as_str().to_owned();
            match c.expected_skip {
                Some(true) => result.push_str(" (expected)"),
                Some(false) => result.push_str(" (unexpected)"),
                None => {}
            }
            let mut reason = e(&c.reason);
            if let Some(p) = &c.profile_reason {
                reason.push_str(&format!("<br>profile: {}", e(p)));
            }
            let figures: Vec<String> = c
                .figures
                .iter()
                .map(|(k, v)| format!("<code>{}</code> {}", e(k), e(&format_figure(*v))))
                .collect();
            h.push_str(&format!(
                "<tr class=\"{}\" id=\"{}\"><td><code>{}</code><br>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>\n",
                c.result.as_str(),
                e(&c.id),
                e(&c.id),
                e(&c.title),
                e(&result),
                reason,
                e(c.rv.as_deref().unwrap_or("")),
                figures.join("<br>"),
                c.duration_ms
            ));
        }
        h.push_str("</table>\n</body></html>\n");
        h
    }
}

fn format_figure(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// HTML escaping of text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_is_escaped() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
