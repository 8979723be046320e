//! `hkms.v1.SecretsService`: decode, call [`crate::ops::secrets`] (which authorises every
//! operation for the caller: operators, and applications over hkmsd's mutual-TLS listener),
//! encode.

use super::{reply, Reply};
use crate::appliance::Appliance;
use crate::authn::{caller, Caller};
use crate::error::KmsError;
use crate::ops::{self, Ctx};
use crate::proto::secrets_service_server::SecretsService;
use crate::proto::*;
use crate::secrets::{self, manage, metadata};
use crate::store::records::TagRecord;
use std::sync::Arc;
use tonic::Request;
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
pub struct SecretsApi(pub Arc<Appliance>);

fn tags(tags: &[Tag]) -> Vec<TagRecord> {
    tags.iter()
        .map(|t| TagRecord {
            key: t.tag_key.clone(),
            value: t.tag_value.clone(),
        })
        .collect()
}

impl SecretsApi {
    /// Runs `call` for the request's caller.
    fn with<Req, Resp>(
        &self,
        req: Request<Req>,
        call: impl FnOnce(Ctx<'_>, Req) -> Result<Resp, KmsError>,
    ) -> Reply<Resp> {
        reply(caller(&req).and_then(|c| call(Ctx::new(&self.0, &c), req.into_inner())))
    }

    fn caller_of<T>(req: &Request<T>) -> Result<Caller, tonic::Status> {
        caller(req).map_err(|e| {
            tracing::info!(code = e.code.as_str(), "request refused: {}", e.message);
            e.into()
        })
    }
}

#[tonic::async_trait]
impl SecretsService for SecretsApi {
    async fn create_secret(
        &self,
        req: Request<CreateSecretRequest>,
    ) -> Reply<CreateSecretResponse> {
        let c = Self::caller_of(&req)?;
        let mut r = req.into_inner();
        let new = secrets::NewSecret {
            data: Zeroizing::new(std::mem::take(&mut r.secret_data)),
            tags: tags(&r.tags),
            name: r.secret_name,
            data_type: r.secret_data_type,
            version_id: r.version_id,
            encryption_key_id: r.encryption_key_id,
            description: r.description,
            extended_config: r.extended_config,
        };
        reply(
            ops::secrets::create(Ctx::new(&self.0, &c), new)
                .await
                .map(|rec| CreateSecretResponse {
                    version_id: secrets::stages::holder(&rec, secrets::names::CURRENT)
                        .unwrap_or_default()
                        .to_owned(),
                    secret: Some(metadata(&rec)),
                }),
        )
    }

    async fn get_secret_value(
        &self,
        req: Request<GetSecretValueRequest>,
    ) -> Reply<GetSecretValueResponse> {
        let c = Self::caller_of(&req)?;
        let r = req.into_inner();
        reply(
            ops::secrets::get_value(
                Ctx::new(&self.0, &c),
                &r.secret_name,
                &r.version_stage,
                &r.version_id,
            )
            .await
            .map(|mut v| GetSecretValueResponse {
                secret_name: v.secret.name.clone(),
                secret_type: v.secret.secret_type.clone(),
                // Handed to the transport; the copy held here is wiped.
                secret_data: std::mem::take(&mut *v.data),
                secret_data_type: v.data_type,
                version_stages: v.stages,
                version_id: v.version_id,
                create_time: v.create_time,
                extended_config: v.secret.extended_config,
            }),
        )
    }

    async fn put_secret_value(
        &self,
        req: Request<PutSecretValueRequest>,
    ) -> Reply<PutSecretValueResponse> {
        let c = Self::caller_of(&req)?;
        let mut r = req.into_inner();
        let new = secrets::NewVersion {
            data: Zeroizing::new(std::mem::take(&mut r.secret_data)),
            data_type: r.secret_data_type,
            version_id: r.version_id,
            stages: r.version_stages,
        };
        reply(
            ops::secrets::put_value(Ctx::new(&self.0, &c), &r.secret_name, new)
                .await
                .map(|(rec, version_id)| PutSecretValueResponse {
                    version_stages: secrets::stages::stages_of(&rec, &version_id),
                    secret_name: rec.name,
                    version_id,
                }),
        )
    }

    async fn update_secret_version_stage(
        &self,
        req: Request<UpdateSecretVersionStageRequest>,
    ) -> Reply<UpdateSecretVersionStageResponse> {
        self.with(req, |s, r| {
            ops::secrets::update_stage(
                s,
                &r.secret_name,
                &r.version_stage,
                &r.remove_from_version,
                &r.move_to_version,
            )
            .map(|rec| UpdateSecretVersionStageResponse {
                secret_name: rec.name,
            })
        })
    }

