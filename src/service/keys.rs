//! `hkms.v1.KeyService`.

use super::access::operator_only;
use super::{key_metadata, reply, Reply};
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::keys;
use crate::proto::key_service_server::KeyService;
use crate::proto::*;
use std::sync::Arc;
use tonic::Request;

#[derive(Debug, Clone)]
pub struct KeyApi(pub Arc<Appliance>);

/// A key id, or the key an `alias/<name>` names.
fn resolve(app: &Appliance, key_ref: &str) -> Result<String, KmsError> {
    keys::alias::resolve(app, key_ref)
}

/// As [`resolve`], with an empty reference kept empty (an optional filter).
fn resolve_optional(app: &Appliance, key_ref: &str) -> Result<String, KmsError> {
    if key_ref.is_empty() {
        return Ok(String::new());
    }
    resolve(app, key_ref)
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(&self, req: Request<CreateKeyRequest>) -> Reply<CreateKeyResponse> {
        operator_only(&req, "CreateKey")?;
        let r = req.into_inner();
        reply(
            keys::create(
                &self.0,
                &r.key_spec,
                &r.key_usage,
                &r.description,
                r.internal,
            )
            .await
            .map(|k| CreateKeyResponse {
                key_metadata: Some(key_metadata(k)),
            }),
        )
    }

    async fn describe_key(&self, req: Request<DescribeKeyRequest>) -> Reply<DescribeKeyResponse> {
        operator_only(&req, "DescribeKey")?;
        reply(
            resolve(&self.0, &req.into_inner().key_id)
                .and_then(|id| keys::describe(&self.0, &id))
                .map(|k| DescribeKeyResponse {
                    key_metadata: Some(key_metadata(k)),
                }),
        )
    }

    async fn list_keys(&self, req: Request<ListKeysRequest>) -> Reply<ListKeysResponse> {
        operator_only(&req, "ListKeys")?;
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
        operator_only(&req, "EnableKey")?;
        reply(
            resolve(&self.0, &req.into_inner().key_id)
                .and_then(|id| keys::set_enabled(&self.0, &id, true))
                .map(|k| EnableKeyResponse {
                    key_metadata: Some(key_metadata(k)),
                }),
        )
    }

    async fn create_alias(&self, req: Request<CreateAliasRequest>) -> Reply<CreateAliasResponse> {
        operator_only(&req, "CreateAlias")?;
        let r = req.into_inner();
        reply(
            resolve(&self.0, &r.key_id)
                .and_then(|id| keys::alias::create(&self.0, &r.alias_name, &id))
                .map(|a| CreateAliasResponse { alias: Some(a) }),
        )
    }

    async fn delete_alias(&self, req: Request<DeleteAliasRequest>) -> Reply<DeleteAliasResponse> {
        operator_only(&req, "DeleteAlias")?;
        reply(
            keys::alias::delete(&self.0, &req.into_inner().alias_name)
                .map(|_| DeleteAliasResponse {}),
        )
    }

    async fn list_aliases(&self, req: Request<ListAliasesRequest>) -> Reply<ListAliasesResponse> {
        operator_only(&req, "ListAliases")?;
        reply(
            resolve_optional(&self.0, &req.into_inner().key_id)
                .and_then(|id| keys::alias::list(&self.0, &id))
                .map(|aliases| ListAliasesResponse { aliases }),
        )
    }

    async fn mark_key_internal(
        &self,
        req: Request<MarkKeyInternalRequest>,
    ) -> Reply<MarkKeyInternalResponse> {
        operator_only(&req, "MarkKeyInternal")?;
        reply(
            resolve(&self.0, &req.into_inner().key_id)
                .and_then(|id| keys::mark_internal(&self.0, &id))
                .map(|k| MarkKeyInternalResponse {
                    key_metadata: Some(key_metadata(k)),
                }),
        )
    }

    async fn disable_key(&self, req: Request<DisableKeyRequest>) -> Reply<DisableKeyResponse> {
        operator_only(&req, "DisableKey")?;
        reply(
            resolve(&self.0, &req.into_inner().key_id)
                .and_then(|id| keys::set_enabled(&self.0, &id, false))
                .map(|k| DisableKeyResponse {
                    key_metadata: Some(key_metadata(k)),
                }),
        )
    }

    async fn update_alias(&self, _req: Request<UpdateAliasRequest>) -> Reply<UpdateAliasResponse> {
        Err(tonic::Status::unimplemented("UpdateAlias"))
    }

    async fn update_key_description(&self, _req: Request<UpdateKeyDescriptionRequest>) -> Reply<UpdateKeyDescriptionResponse> {
        Err(tonic::Status::unimplemented("UpdateKeyDescription"))
    }

    async fn create_key_version(&self, _req: Request<CreateKeyVersionRequest>) -> Reply<CreateKeyVersionResponse> {
        Err(tonic::Status::unimplemented("CreateKeyVersion"))
    }

    async fn list_key_versions(&self, _req: Request<ListKeyVersionsRequest>) -> Reply<ListKeyVersionsResponse> {
        Err(tonic::Status::unimplemented("ListKeyVersions"))
    }

    async fn describe_key_version(&self, _req: Request<DescribeKeyVersionRequest>) -> Reply<DescribeKeyVersionResponse> {
        Err(tonic::Status::unimplemented("DescribeKeyVersion"))
    }

    async fn update_rotation_policy(&self, _req: Request<UpdateRotationPolicyRequest>) -> Reply<UpdateRotationPolicyResponse> {
        Err(tonic::Status::unimplemented("UpdateRotationPolicy"))
    }

    async fn schedule_key_deletion(&self, _req: Request<ScheduleKeyDeletionRequest>) -> Reply<ScheduleKeyDeletionResponse> {
        Err(tonic::Status::unimplemented("ScheduleKeyDeletion"))
    }

    async fn cancel_key_deletion(&self, _req: Request<CancelKeyDeletionRequest>) -> Reply<CancelKeyDeletionResponse> {
        Err(tonic::Status::unimplemented("CancelKeyDeletion"))
    }

    async fn set_deletion_protection(&self, _req: Request<SetDeletionProtectionRequest>) -> Reply<SetDeletionProtectionResponse> {
        Err(tonic::Status::unimplemented("SetDeletionProtection"))
    }

    async fn get_parameters_for_import(&self, _req: Request<GetParametersForImportRequest>) -> Reply<GetParametersForImportResponse> {
        Err(tonic::Status::unimplemented("GetParametersForImport"))
    }

    async fn import_key_material(&self, _req: Request<ImportKeyMaterialRequest>) -> Reply<ImportKeyMaterialResponse> {
        Err(tonic::Status::unimplemented("ImportKeyMaterial"))
    }

    async fn delete_key_material(&self, _req: Request<DeleteKeyMaterialRequest>) -> Reply<DeleteKeyMaterialResponse> {
        Err(tonic::Status::unimplemented("DeleteKeyMaterial"))
    }

    async fn tag_resource(&self, _req: Request<TagResourceRequest>) -> Reply<TagResourceResponse> {
        Err(tonic::Status::unimplemented("TagResource"))
    }

    async fn untag_resource(&self, _req: Request<UntagResourceRequest>) -> Reply<UntagResourceResponse> {
        Err(tonic::Status::unimplemented("UntagResource"))
    }

    async fn list_resource_tags(&self, _req: Request<ListResourceTagsRequest>) -> Reply<ListResourceTagsResponse> {
        Err(tonic::Status::unimplemented("ListResourceTags"))
    }
}
