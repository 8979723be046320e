//! `hkms jobs`: the work hkmsd does by the clock (automatic rotation, deletion at the end of
//! a pending window, expiry of imported material): see what is scheduled, or run what is
//! due now.

use super::access::Printed;
use crate::client::Client;
use crate::proto::*;
use clap::Subcommand;
use serde_json::json;
use tonic::Status;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List scheduled jobs, soonest first: kind, key and when it is due.
    ///
    /// Kinds: Rotate (automatic rotation makes a new version), Delete (a pending deletion's
    /// window ends: the key's material is destroyed) and ExpireMaterial (imported material
    /// reaches its expiry and is deleted).
    List,
    /// Run every job due now and print what each one did.
    ///
    /// hkmsd also runs them on its own every `[limits] jobs_interval_secs`; a job that fails is
    /// tried again on the next run.
    Run,
}

fn job_json(j: &ScheduledJob) -> serde_json::Value {
    json!({"Kind": j.kind, "KeyId": j.key_id, "SecretName": j.secret_name, "Due": j.due})
}

/// What a job works on: a key id, or `secret/<name>`.
fn target(j: &ScheduledJob) -> String {
    if j.secret_name.is_empty() {
        j.key_id.clone()
    } else {
        format!("secret/{}", j.secret_name)
    }
}

/// The jobs as a table.
fn jobs_text(jobs: &[ScheduledJob], now: &str) -> String {
    if jobs.is_empty() {
        return format!("No job is scheduled (hkmsd's clock: {now}).");
    }
    let mut text = format!("{:<15} {:<40} DUE\n", "KIND", "KEY OR SECRET");
    for j in jobs {
        text.push_str(&format!("{:<15} {:<40} {}\n", j.kind, target(j), j.due));
    }
    text.push_str(&format!("(hkmsd's clock: {now})"));
    text
}

/// One line per outcome.
fn outcomes_text(outcomes: &[JobOutcome]) -> String {
    if outcomes.is_empty() {
        return "No job was due.".into();
    }
    outcomes
        .iter()
        .map(|o| {
            let j = o.job.clone().unwrap_or_default();
            let what = format!("{} {} (due {})", j.kind, target(&j), j.due);
            if o.error.is_empty() {
                format!("{what}: done")
            } else {
                format!("{what}: FAILED, tried again on the next run: {}", o.error)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `hkms jobs ...`.
pub async fn jobs(c: &mut Client, cmd: &JobsCommand) -> Result<Printed, Status> {
    Ok(match cmd {
        JobsCommand::List => {
            let r = c
                .admin
                .list_scheduled_jobs(ListScheduledJobsRequest {})
                .await?
                .into_inner();
            (
                jobs_text(&r.jobs, &r.now),
                json!({
                    "Jobs": r.jobs.iter().map(job_json).collect::<Vec<_>>(),
                    "Now": r.now,
                }),
            )
        }
        JobsCommand::Run => {
            let r = c
                .admin
                .run_due_jobs(RunDueJobsRequest {})
                .await?
                .into_inner();
            let outcomes: Vec<_> = r
                .outcomes
                .iter()
                .map(|o| {
                    json!({
                        "Job": job_json(&o.job.clone().unwrap_or_default()),
                        "Error": o.error,
                    })
                })
                .collect();
            (outcomes_text(&r.outcomes), json!({ "Outcomes": outcomes }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str, key: &str) -> ScheduledJob {
        ScheduledJob {
            kind: kind.into(),
            key_id: key.into(),
            due: "2030-01-01T00:00:00Z".into(),
            secret_name: String::new(),
        }
    }

    #[test]
    fn jobs_print_as_a_table() {
        let secret = ScheduledJob {
            secret_name: "db".into(),
            ..job("DeleteSecret", "")
        };
        let t = jobs_text(
            &[job("Rotate", "k1"), job("Delete", "k2"), secret],
            "2029-12-31T00:00:00Z",
        );
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].starts_with("KIND") && lines[0].ends_with("DUE"));
        assert!(lines[1].starts_with("Rotate") && lines[1].contains("k1"));
        assert!(lines[3].starts_with("DeleteSecret") && lines[3].contains("secret/db"));
        assert!(lines[4].contains("2029-12-31"));
        assert!(jobs_text(&[], "now").starts_with("No job is scheduled"));
    }

    #[test]
    fn outcomes_say_what_failed() {
        let t = outcomes_text(&[
            JobOutcome {
                job: Some(job("Rotate", "k1")),
                error: String::new(),
            },
            JobOutcome {
                job: Some(job("ExpireMaterial", "k2")),
                error: "HsmUnavailable".into(),
            },
        ]);
        assert!(t.lines().next().unwrap().ends_with(": done"), "{t}");
        assert!(
            t.contains("ExpireMaterial k2") && t.contains("FAILED"),
            "{t}"
        );
        assert_eq!(outcomes_text(&[]), "No job was due.");
    }
}