    async fn describe_secret(
        &self,
        req: Request<DescribeSecretRequest>,
    ) -> Reply<DescribeSecretResponse> {
        self.with(req, |s, r| {
            ops::secrets::describe(s, &r.secret_name).map(|rec| DescribeSecretResponse {
                secret: Some(metadata(&rec)),
            })
        })
    }

    async fn list_secrets(&self, req: Request<ListSecretsRequest>) -> Reply<ListSecretsResponse> {
        self.with(req, |s, r| {
            let filter = manage::Filter {
                name_prefix: r.name_prefix,
                tags: tags(&r.tag_filters),
            };
            ops::secrets::list(s, &filter, r.page_number, r.page_size).map(
                |(page, total_count, page_number, page_size)| ListSecretsResponse {
                    secrets: page.iter().map(metadata).collect(),
                    page_number,
                    page_size,
                    total_count,
                },
            )
        })
    }

    async fn list_secret_version_ids(
        &self,
        req: Request<ListSecretVersionIdsRequest>,
    ) -> Reply<ListSecretVersionIdsResponse> {
        self.with(req, |s, r| {
            ops::secrets::list_versions(
                s,
                &r.secret_name,
                r.include_deprecated,
                r.page_number,
                r.page_size,
            )
            .map(|(versions, total_count, page_number, page_size)| {
                ListSecretVersionIdsResponse {
                    secret_name: r.secret_name.clone(),
                    versions,
                    page_number,
                    page_size,
                    total_count,
                }
            })
        })
    }

    async fn update_secret(
        &self,
        req: Request<UpdateSecretRequest>,
    ) -> Reply<UpdateSecretResponse> {
        self.with(req, |s, r| {
            ops::secrets::update(
                s,
                &r.secret_name,
                r.description.as_deref(),
                r.extended_config.as_deref(),
            )
            .map(|rec| UpdateSecretResponse {
                secret: Some(metadata(&rec)),
            })
        })
    }

    async fn delete_secret(
        &self,
        req: Request<DeleteSecretRequest>,
    ) -> Reply<DeleteSecretResponse> {
        self.with(req, |s, r| {
            ops::secrets::delete(
                s,
                &r.secret_name,
                manage::Deletion {
                    recovery_window_in_days: r.recovery_window_in_days,
                    force: r.force_delete_without_recovery,
                    only_disabled: false,
                },
            )
            .map(|due| DeleteSecretResponse {
                secret_name: r.secret_name.clone(),
                planned_delete_time: due.map(crate::clock::rfc3339).unwrap_or_default(),
            })
        })
    }

    async fn restore_secret(
        &self,
        req: Request<RestoreSecretRequest>,
    ) -> Reply<RestoreSecretResponse> {
        self.with(req, |s, r| {
            ops::secrets::restore(s, &r.secret_name).map(|rec| RestoreSecretResponse {
                secret: Some(metadata(&rec)),
            })
        })
    }

    async fn enable_secret(
        &self,
        req: Request<EnableSecretRequest>,
    ) -> Reply<EnableSecretResponse> {
        self.with(req, |s, r| {
            ops::secrets::set_enabled(s, &r.secret_name, true).map(|rec| EnableSecretResponse {
                secret: Some(metadata(&rec)),
            })
        })
    }

    async fn disable_secret(
        &self,
        req: Request<DisableSecretRequest>,
    ) -> Reply<DisableSecretResponse> {
        self.with(req, |s, r| {
            ops::secrets::set_enabled(s, &r.secret_name, false).map(|rec| DisableSecretResponse {
                secret: Some(metadata(&rec)),
            })
        })
    }

    async fn set_secret_policy(
        &self,
        req: Request<SetSecretPolicyRequest>,
    ) -> Reply<SetSecretPolicyResponse> {
        self.with(req, |s, r| {
            ops::secrets::set_policy(s, &r.secret_name, &r.policy)
                .map(|()| SetSecretPolicyResponse {})
        })
    }

    async fn get_secret_policy(
        &self,
        req: Request<GetSecretPolicyRequest>,
    ) -> Reply<GetSecretPolicyResponse> {
        self.with(req, |s, r| {
            ops::secrets::get_policy(s, &r.secret_name)
                .map(|policy| GetSecretPolicyResponse { policy })
        })
    }

    async fn delete_secret_policy(
        &self,
        req: Request<DeleteSecretPolicyRequest>,
    ) -> Reply<DeleteSecretPolicyResponse> {
        self.with(req, |s, r| {
            ops::secrets::delete_policy(s, &r.secret_name).map(|()| DeleteSecretPolicyResponse {})
        })
    }
}
