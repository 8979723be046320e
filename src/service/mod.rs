//! gRPC handlers: decode the request, call the operations layer ([`crate::ops`]) or, for
//! operators' administration, the domain module, and encode the answer. No policy, no
//! PKCS#11 here.

pub mod access;
pub mod admin;
pub mod asymmetric;
pub mod audit;
pub mod crypto;
pub mod keys;
pub mod relay;
mod resource;
pub mod secrets;

use crate::authn::Caller;
use crate::error::KmsError;
use crate::proto::KeyMetadata;
use crate::store::records::KeyRecord;

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

fn reply<T>(r: Result<T, KmsError>) -> Reply<T> {
    r.map(tonic::Response::new).map_err(refused)
}

/// The status of a refused request, logged once with its code.
fn refused(e: KmsError) -> tonic::Status {
    tracing::info!(code = e.code.as_str(), "request refused: {}", e.message);
    e.into()
}

/// The caller the transport authenticated; a request without one is refused.
fn caller_of<T>(req: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
    crate::authn::caller(req).map_err(refused)
}

/// RFC 3339 (UTC) of Unix seconds; empty for 0.
fn rfc3339_or_empty(t: i64) -> String {
    if t == 0 {
        return String::new();
    }
    crate::clock::rfc3339(t)
}

/// Public metadata of a key record.
pub fn key_metadata(k: KeyRecord) -> KeyMetadata {
    let origin = if k.origin.is_empty() {
        crate::keys::ORIGIN_KMS.to_owned()
    } else {
        k.origin.clone()
    };
    let last_rotation_date = if k.last_rotation_date.is_empty() {
        k.creation_date.clone()
    } else {
        k.last_rotation_date.clone()
    };
    KeyMetadata {
        deletion_date: rfc3339_or_empty(k.deletion_unix),
        deletion_protection: k.deletion_protection,
        deletion_protection_description: k.deletion_protection_description,
        automatic_rotation: if k.automatic_rotation {
            "Enabled"
        } else {
            "Disabled"
        }
        .into(),
        rotation_interval_seconds: k.rotation_interval_seconds,
        next_rotation_date: if k.automatic_rotation {
            rfc3339_or_empty(k.next_rotation_unix)
        } else {
            String::new()
        },
        last_rotation_date,
        material_expire_time: rfc3339_or_empty(k.material_expire_unix),
        version_count: k.key_versions.len() as u32,
        key_id: k.key_id,
        description: k.description,
        key_spec: k.key_spec,
        key_usage: k.key_usage,
        key_state: k.key_state,
        creation_date: k.creation_date,
        protection_level: "HSM".into(),
        primary_key_version: k.primary_key_version,
        origin,
        internal: k.internal,
    }
}
