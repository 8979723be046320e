//! Secrets: every operation authorised for the caller ([`crate::access::secrets`]), then
//! run ([`crate::secrets`]).
//!
//! An operation on a named secret reads its record first: the decision may depend on the
//! secret's own policy, its CMK and its managing product. A secret that does not exist is
//! reported as missing only to callers that may run the operation on that name; anyone else
//! learns only that the operation is forbidden. Listings keep the secrets the caller may
//! list (`ListSecrets` on each), and say nothing about the others.

use super::Ctx;
use crate::access::secrets::{self as access, SecretTarget};
use crate::error::KmsError;
use crate::keys::{self, alias};
use crate::proto::SecretVersion;
use crate::secrets::manage::{self, Deletion, Filter};
use crate::secrets::names::{self, managed_product};
use crate::secrets::{self, NewSecret, NewVersion, Request, Value};
use crate::store::records::SecretRecord;

fn target<'a>(name: &'a str, rec: Option<&'a SecretRecord>) -> SecretTarget<'a> {
    SecretTarget {
        name,
        product: managed_product(name),
        policy: rec.map(|r| r.policy.as_str()).unwrap_or(""),
        key_id: rec.map(|r| r.kms_key_id.as_str()).unwrap_or(""),
    }
}

/// The instance id: the account of resource names in secret policies.
fn account(ctx: &Ctx<'_>) -> Result<String, KmsError> {
    Ok(ctx.app.instance()?.instance_id)
}

fn request<'a>(ctx: &Ctx<'a>) -> Request<'a> {
    Request {
        app: ctx.app,
        caller: ctx.caller,
    }
}

/// Authorises `operation` on secret `name` and returns its record. A secret that does not
/// exist is reported only to callers who may run the operation on that name.
fn find(ctx: &Ctx<'_>, operation: &str, name: &str) -> Result<SecretRecord, KmsError> {
    crate::audit::scope::note_secret(name, None);
    let rec = ctx.app.store.secret(name)?;
    noting_denial(access::authorize(
        &*ctx.app.store,
        &account(ctx)?,
        ctx.caller,
        operation,
        &target(name, rec.as_ref()),
    ))?;
    rec.ok_or_else(|| secrets::not_found(name))
}

/// `verdict`, noted in the audit record when it refuses (the secret's name is then
/// recorded only as a keyed hash).
fn noting_denial(verdict: Result<(), KmsError>) -> Result<(), KmsError> {
    if verdict.is_err() {
        crate::audit::scope::note_denied();
    }
    verdict
}

/// Whether secret `name` exists. Only for telling a missing secret from a missing version
/// after an operation on `name` was authorised (and failed with `ResourceNotFound`): the
/// caller may learn it then.
pub fn exists(ctx: Ctx<'_>, name: &str) -> bool {
    matches!(ctx.app.store.secret(name), Ok(Some(_)))
}

/// CreateSecret. The caller must be allowed to create a secret of that name, and (unless
/// an operator) to make data keys with the CMK it names; a CMK that does not exist is
/// reported only to callers who may use that name.
pub async fn create(ctx: Ctx<'_>, new: NewSecret) -> Result<SecretRecord, KmsError> {
    names::check_name(&new.name)?;
    crate::audit::scope::note_secret(&new.name, None);
    noting_denial(access::authorize(
        &*ctx.app.store,
        &account(&ctx)?,
        ctx.caller,
        "CreateSecret",
        &target(&new.name, None),
    ))?;
    secrets::check_new(&new)?;
    let requested = new.encryption_key_id.as_str();
    let key_id = match alias::resolve(ctx.app, requested) {
        Ok(id) => id,
        Err(e) => {
            access::may_seal_with(&*ctx.app.store, ctx.caller, requested, requested)?;
            return Err(e);
        }
    };
    access::may_seal_with(&*ctx.app.store, ctx.caller, requested, &key_id)?;
    if keys::describe(ctx.app, &key_id)?.internal {
        return Err(KmsError::invalid(format!(
            "key {key_id} is internal to hkmsd and cannot protect secrets"
        )));
    }
    secrets::create(request(&ctx), new, key_id).await
}

/// GetSecretValue: by version id, by stage, or ACSCurrent.
pub async fn get_value(
    ctx: Ctx<'_>,
    name: &str,
    stage: &str,
    version_id: &str,
) -> Result<Value, KmsError> {
    let rec = find(&ctx, "GetSecretValue", name)?;
    secrets::get_value(request(&ctx), rec, stage, version_id).await
}

/// PutSecretValue: a new version; returns the record and the version's id.
pub async fn put_value(
    ctx: Ctx<'_>,
    name: &str,
    new: NewVersion,
) -> Result<(SecretRecord, String), KmsError> {
    let rec = find(&ctx, "PutSecretValue", name)?;
    secrets::put_value(request(&ctx), rec, new).await
}

