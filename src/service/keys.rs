//! `hkms.v1.KeyService`: keys, their versions, lifecycle, import, tags and aliases.
//! Operators only. Each handler resolves the key reference (id or alias), calls
//! [`crate::keys`] and encodes the answer.

use super::access::operator_only;
use super::{key_metadata, reply, Reply};
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

impl KeyApi {
    /// Checks that the caller is an operator, resolves `key_ref` and runs `f` on the key id.
    fn on_key<Q, R>(
        &self,
        req: &Request<Q>,
        operation: &str,
        key_ref: &str,
        f: impl FnOnce(&Appliance, &str) -> Result<R, KmsError>,
    ) -> Result<R, KmsError> {
        crate::access::require_operator(&crate::authn::caller(req)?, operation)?;
        let id = resolve(&self.0, key_ref)?;
        f(&self.0, &id)
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(&self, req: Request<CreateKeyRequest>) -> Reply<CreateKeyResponse> {
        operator_only(&req, "CreateKey")?;
        let r = req.into_inner();
        let new = keys::parse_origin(&r.origin).map(|external| keys::NewKey {
            description: r.description,
            internal: r.internal,
            external,
            rotation_interval: r
                .enable_automatic_rotation
                .then_some(r.rotation_interval_seconds),
            tags: tag_records(r.tags),
            deletion_protection: r.deletion_protection,
        });
        let created = match new {
            Ok(new) => keys::create(&self.0, &r.key_spec, &r.key_usage, new).await,
            Err(e) => Err(e),
        };
        reply(created.map(|k| CreateKeyResponse {
            key_metadata: meta(k),
        }))
    }

    async fn describe_key(&self, req: Request<DescribeKeyRequest>) -> Reply<DescribeKeyResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "DescribeKey", &key, keys::describe)
                .map(|k| DescribeKeyResponse {
                    key_metadata: meta(k),
                }),
        )
    }

    async fn list_keys(&self, req: Request<ListKeysRequest>) -> Reply<ListKeysResponse> {
        operator_only(&req, "ListKeys")?;
        let r = req.into_inner();
        let filter = keys::KeyFilter {
            key_state: r.key_state,
            key_spec: r.key_spec,
            key_usage: r.key_usage,
            origin: r.origin,
            tags: tag_records(r.tags),
        };
        reply(
            keys::list(&self.0, r.page_number, r.page_size, &filter).map(
                |(ids, n, size, total)| ListKeysResponse {
                    keys: ids
                        .into_iter()
                        .map(|key_id| KeyListEntry { key_id })
                        .collect(),
                    page_number: n,
                    page_size: size,
                    total_count: total,
                },
            ),
        )
    }

    async fn enable_key(&self, req: Request<EnableKeyRequest>) -> Reply<EnableKeyResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "EnableKey", &key, |a, id| {
                keys::set_enabled(a, id, true)
            })
            .map(|k| EnableKeyResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn disable_key(&self, req: Request<DisableKeyRequest>) -> Reply<DisableKeyResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "DisableKey", &key, |a, id| {
                keys::set_enabled(a, id, false)
            })
            .map(|k| DisableKeyResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn mark_key_internal(
        &self,
        req: Request<MarkKeyInternalRequest>,
    ) -> Reply<MarkKeyInternalResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "MarkKeyInternal", &key, keys::mark_internal)
                .map(|k| MarkKeyInternalResponse {
                    key_metadata: meta(k),
                }),
        )
    }

    async fn create_alias(&self, req: Request<CreateAliasRequest>) -> Reply<CreateAliasResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "CreateAlias", &r.key_id, |a, id| {
                keys::alias::create(a, &r.alias_name, id)
            })
            .map(|a| CreateAliasResponse { alias: Some(a) }),
        )
    }

    async fn update_alias(&self, req: Request<UpdateAliasRequest>) -> Reply<UpdateAliasResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "UpdateAlias", &r.key_id, |a, id| {
                keys::alias::update(a, &r.alias_name, id)
            })
            .map(|a| UpdateAliasResponse { alias: Some(a) }),
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

    async fn update_key_description(
        &self,
        req: Request<UpdateKeyDescriptionRequest>,
    ) -> Reply<UpdateKeyDescriptionResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "UpdateKeyDescription", &r.key_id, |a, id| {
                keys::update_description(a, id, &r.description)
            })
            .map(|k| UpdateKeyDescriptionResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn create_key_version(
        &self,
        req: Request<CreateKeyVersionRequest>,
    ) -> Reply<CreateKeyVersionResponse> {
        let key = req.get_ref().key_id.clone();
        let id = match self.on_key(&req, "CreateKeyVersion", &key, |_, id| Ok(id.to_owned())) {
            Ok(id) => id,
            Err(e) => return reply(Err(e)),
        };
        reply(
            versions::create_version(&self.0, &id)
                .await
                .map(|v| CreateKeyVersionResponse {
                    key_version: Some(v),
                }),
        )
    }

    async fn list_key_versions(
        &self,
        req: Request<ListKeyVersionsRequest>,
    ) -> Reply<ListKeyVersionsResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "ListKeyVersions", &r.key_id, |a, id| {
                versions::list(a, id, r.page_number, r.page_size)
            })
            .map(|(key_versions, n, size, total)| ListKeyVersionsResponse {
                key_versions,
                page_number: n,
                page_size: size,
                total_count: total,
            }),
        )
    }

    async fn describe_key_version(
        &self,
        req: Request<DescribeKeyVersionRequest>,
    ) -> Reply<DescribeKeyVersionResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "DescribeKeyVersion", &r.key_id, |a, id| {
                versions::describe_version(a, id, &r.key_version_id)
            })
            .map(|v| DescribeKeyVersionResponse {
                key_version: Some(v),
            }),
        )
    }

    async fn update_rotation_policy(
        &self,
        req: Request<UpdateRotationPolicyRequest>,
    ) -> Reply<UpdateRotationPolicyResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "UpdateRotationPolicy", &r.key_id, |a, id| {
                versions::update_rotation_policy(
                    a,
                    id,
                    r.enable_automatic_rotation,
                    r.rotation_interval_seconds,
                )
            })
            .map(|k| UpdateRotationPolicyResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn schedule_key_deletion(
        &self,
        req: Request<ScheduleKeyDeletionRequest>,
    ) -> Reply<ScheduleKeyDeletionResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "ScheduleKeyDeletion", &r.key_id, |a, id| {
                deletion::schedule(a, id, r.pending_window_in_days)
            })
            .map(|k| ScheduleKeyDeletionResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn cancel_key_deletion(
        &self,
        req: Request<CancelKeyDeletionRequest>,
    ) -> Reply<CancelKeyDeletionResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "CancelKeyDeletion", &key, deletion::cancel)
                .map(|k| CancelKeyDeletionResponse {
                    key_metadata: meta(k),
                }),
        )
    }

    async fn set_deletion_protection(
        &self,
        req: Request<SetDeletionProtectionRequest>,
    ) -> Reply<SetDeletionProtectionResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "SetDeletionProtection", &r.key_id, |a, id| {
                deletion::set_protection(
                    a,
                    id,
                    r.enable_deletion_protection,
                    &r.deletion_protection_description,
                )
            })
            .map(|k| SetDeletionProtectionResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn get_parameters_for_import(
        &self,
        req: Request<GetParametersForImportRequest>,
    ) -> Reply<GetParametersForImportResponse> {
        let r = req.get_ref().clone();
        let id = match self.on_key(&req, "GetParametersForImport", &r.key_id, |_, id| {
            Ok(id.to_owned())
        }) {
            Ok(id) => id,
            Err(e) => return reply(Err(e)),
        };
        let params =
            import::get_parameters(&self.0, &id, &r.wrapping_algorithm, &r.wrapping_key_spec).await;
        reply(params.map(|p| {
            let pem = openssl::pkey::PKey::public_key_from_der(&p.record.public_key)
                .and_then(|k| k.public_key_to_pem())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            GetParametersForImportResponse {
                key_id: p.record.key_id,
                import_token: p.import_token,
                public_key: p.record.public_key,
                token_expire_time: crate::clock::rfc3339(p.record.expire_unix),
                wrapping_algorithm: p.record.wrapping_algorithm,
                wrapping_key_spec: p.record.wrapping_key_spec,
                public_key_pem: pem,
            }
        }))
    }

    async fn import_key_material(
        &self,
        req: Request<ImportKeyMaterialRequest>,
    ) -> Reply<ImportKeyMaterialResponse> {
        let key = req.get_ref().key_id.clone();
        let id = match self.on_key(&req, "ImportKeyMaterial", &key, |_, id| Ok(id.to_owned())) {
            Ok(id) => id,
            Err(e) => return reply(Err(e)),
        };
        let r = req.into_inner();
        reply(
            import::import_material(
                &self.0,
                &id,
                &r.encrypted_key_material,
                &r.import_token,
                r.key_material_expire_unix,
            )
            .await
            .map(|k| ImportKeyMaterialResponse {
                key_metadata: meta(k),
            }),
        )
    }

    async fn delete_key_material(
        &self,
        req: Request<DeleteKeyMaterialRequest>,
    ) -> Reply<DeleteKeyMaterialResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "DeleteKeyMaterial", &key, import::delete_material)
                .map(|k| DeleteKeyMaterialResponse {
                    key_metadata: meta(k),
                }),
        )
    }

    async fn tag_resource(&self, req: Request<TagResourceRequest>) -> Reply<TagResourceResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "TagResource", &r.key_id, |a, id| {
                tags::tag(a, id, &tag_records(r.tags))
            })
            .map(|k| TagResourceResponse {
                tags: api_tags(k.tags),
            }),
        )
    }

    async fn untag_resource(
        &self,
        req: Request<UntagResourceRequest>,
    ) -> Reply<UntagResourceResponse> {
        let r = req.get_ref().clone();
        reply(
            self.on_key(&req, "UntagResource", &r.key_id, |a, id| {
                tags::untag(a, id, &r.tag_keys)
            })
            .map(|k| UntagResourceResponse {
                tags: api_tags(k.tags),
            }),
        )
    }

    async fn list_resource_tags(
        &self,
        req: Request<ListResourceTagsRequest>,
    ) -> Reply<ListResourceTagsResponse> {
        let key = req.get_ref().key_id.clone();
        reply(
            self.on_key(&req, "ListResourceTags", &key, keys::describe)
                .map(|k| ListResourceTagsResponse {
                    tags: api_tags(k.tags),
                }),
        )
    }
}
