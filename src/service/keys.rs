//! `hkms.v1.KeyService`: keys, their versions, lifecycle, import, tags and aliases.
//! Operators only. Each handler checks that the caller is an operator, decodes the request
//! into one call of [`crate::ops::keys`] (which resolves the key reference, id or alias,
//! and authorises) and encodes the answer.

use super::resource::operator;
use super::{key_metadata, reply, Reply};
use crate::appliance::Appliance;
use crate::authn::{caller, Caller};
use crate::error::KmsError;
use crate::keys;
use crate::ops::{self, Ctx};
use crate::proto::key_service_server::KeyService;
use crate::proto::*;
use crate::store::records::{KeyRecord, TagRecord};
use std::sync::Arc;
use tonic::Request;

#[derive(Debug, Clone)]
pub struct KeyApi(pub Arc<Appliance>);

/// The caller, who must be an operator (the refusal is logged with the operation), and the
/// request message.
fn operator_request<T>(req: Request<T>, operation: &str) -> Result<(Caller, T), KmsError> {
    operator(&req, operation)?;
    Ok((caller(&req)?, req.into_inner()))
}

fn meta(k: KeyRecord) -> Option<KeyMetadata> {
    Some(key_metadata(k))
}

fn tag_records(tags: Vec<Tag>) -> Vec<TagRecord> {
    tags.into_iter()
        .map(|t| TagRecord {
            key: t.tag_key,
            value: t.tag_value,
        })
        .collect()
}

