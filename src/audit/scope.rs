//! The record of the request being served. The layer that receives a request (a front's
//! dispatcher, the gRPC layer) opens a [`Scope`] and runs the request inside it; the layers
//! the request passes through add what they learn (who called, which key, which secret)
//! with the `note_*` functions, which do nothing outside a scope. When the answer is ready,
//! [`finish`] completes the record (result, latency, keyed hashes), writes it and waits
//! until it is durable.

use super::record::Record;
use crate::appliance::Appliance;
use crate::authn::Caller;
use crate::error::{ErrorCode, KmsError};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use zeroize::Zeroizing;

tokio::task_local! {
    static CURRENT: Arc<Scope>;
}

/// Longest operation name recorded as sent (clients choose what they send before they are
/// authenticated).
const MAX_NAME: usize = 128;

/// A request's record in the making.
#[derive(Debug)]
pub struct Scope {
    started: Instant,
    fields: Mutex<Fields>,
}

#[derive(Debug, Default)]
struct Fields {
    record: Record,
    /// The AAD or encryption context, kept only until it is hashed.
    aad: Option<Zeroizing<Vec<u8>>>,
    /// Whether authorisation refused the caller (then secret names are hashed).
    denied: bool,
}

impl Scope {
    /// A scope for a request arriving now through `front`, naming `operation`.
    pub fn new(front: &str, operation: &str) -> Arc<Scope> {
        let record = Record {
            time: super::record::now_micros(),
            front: front.to_owned(),
            principal: "unauthenticated".to_owned(),
            operation: bounded(operation),
            ..Default::default()
        };
        Arc::new(Scope {
            started: Instant::now(),
            fields: Mutex::new(Fields {
                record,
                ..Default::default()
            }),
        })
    }

    /// Runs `fut` with this scope current.
    pub async fn run<F: Future>(self: &Arc<Self>, fut: F) -> F::Output {
        CURRENT.scope(self.clone(), fut).await
    }

    /// Runs `f` with this scope current (for synchronous work such as interceptors).
    pub fn run_sync<R>(self: &Arc<Self>, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self.clone(), f)
    }

    /// Changes the record directly.
    pub fn with(&self, f: impl FnOnce(&mut Record)) {
        f(&mut self.fields.lock().expect("audit scope lock").record);
    }
}

fn note(f: impl FnOnce(&mut Fields)) {
    let _ = CURRENT.try_with(|s| f(&mut s.fields.lock().expect("audit scope lock")));
}

/// The caller, once authenticated. A gateway that relays a request is noted apart (the
/// application it relays for becomes the principal).
pub fn note_caller(caller: &Caller) {
    note(|f| describe(&mut f.record, caller));
}

fn describe(r: &mut Record, caller: &Caller) {
    match caller {
        Caller::Operator { uid, gid } => {
            r.principal = "operator".into();
            r.uid = Some(*uid);
            r.gid = Some(*gid);
        }
        Caller::Gateway { uid, .. } => {
            r.principal = "gateway".into();
            r.gateway = Some(format!("uid={uid}"));
        }
        Caller::RemoteGateway { subject, address } => {
            r.principal = "gateway".into();
            r.gateway = Some(format!("cert={subject}@{address}"));
        }
        Caller::Application {
            aap,
            credential,
            source,
            endpoint,
        } => {
            r.principal = "application".into();
            r.aap = Some(aap.clone());
            r.credential = Some(credential.clone());
            r.source = Some(source.to_string());
            r.endpoint = Some(endpoint.as_str().to_owned());
        }
    }
}

/// The gateway that relayed the request.
pub fn note_relayed_by(gateway: &Caller) {
    note(|f| {
        f.record.gateway = match gateway {
            Caller::Gateway { uid, .. } => Some(format!("uid={uid}")),
            Caller::RemoteGateway { subject, address } => Some(format!("cert={subject}@{address}")),
            _ => None,
        }
    });
}

/// Authorisation's verdict on the request.
pub fn note_denied() {
    note(|f| f.denied = true);
}

/// The key a request used (resolved from an alias, if it named one).
pub fn note_key(key_id: &str) {
    note(|f| f.record.key_id = Some(key_id.to_owned()));
}

/// The key version a request used.
pub fn note_key_version(key_version_id: &str) {
    note(|f| f.record.key_version_id = Some(key_version_id.to_owned()));
}

/// The secret (and version) a request named.
pub fn note_secret(name: &str, version: Option<&str>) {
    note(|f| {
        f.record.secret_name = Some(name.to_owned());
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            f.record.secret_version = Some(v.to_owned());
        }
    });
}

/// Another resource the request named (an alias, an AAP...).
pub fn note_resource(resource: &str) {
    note(|f| {
        if !f.record.resources.iter().any(|r| r == resource) {
            f.record.resources.push(bounded(resource));
        }
    });
}

/// The request's AAD or encryption context (recorded only as a keyed hash).
pub fn note_aad(aad: &[u8]) {
    if aad.is_empty() {
        return;
    }
    note(|f| f.aad = Some(Zeroizing::new(aad.to_vec())));
}

/// Completes the record with the request's result (`OK` or an error code), writes it and
/// waits until it is durable. `Err(AuditUnavailable)` means the request must not be
/// answered as it would have been.
pub async fn finish(
    app: &Appliance,
    scope: &Arc<Scope>,
    request_id: &str,
    result: &str,
) -> Result<(), KmsError> {
    let latency = scope.started.elapsed();
    let (mut record, aad, denied) = {
        let mut f = scope.fields.lock().expect("audit scope lock");
        (std::mem::take(&mut f.record), f.aad.take(), f.denied)
    };
    record.request_id = request_id.to_owned();
    record.result = bounded(result);
    record.latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    let written = if app.audit.enabled() {
        if let Some(aad) = aad {
            record.aad_hash = Some(keyed_hash_or_reason(app, &aad).await);
        }
        if denied && record.principal == "application" {
            if let Some(name) = record.secret_name.take() {
                record.secret_name_hash = Some(keyed_hash_or_reason(app, name.as_bytes()).await);
            }
        }
        let (front, operation) = (record.front.clone(), record.operation.clone());
        let written = app.audit.append(record).await.map_err(|e| {
            KmsError::new(
                ErrorCode::AuditUnavailable,
                format!("the request was not answered because its audit record could not be written: {e}"),
            )
        });
        (front, operation, written)
    } else {
        (record.front, record.operation, Ok(()))
    };
    let (front, operation, written) = written;
    let answered = match &written {
        Ok(()) => result,
        Err(e) => e.code.as_str(),
    };
    crate::metrics::observe_request(&front, &operation, answered, latency);
    written
}

async fn keyed_hash_or_reason(app: &Appliance, value: &[u8]) -> String {
    match super::checkpoint::keyed_hash(app, value).await {
        Ok(h) => h,
        Err(e) => format!("unavailable: {}", e.code),
    }
}

/// `name` cut to [`MAX_NAME`] characters, control characters replaced.
fn bounded(name: &str) -> String {
    name.chars()
        .take(MAX_NAME)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