/// Replaces the value of an existing version, by id or stage (Tencent SSM's UpdateSecret),
/// authorised as `UpdateSecret`: it overwrites what a version held, which only the
/// lifecycle roles may. Returns the record and the version's id.
pub async fn replace_value(
    ctx: Ctx<'_>,
    name: &str,
    stage: &str,
    version_id: &str,
    data: &[u8],
    data_type: &str,
) -> Result<(SecretRecord, String), KmsError> {
    let rec = find(&ctx, "UpdateSecret", name)?;
    secrets::replace::replace_value(request(&ctx), rec, stage, version_id, data, data_type).await
}

/// UpdateSecretVersionStage.
pub fn update_stage(
    ctx: Ctx<'_>,
    name: &str,
    stage: &str,
    from: &str,
    to: &str,
) -> Result<SecretRecord, KmsError> {
    let rec = find(&ctx, "UpdateSecretVersionStage", name)?;
    secrets::update_stage(request(&ctx), rec, stage, from, to)
}

/// DescribeSecret.
pub fn describe(ctx: Ctx<'_>, name: &str) -> Result<SecretRecord, KmsError> {
    find(&ctx, "DescribeSecret", name)
}

/// Every secret that matches `filter` and that the caller may list, in name order (fronts
/// with their own order and paging start here).
pub fn list_all(ctx: Ctx<'_>, filter: &Filter) -> Result<Vec<SecretRecord>, KmsError> {
    let account = account(&ctx)?;
    Ok(manage::matching(ctx.app, filter)?
        .into_iter()
        .filter(|rec| {
            matches!(
                access::decide(
                    &*ctx.app.store,
                    &account,
                    ctx.caller,
                    "ListSecrets",
                    &target(&rec.name, Some(rec)),
                ),
                Ok(access::Verdict::Allow(_))
            )
        })
        .collect())
}

/// ListSecrets: one page of [`list_all`], how many there are in all, and the page number
/// and size used.
pub fn list(
    ctx: Ctx<'_>,
    filter: &Filter,
    page_number: u32,
    page_size: u32,
) -> Result<(Vec<SecretRecord>, u64, u32, u32), KmsError> {
    let (page_number, page_size) = keys::page(page_number, page_size)?;
    let visible = list_all(ctx, filter)?;
    let total = visible.len() as u64;
    let page = keys::page_slice(visible, page_number, page_size);
    Ok((page, total, page_number, page_size))
}

/// ListSecretVersionIds: one page of the versions, oldest first (with `include_deprecated`,
/// also those that hold no stage).
pub fn list_versions(
    ctx: Ctx<'_>,
    name: &str,
    include_deprecated: bool,
    page_number: u32,
    page_size: u32,
) -> Result<(Vec<SecretVersion>, u64, u32, u32), KmsError> {
    keys::page(page_number, page_size)?;
    let rec = find(&ctx, "ListSecretVersionIds", name)?;
    manage::list_versions(
        request(&ctx),
        &rec,
        include_deprecated,
        page_number,
        page_size,
    )
}

/// UpdateSecret: the description and the extended configuration.
pub fn update(
    ctx: Ctx<'_>,
    name: &str,
    description: Option<&str>,
    extended_config: Option<&str>,
) -> Result<SecretRecord, KmsError> {
    let rec = find(&ctx, "UpdateSecret", name)?;
    manage::update(request(&ctx), rec, description, extended_config)
}

/// DeleteSecret; returns when the deletion becomes final (`None`: done).
pub fn delete(ctx: Ctx<'_>, name: &str, how: Deletion) -> Result<Option<i64>, KmsError> {
    let rec = find(&ctx, "DeleteSecret", name)?;
    manage::delete(request(&ctx), rec, how)
}

/// RestoreSecret.
pub fn restore(ctx: Ctx<'_>, name: &str) -> Result<SecretRecord, KmsError> {
    let rec = find(&ctx, "RestoreSecret", name)?;
    manage::restore(request(&ctx), rec)
}

/// EnableSecret (`enabled`) or DisableSecret.
pub fn set_enabled(ctx: Ctx<'_>, name: &str, enabled: bool) -> Result<SecretRecord, KmsError> {
    let operation = if enabled {
        "EnableSecret"
    } else {
        "DisableSecret"
    };
    let rec = find(&ctx, operation, name)?;
    manage::set_enabled(request(&ctx), rec, enabled)
}

/// SetSecretPolicy.
pub fn set_policy(ctx: Ctx<'_>, name: &str, policy: &str) -> Result<(), KmsError> {
    let rec = find(&ctx, "SetSecretPolicy", name)?;
    manage::set_policy(request(&ctx), rec, policy)
}

/// GetSecretPolicy: the document, or empty.
pub fn get_policy(ctx: Ctx<'_>, name: &str) -> Result<String, KmsError> {
    Ok(find(&ctx, "GetSecretPolicy", name)?.policy)
}

/// DeleteSecretPolicy.
pub fn delete_policy(ctx: Ctx<'_>, name: &str) -> Result<(), KmsError> {
    let rec = find(&ctx, "DeleteSecretPolicy", name)?;
    manage::delete_policy(request(&ctx), rec)
}