fn api_tags(tags: Vec<TagRecord>) -> Vec<Tag> {
    tags.into_iter()
        .map(|t| Tag {
            tag_key: t.key,
            tag_value: t.value,
        })
        .collect()
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(&self, req: Request<CreateKeyRequest>) -> Reply<CreateKeyResponse> {
        reply(
            async {
                let (caller, r) = operator_request(req, "CreateKey")?;
                let new = keys::NewKey {
                    description: r.description,
                    internal: r.internal,
                    external: keys::parse_origin(&r.origin)?,
                    rotation_interval: r
                        .enable_automatic_rotation
                        .then_some(r.rotation_interval_seconds),
                    tags: tag_records(r.tags),
                    deletion_protection: r.deletion_protection,
                };
                let ctx = Ctx::new(&self.0, &caller);
                let k = ops::keys::create(ctx, &r.key_spec, &r.key_usage, new, None).await?;
                Ok(CreateKeyResponse {
                    key_metadata: meta(k),
                })
            }
            .await,
        )
    }

    async fn describe_key(&self, req: Request<DescribeKeyRequest>) -> Reply<DescribeKeyResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "DescribeKey")?;
            let k = ops::keys::describe(Ctx::new(&self.0, &caller), &r.key_id)?;
            Ok(DescribeKeyResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn list_keys(&self, req: Request<ListKeysRequest>) -> Reply<ListKeysResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "ListKeys")?;
            let filter = keys::KeyFilter {
                key_state: r.key_state,
                key_spec: r.key_spec,
                key_usage: r.key_usage,
                origin: r.origin,
                tags: tag_records(r.tags),
            };
            let (ids, page_number, page_size, total_count) = ops::keys::list(
                Ctx::new(&self.0, &caller),
                r.page_number,
                r.page_size,
                &filter,
            )?;
            Ok(ListKeysResponse {
                keys: ids
                    .into_iter()
                    .map(|key_id| KeyListEntry { key_id })
                    .collect(),
                page_number,
                page_size,
                total_count,
            })
        })())
    }

    async fn enable_key(&self, req: Request<EnableKeyRequest>) -> Reply<EnableKeyResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "EnableKey")?;
            let k = ops::keys::set_enabled(Ctx::new(&self.0, &caller), &r.key_id, true)?;
            Ok(EnableKeyResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn disable_key(&self, req: Request<DisableKeyRequest>) -> Reply<DisableKeyResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "DisableKey")?;
            let k = ops::keys::set_enabled(Ctx::new(&self.0, &caller), &r.key_id, false)?;
            Ok(DisableKeyResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn mark_key_internal(
        &self,
        req: Request<MarkKeyInternalRequest>,
    ) -> Reply<MarkKeyInternalResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "MarkKeyInternal")?;
            let k = ops::keys::mark_internal(Ctx::new(&self.0, &caller), &r.key_id)?;
            Ok(MarkKeyInternalResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn create_alias(&self, req: Request<CreateAliasRequest>) -> Reply<CreateAliasResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "CreateAlias")?;
            let alias =
                ops::keys::create_alias(Ctx::new(&self.0, &caller), &r.alias_name, &r.key_id)?;
            Ok(CreateAliasResponse { alias: Some(alias) })
        })())
    }

    async fn update_alias(&self, req: Request<UpdateAliasRequest>) -> Reply<UpdateAliasResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "UpdateAlias")?;
            let alias =
                ops::keys::update_alias(Ctx::new(&self.0, &caller), &r.alias_name, &r.key_id)?;
            Ok(UpdateAliasResponse { alias: Some(alias) })
        })())
    }

    async fn delete_alias(&self, req: Request<DeleteAliasRequest>) -> Reply<DeleteAliasResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "DeleteAlias")?;
            ops::keys::delete_alias(Ctx::new(&self.0, &caller), &r.alias_name)?;
            Ok(DeleteAliasResponse {})
        })())
    }

    async fn list_aliases(&self, req: Request<ListAliasesRequest>) -> Reply<ListAliasesResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "ListAliases")?;
            let aliases = ops::keys::list_aliases(Ctx::new(&self.0, &caller), &r.key_id)?;
            Ok(ListAliasesResponse { aliases })
        })())
    }

    async fn update_key_description(
        &self,
        req: Request<UpdateKeyDescriptionRequest>,
    ) -> Reply<UpdateKeyDescriptionResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "UpdateKeyDescription")?;
            let k = ops::keys::update_description(
                Ctx::new(&self.0, &caller),
                &r.key_id,
                &r.description,
            )?;
            Ok(UpdateKeyDescriptionResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn create_key_version(
        &self,
        req: Request<CreateKeyVersionRequest>,
    ) -> Reply<CreateKeyVersionResponse> {
        reply(
            async {
                let (caller, r) = operator_request(req, "CreateKeyVersion")?;
                let v = ops::keys::create_version(Ctx::new(&self.0, &caller), &r.key_id).await?;
                Ok(CreateKeyVersionResponse {
                    key_version: Some(v),
                })
            }
            .await,
        )
    }

    async fn list_key_versions(
        &self,
        req: Request<ListKeyVersionsRequest>,
    ) -> Reply<ListKeyVersionsResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "ListKeyVersions")?;
            let (key_versions, page_number, page_size, total_count) = ops::keys::list_versions(
                Ctx::new(&self.0, &caller),
                &r.key_id,
                r.page_number,
                r.page_size,
            )?;
            Ok(ListKeyVersionsResponse {
                key_versions,
                page_number,
                page_size,
                total_count,
            })
        })())
    }

    async fn describe_key_version(
        &self,
        req: Request<DescribeKeyVersionRequest>,
    ) -> Reply<DescribeKeyVersionResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "DescribeKeyVersion")?;
            let v = ops::keys::describe_version(
                Ctx::new(&self.0, &caller),
                &r.key_id,
                &r.key_version_id,
            )?;
            Ok(DescribeKeyVersionResponse {
                key_version: Some(v),
            })
        })())
    }

    async fn update_rotation_policy(
        &self,
        req: Request<UpdateRotationPolicyRequest>,
    ) -> Reply<UpdateRotationPolicyResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "UpdateRotationPolicy")?;
            let k = ops::keys::update_rotation_policy(
                Ctx::new(&self.0, &caller),
                &r.key_id,
                r.enable_automatic_rotation,
                r.rotation_interval_seconds,
            )?;
            Ok(UpdateRotationPolicyResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn schedule_key_deletion(
        &self,
        req: Request<ScheduleKeyDeletionRequest>,
    ) -> Reply<ScheduleKeyDeletionResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "ScheduleKeyDeletion")?;
            let (k, protected_secrets) = ops::keys::schedule_deletion(
                Ctx::new(&self.0, &caller),
                &r.key_id,
                r.pending_window_in_days,
            )?;
            Ok(ScheduleKeyDeletionResponse {
                key_metadata: meta(k),
                protected_secrets,
            })
        })())
    }

    async fn cancel_key_deletion(
        &self,
        req: Request<CancelKeyDeletionRequest>,
    ) -> Reply<CancelKeyDeletionResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "CancelKeyDeletion")?;
            let k = ops::keys::cancel_deletion(Ctx::new(&self.0, &caller), &r.key_id)?;
            Ok(CancelKeyDeletionResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn set_deletion_protection(
        &self,
        req: Request<SetDeletionProtectionRequest>,
    ) -> Reply<SetDeletionProtectionResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "SetDeletionProtection")?;
            let k = ops::keys::set_deletion_protection(
                Ctx::new(&self.0, &caller),
                &r.key_id,
                r.enable_deletion_protection,
                &r.deletion_protection_description,
            )?;
            Ok(SetDeletionProtectionResponse {
                key_metadata: meta(k),
            })
        })())
    }

    async fn get_parameters_for_import(
        &self,
        req: Request<GetParametersForImportRequest>,
    ) -> Reply<GetParametersForImportResponse> {
        reply(
            async {
                let (caller, r) = operator_request(req, "GetParametersForImport")?;
                let p = ops::keys::get_parameters_for_import(
                    Ctx::new(&self.0, &caller),
                    &r.key_id,
                    &r.wrapping_algorithm,
                    &r.wrapping_key_spec,
                )
                .await?;
                let pem = openssl::pkey::PKey::public_key_from_der(&p.record.public_key)
                    .and_then(|k| k.public_key_to_pem())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .map_err(|e| KmsError::new(crate::error::ErrorCode::Internal, e.to_string()))?;
                Ok(GetParametersForImportResponse {
                    key_id: p.record.key_id,
                    import_token: p.import_token,
                    public_key: p.record.public_key,
                    token_expire_time: crate::clock::rfc3339(p.record.expire_unix),
                    wrapping_algorithm: p.record.wrapping_algorithm,
                    wrapping_key_spec: p.record.wrapping_key_spec,
                    public_key_pem: pem,
                })
            }
            .await,
        )
    }

    async fn import_key_material(
        &self,
        req: Request<ImportKeyMaterialRequest>,
    ) -> Reply<ImportKeyMaterialResponse> {
        reply(
            async {
                let (caller, r) = operator_request(req, "ImportKeyMaterial")?;
                let k = ops::keys::import_material(
                    Ctx::new(&self.0, &caller),
                    &r.key_id,
                    &r.encrypted_key_material,
                    &r.import_token,
                    r.key_material_expire_unix,
                )
                .await?;
                Ok(ImportKeyMaterialResponse {
                    key_metadata: meta(k),
                })
            }
            .await,
        )
    }

    async fn delete_key_material(
        &self,
        req: Request<DeleteKeyMaterialRequest>,
    ) -> Reply<DeleteKeyMaterialResponse> {
        reply(
            async {
                let (caller, r) = operator_request(req, "DeleteKeyMaterial")?;
                let k = ops::keys::delete_material(Ctx::new(&self.0, &caller), &r.key_id).await?;
                Ok(DeleteKeyMaterialResponse {
                    key_metadata: meta(k),
                })
            }
            .await,
        )
    }

    async fn tag_resource(&self, req: Request<TagResourceRequest>) -> Reply<TagResourceResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "TagResource")?;
            let k = ops::keys::tag(Ctx::new(&self.0, &caller), &r.key_id, &tag_records(r.tags))?;
            Ok(TagResourceResponse {
                tags: api_tags(k.tags),
            })
        })())
    }

    async fn untag_resource(
        &self,
        req: Request<UntagResourceRequest>,
    ) -> Reply<UntagResourceResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "UntagResource")?;
            let k = ops::keys::untag(Ctx::new(&self.0, &caller), &r.key_id, &r.tag_keys)?;
            Ok(UntagResourceResponse {
                tags: api_tags(k.tags),
            })
        })())
    }

    async fn list_resource_tags(
        &self,
        req: Request<ListResourceTagsRequest>,
    ) -> Reply<ListResourceTagsResponse> {
        reply((|| {
            let (caller, r) = operator_request(req, "ListResourceTags")?;
            let tags = ops::keys::list_tags(Ctx::new(&self.0, &caller), &r.key_id)?;
            Ok(ListResourceTagsResponse {
                tags: api_tags(tags),
            })
        })())
    }
}
