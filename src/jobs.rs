//! Work that runs by the clock: automatic rotation, destruction of keys whose pending
//! deletion window ended, deletion of imported material that expired, and deletion of
//! secrets whose recovery window ended.
//!
//! Jobs are not queued anywhere: each one follows from a key record (its next rotation
//! time, deletion date or material expiry), so they survive restarts with the store and
//! nothing can be lost between a decision and a queue. Each job checks, in the same
//! compare-and-swap that writes its result, that the record still says the job is due at
//! the time it found: a run that is interrupted and run again, or two runs at once, do the
//! work once. hkmsd runs due jobs every `[limits] jobs_interval_secs` and on request
//! (`hkms jobs run`); the clock is [`crate::clock`].

use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::keys::{deletion, import, versions, ORIGIN_EXTERNAL, STATE_PENDING_DELETION};
use crate::proto::{JobOutcome, ScheduledJob};
use std::time::Duration;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Automatic rotation: a new primary version.
    Rotate,
    /// The end of a pending deletion window: the key is destroyed.
    Delete,
    /// Imported material expired: it is deleted (the key is PendingImport).
    ExpireMaterial,
    /// The end of a secret's recovery window: the secret and its versions are deleted.
    DeleteSecret,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rotate => "Rotate",
            Kind::Delete => "Delete",
            Kind::ExpireMaterial => "ExpireMaterial",
            Kind::DeleteSecret => "DeleteSecret",
        }
    }
}

/// One job: what, on which key (or, for [`Kind::DeleteSecret`], which secret), due when
/// (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub kind: Kind,
    /// The key id, or the secret's name.
    pub target: String,
    pub due: i64,
}

impl Job {
    pub fn to_api(&self) -> ScheduledJob {
        let (key_id, secret_name) = match self.kind {
            Kind::DeleteSecret => (String::new(), self.target.clone()),
            _ => (self.target.clone(), String::new()),
        };
        ScheduledJob {
            kind: self.kind.as_str().into(),
            key_id,
            due: crate::clock::rfc3339(self.due),
            secret_name,
        }
    }
}

/// Every scheduled job, soonest first.
pub fn scheduled(app: &Appliance) -> Result<Vec<Job>, KmsError> {
    app.instance()?;
    let mut jobs = Vec::new();
    for k in app.store.key_records()? {
        if k.key_state == STATE_PENDING_DELETION {
            jobs.push(Job {
                kind: Kind::Delete,
                target: k.key_id.clone(),
                due: k.deletion_unix,
            });
            // Nothing else runs on a key that is going away.
            continue;
        }
        if versions::rotation_may_run(&k) {
            jobs.push(Job {
                kind: Kind::Rotate,
                target: k.key_id.clone(),
                due: k.next_rotation_unix,
            });
        }
        if k.origin == ORIGIN_EXTERNAL && k.material_expire_unix != 0 {
            jobs.push(Job {
                kind: Kind::ExpireMaterial,
                target: k.key_id.clone(),
                due: k.material_expire_unix,
            });
        }
    }
    for s in app.store.secrets()? {
        if s.planned_delete_unix != 0 {
            jobs.push(Job {
                kind: Kind::DeleteSecret,
                target: s.name,
                due: s.planned_delete_unix,
            });
        }
    }
    jobs.sort_by(|a, b| (a.due, &a.target).cmp(&(b.due, &b.target)));
    Ok(jobs)
}

/// Runs one job; `Ok(false)` when there was nothing left to do.
async fn run(app: &Appliance, job: &Job) -> Result<bool, KmsError> {
    match job.kind {
        Kind::Rotate => versions::rotate_due(app, &job.target, job.due).await,
        Kind::Delete => deletion::destroy_due(app, &job.target, job.due).await,
        Kind::ExpireMaterial => import::expire_due(app, &job.target, job.due).await,
        Kind::DeleteSecret => crate::secrets::manage::delete_due(app, &job.target, job.due),
    }
}

/// Runs every job due now and reports each one that was due.
pub async fn run_due(app: &Appliance) -> Result<Vec<JobOutcome>, KmsError> {
    let now = crate::clock::now_unix();
    let mut outcomes = Vec::new();
    for job in scheduled(app)?.into_iter().filter(|j| j.due <= now) {
        let error = match run(app, &job).await {
            Ok(true) => String::new(),
            // Done by another run meanwhile: nothing to report.
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(kind = job.kind.as_str(), target = %job.target, code = e.code.as_str(), "job failed; it runs again next time: {}", e.message);
                e.to_string()
            }
        };
        outcomes.push(JobOutcome {
            job: Some(job.to_api()),
            error,
        });
    }
    let expired = import::forget_params(app, import::Stale::Expired)?;
    if expired > 0 {
        tracing::info!(expired, "expired import parameters removed");
    }
    deletion::sweep(app)?;
    Ok(outcomes)
}

/// Runs due jobs every `interval` until hkmsd stops.
pub async fn run_forever(app: std::sync::Arc<Appliance>, interval: Duration) {
    let stopping = app.stopping();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stopping => return,
        }
        if app.instance().is_err() {
            continue;
        }
        if let Err(e) = run_due(&app).await {
            tracing::warn!(
                code = e.code.as_str(),
                "scheduled jobs did not run: {}",
                e.message
            );
        }
    }
}
