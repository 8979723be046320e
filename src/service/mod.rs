//! gRPC handlers: decode the request, call the domain module, encode the answer. No policy,
//! no PKCS#11 here.

pub mod access;
pub mod admin;
pub mod application;
pub mod crypto;
pub mod keys;
pub mod relay;

use crate::error::KmsError;
use crate::proto::KeyMetadata;
use crate::store::records::KeyRecord;

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

fn reply<T>(r: Result<T, KmsError>) -> Reply<T> {
    match r {
        Ok(v) => Ok(tonic::Response::new(v)),
        Err(e) => {
            tracing::info!(code = e.code.as_str(), "request refused: {}", e.message);
            Err(e.into())
        }
    }
}

/// Public metadata of a key record.
pub fn key_metadata(k: KeyRecord) -> KeyMetadata {
    KeyMetadata {
        key_id: k.key_id,
        description: k.description,
        key_spec: k.key_spec,
        key_usage: k.key_usage,
        key_state: k.key_state,
        creation_date: k.creation_date,
        protection_level: "HSM".into(),
        primary_key_version: k.primary_key_version,
        origin: "Aliyun_KMS".into(),
        internal: k.internal,
    }
}
