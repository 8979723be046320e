//! `hkms.v1.KeyService`.

use super::{key_metadata, reply, Reply};
use crate::appliance::Appliance;
use crate::keys;
use crate::proto::key_service_server::KeyService;
use crate::proto::*;
use std::sync::Arc;
use tonic::Request;

#[derive(Debug, Clone)]
pub struct KeyApi(pub Arc<Appliance>);

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(&self, req: Request<CreateKeyRequest>) -> Reply<CreateKeyResponse> {
        let r = req.into_inner();
        reply(
            keys::create(&self.0, &r.key_spec, &r.key_usage, &r.description)
                .await
                .map(|k| CreateKeyResponse {
                    key_metadata: Some(key_metadata(k)),
                }),
        )
    }

    async fn describe_key(&self, req: Request<DescribeKeyRequest>) -> Reply<DescribeKeyResponse> {
        reply(
            keys::describe(&self.0, &req.into_inner().key_id).map(|k| DescribeKeyResponse {
                key_metadata: Some(key_metadata(k)),
            }),
        )
    }

    async fn list_keys(&self, req: Request<ListKeysRequest>) -> Reply<ListKeysResponse> {
        let r = req.into_inner();
        reply(
            keys::list(&self.0, r.page_number, r.page_size).map(|(ids, n, size, total)| {
                ListKeysResponse {
                    keys: ids
                        .into_iter()
                        .map(|key_id| KeyListEntry { key_id })
                        .collect(),
                    page_number: n,
                    page_size: size,
                    total_count: total,
                }
            }),
        )
    }

    async fn enable_key(&self, req: Request<EnableKeyRequest>) -> Reply<EnableKeyResponse> {
        reply(
            keys::set_enabled(&self.0, &req.into_inner().key_id, true).map(|k| EnableKeyResponse {
                key_metadata: Some(key_metadata(k)),
            }),
        )
    }

    async fn disable_key(&self, req: Request<DisableKeyRequest>) -> Reply<DisableKeyResponse> {
        reply(
            keys::set_enabled(&self.0, &req.into_inner().key_id, false).map(|k| {
                DisableKeyResponse {
                    key_metadata: Some(key_metadata(k)),
                }
            }),
        )
    }
}
