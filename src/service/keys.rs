//! `hkms.v1.KeyService`: keys, their versions, lifecycle, import, tags and aliases.
//! Operators only. Each handler resolves the key reference (id or alias), calls
//! [`crate::keys`] and encodes the answer.

use super::resource::{operator_call, operator_call_async};
use super::{key_metadata, Reply};
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::keys::{self, deletion, import, tags, versions};
use crate::proto::key_service_server::KeyService;
use crate::proto::*;
use crate::store::records::{KeyRecord, TagRecord};
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
        operator_call_async(req, "CreateKey", |r| async move {
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
            let k = keys::create(&self.0, &r.key_spec, &r.key_usage, new).await?;
            Ok(CreateKeyResponse {
                key_metadata: meta(k),
            })
        })
        .await
    }

    async fn describe_key(&self, req: Request<DescribeKeyRequest>) -> Reply<DescribeKeyResponse> {
        let app = &*self.0;
        operator_call(req, "DescribeKey", |r| {
            let k = keys::describe(app, &resolve(app, &r.key_id)?)?;
            Ok(DescribeKeyResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn list_keys(&self, req: Request<ListKeysRequest>) -> Reply<ListKeysResponse> {
        operator_call(req, "ListKeys", |r| {
            let filter = keys::KeyFilter {
                key_state: r.key_state,
                key_spec: r.key_spec,
                key_usage: r.key_usage,
                origin: r.origin,
                tags: tag_records(r.tags),
            };
            let (ids, page_number, page_size, total_count) =
                keys::list(&self.0, r.page_number, r.page_size, &filter)?;
            Ok(ListKeysResponse {
                keys: ids
                    .into_iter()
                    .map(|key_id| KeyListEntry { key_id })
                    .collect(),
                page_number,
                page_size,
                total_count,
            })
        })
    }

    async fn enable_key(&self, req: Request<EnableKeyRequest>) -> Reply<EnableKeyResponse> {
        let app = &*self.0;
        operator_call(req, "EnableKey", |r| {
            let k = keys::set_enabled(app, &resolve(app, &r.key_id)?, true)?;
            Ok(EnableKeyResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn disable_key(&self, req: Request<DisableKeyRequest>) -> Reply<DisableKeyResponse> {
        let app = &*self.0;
        operator_call(req, "DisableKey", |r| {
            let k = keys::set_enabled(app, &resolve(app, &r.key_id)?, false)?;
            Ok(DisableKeyResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn mark_key_internal(
        &self,
        req: Request<MarkKeyInternalRequest>,
    ) -> Reply<MarkKeyInternalResponse> {
        let app = &*self.0;
        operator_call(req, "MarkKeyInternal", |r| {
            let k = keys::mark_internal(app, &resolve(app, &r.key_id)?)?;
            Ok(MarkKeyInternalResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn create_alias(&self, req: Request<CreateAliasRequest>) -> Reply<CreateAliasResponse> {
        let app = &*self.0;
        operator_call(req, "CreateAlias", |r| {
            let alias = keys::alias::create(app, &r.alias_name, &resolve(app, &r.key_id)?)?;
            Ok(CreateAliasResponse { alias: Some(alias) })
        })
    }

    async fn update_alias(&self, req: Request<UpdateAliasRequest>) -> Reply<UpdateAliasResponse> {
        let app = &*self.0;
        operator_call(req, "UpdateAlias", |r| {
            let alias = keys::alias::update(app, &r.alias_name, &resolve(app, &r.key_id)?)?;
            Ok(UpdateAliasResponse { alias: Some(alias) })
        })
    }

    async fn delete_alias(&self, req: Request<DeleteAliasRequest>) -> Reply<DeleteAliasResponse> {
        operator_call(req, "DeleteAlias", |r| {
            keys::alias::delete(&self.0, &r.alias_name)?;
            Ok(DeleteAliasResponse {})
        })
    }

    async fn list_aliases(&self, req: Request<ListAliasesRequest>) -> Reply<ListAliasesResponse> {
        let app = &*self.0;
        operator_call(req, "ListAliases", |r| {
            let aliases = keys::alias::list(app, &resolve_optional(app, &r.key_id)?)?;
            Ok(ListAliasesResponse { aliases })
        })
    }

    async fn update_key_description(
        &self,
        req: Request<UpdateKeyDescriptionRequest>,
    ) -> Reply<UpdateKeyDescriptionResponse> {
        let app = &*self.0;
        operator_call(req, "UpdateKeyDescription", |r| {
            let k = keys::update_description(app, &resolve(app, &r.key_id)?, &r.description)?;
            Ok(UpdateKeyDescriptionResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn create_key_version(
        &self,
        req: Request<CreateKeyVersionRequest>,
    ) -> Reply<CreateKeyVersionResponse> {
        let app = &*self.0;
        operator_call_async(req, "CreateKeyVersion", |r| async move {
            let v = versions::create_version(app, &resolve(app, &r.key_id)?).await?;
            Ok(CreateKeyVersionResponse {
                key_version: Some(v),
            })
        })
        .await
    }

    async fn list_key_versions(
        &self,
        req: Request<ListKeyVersionsRequest>,
    ) -> Reply<ListKeyVersionsResponse> {
        let app = &*self.0;
        operator_call(req, "ListKeyVersions", |r| {
            let (key_versions, page_number, page_size, total_count) =
                versions::list(app, &resolve(app, &r.key_id)?, r.page_number, r.page_size)?;
            Ok(ListKeyVersionsResponse {
                key_versions,
                page_number,
                page_size,
                total_count,
            })
        })
    }

    async fn describe_key_version(
        &self,
        req: Request<DescribeKeyVersionRequest>,
    ) -> Reply<DescribeKeyVersionResponse> {
        let app = &*self.0;
        operator_call(req, "DescribeKeyVersion", |r| {
            let v = versions::describe_version(app, &resolve(app, &r.key_id)?, &r.key_version_id)?;
            Ok(DescribeKeyVersionResponse {
                key_version: Some(v),
            })
        })
    }

    async fn update_rotation_policy(
        &self,
        req: Request<UpdateRotationPolicyRequest>,
    ) -> Reply<UpdateRotationPolicyResponse> {
        let app = &*self.0;
        operator_call(req, "UpdateRotationPolicy", |r| {
            let k = versions::update_rotation_policy(
                app,
                &resolve(app, &r.key_id)?,
                r.enable_automatic_rotation,
                r.rotation_interval_seconds,
            )?;
            Ok(UpdateRotationPolicyResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn schedule_key_deletion(
        &self,
        req: Request<ScheduleKeyDeletionRequest>,
    ) -> Reply<ScheduleKeyDeletionResponse> {
        let app = &*self.0;
        operator_call(req, "ScheduleKeyDeletion", |r| {
            let id = resolve(app, &r.key_id)?;
            let k = deletion::schedule(app, &id, r.pending_window_in_days)?;
            let protected_secrets = crate::secrets::protected_by(app, &id)?;
            if !protected_secrets.is_empty() {
                tracing::warn!(
                    key_id = %id,
                    secrets = %protected_secrets.join(", "),
                    "a key scheduled for deletion protects secrets: they cannot be read while the deletion is pending, nor ever after it"
                );
            }
            Ok(ScheduleKeyDeletionResponse {
                key_metadata: meta(k),
                protected_secrets,
            })
        })
    }

    async fn cancel_key_deletion(
        &self,
        req: Request<CancelKeyDeletionRequest>,
    ) -> Reply<CancelKeyDeletionResponse> {
        let app = &*self.0;
        operator_call(req, "CancelKeyDeletion", |r| {
            let k = deletion::cancel(app, &resolve(app, &r.key_id)?)?;
            Ok(CancelKeyDeletionResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn set_deletion_protection(
        &self,
        req: Request<SetDeletionProtectionRequest>,
    ) -> Reply<SetDeletionProtectionResponse> {
        let app = &*self.0;
        operator_call(req, "SetDeletionProtection", |r| {
            let k = deletion::set_protection(
                app,
                &resolve(app, &r.key_id)?,
                r.enable_deletion_protection,
                &r.deletion_protection_description,
            )?;
            Ok(SetDeletionProtectionResponse {
                key_metadata: meta(k),
            })
        })
    }

    async fn get_parameters_for_import(
        &self,
        req: Request<GetParametersForImportRequest>,
    ) -> Reply<GetParametersForImportResponse> {
        let app = &*self.0;
        operator_call_async(req, "GetParametersForImport", |r| async move {
            let id = resolve(app, &r.key_id)?;
            let p = import::get_parameters(app, &id, &r.wrapping_algorithm, &r.wrapping_key_spec)
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
        })
        .await
    }

    async fn import_key_material(
        &self,
        req: Request<ImportKeyMaterialRequest>,
    ) -> Reply<ImportKeyMaterialResponse> {
        let app = &*self.0;
        operator_call_async(req, "ImportKeyMaterial", |r| async move {
            let id = resolve(app, &r.key_id)?;
            let k = import::import_material(
                app,
                &id,
                &r.encrypted_key_material,
                &r.import_token,
                r.key_material_expire_unix,
            )
            .await?;
            Ok(ImportKeyMaterialResponse {
                key_metadata: meta(k),
            })
        })
        .await
    }

    async fn delete_key_material(
        &self,
        req: Request<DeleteKeyMaterialRequest>,
    ) -> Reply<DeleteKeyMaterialResponse> {
        let app = &*self.0;
        operator_call_async(req, "DeleteKeyMaterial", |r| async move {
            let k = import::delete_material(app, &resolve(app, &r.key_id)?).await?;
            Ok(DeleteKeyMaterialResponse {
                key_metadata: meta(k),
            })
        })
        .await
    }

    async fn tag_resource(&self, req: Request<TagResourceRequest>) -> Reply<TagResourceResponse> {
        let app = &*self.0;
        operator_call(req, "TagResource", |r| {
            let k = tags::tag(app, &resolve(app, &r.key_id)?, &tag_records(r.tags))?;
            Ok(TagResourceResponse {
                tags: api_tags(k.tags),
            })
        })
    }

    async fn untag_resource(
        &self,
        req: Request<UntagResourceRequest>,
    ) -> Reply<UntagResourceResponse> {
        let app = &*self.0;
        operator_call(req, "UntagResource", |r| {
            let k = tags::untag(app, &resolve(app, &r.key_id)?, &r.tag_keys)?;
            Ok(UntagResourceResponse {
                tags: api_tags(k.tags),
            })
        })
    }

    async fn list_resource_tags(
        &self,
        req: Request<ListResourceTagsRequest>,
    ) -> Reply<ListResourceTagsResponse> {
        let app = &*self.0;
        operator_call(req, "ListResourceTags", |r| {
            let k = keys::describe(app, &resolve(app, &r.key_id)?)?;
            Ok(ListResourceTagsResponse {
                tags: api_tags(k.tags),
            })
        })
    }
}
