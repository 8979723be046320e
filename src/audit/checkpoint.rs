//! The trail's two internal keys and what they do:
//! - the **signing key** (EC P-256, SIGN/VERIFY): signs checkpoints of the chain's head,
//!   every `checkpoint_interval_secs` while records arrive and when hkmsd stops, and the seal
//!   of every export;
//! - the **hashing key** (HMAC-SHA-256): the keyed hashes that stand in for values a reader
//!   may need to match but must not read (`hkms audit hash VALUE`).
//!
//! Both are created inside the HSMs the first time they are needed (the instance must be
//! initialised) and are internal: no application can name, list or be granted them. Until
//! the instance exists, records are still written and chained; checkpoints wait.

use super::record::{checkpoint_message, Checkpoint, KEYED_HASH_PREFIX};
use crate::appliance::Appliance;
use crate::error::{ErrorCode, KmsError};
use crate::keys::{self, NewKey, VersionChoice};
use crate::store::named::Space;
use base64::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const SIGNING_KEY_SETTING: &str = "audit_signing_key";
const HASHING_KEY_SETTING: &str = "audit_hashing_key";
const SIGN_ALGORITHM: &str = "ECDSA_SHA_256";

/// The id of an internal key stored under `setting`, created the first time.
async fn internal_key(
    app: &Appliance,
    setting: &str,
    spec: &str,
    usage: &str,
    description: &str,
) -> Result<String, KmsError> {
    if let Some(id) = app.store.get_named(Space::Settings, setting)? {
        return String::from_utf8(id).map_err(|_| {
            KmsError::new(
                ErrorCode::StoreError,
                format!("the {setting} setting is corrupt"),
            )
        });
    }
    let key = keys::create(
        app,
        spec,
        usage,
        NewKey {
            description: description.into(),
            internal: true,
            ..Default::default()
        },
    )
    .await?;
    match app.store.put_named(
        Space::Settings,
        setting,
        key.key_id.clone().into_bytes(),
        true,
    ) {
        Ok(()) => {
            tracing::info!(key_id = %key.key_id, "{description}: key created");
            Ok(key.key_id)
        }
        // Another request made one first: use that one.
        Err(crate::store::StoreError::Exists(_)) => {
            Box::pin(internal_key(app, setting, spec, usage, description)).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn signing_key(app: &Appliance) -> Result<String, KmsError> {
    internal_key(
        app,
        SIGNING_KEY_SETTING,
        "EC_P256",
        "SIGN/VERIFY",
        "hkms: signs the audit trail's checkpoints",
    )
    .await
}

/// Signs `message` with the signing key: (key version id, base64 DER signature).
pub async fn sign(app: &Appliance, message: &[u8]) -> Result<(String, String), KmsError> {
    let key_id = signing_key(app).await?;
    let s = crate::crypto::asymmetric::sign(
        app,
        &key_id,
        VersionChoice::Primary,
        SIGN_ALGORITHM,
        "RAW",
        message,
    )
    .await?;
    Ok((
        s.key_version_id,
        base64::engine::general_purpose::STANDARD.encode(s.signature),
    ))
}

/// Every version of the signing key, as PEM public keys by key version id.
pub async fn public_keys(app: &Appliance) -> Result<BTreeMap<String, String>, KmsError> {
    let key_id = signing_key(app).await?;
    let (versions, ..) = keys::versions::list(app, &key_id, 1, 100)?;
    let mut out = BTreeMap::new();
    for v in versions {
        let public = crate::crypto::asymmetric::public_key(
            app,
            &key_id,
            VersionChoice::Id(&v.key_version_id),
        )
        .await?;
        out.insert(v.key_version_id, public.pem);
    }
    Ok(out)
}

/// The keyed hash the trail shows in place of `value`.
pub async fn keyed_hash(app: &Appliance, value: &[u8]) -> Result<String, KmsError> {
    let key_id = internal_key(
        app,
        HASHING_KEY_SETTING,
        "HMAC_SHA_256",
        "GENERATE/VERIFY_MAC",
        "hkms: keys the audit trail's hashes of values",
    )
    .await?;
    let mac = crate::crypto::mac::generate(app, &key_id, VersionChoice::Primary, "", value).await?;
    Ok(format!("{KEYED_HASH_PREFIX}{}", hex::encode(mac.mac)))
}

/// Signs a checkpoint of the chain's head unless the head is already checkpointed.
/// Returns the checkpointed sequence number.
pub async fn checkpoint(app: &Appliance, last: u64) -> Result<u64, KmsError> {
    let head = app.audit.head();
    if head.seq == 0 || head.seq == last {
        return Ok(last);
    }
    let time = super::record::now_micros();
    let (key_version_id, signature) =
        sign(app, &checkpoint_message(head.seq, &head.hash, &time)).await?;
    app.audit
        .append_checkpoint(Checkpoint {
            seq: head.seq,
            head: head.hash,
            time,
            key_version_id,
            signature,
        })
        .await
        .map_err(|e| KmsError::new(ErrorCode::AuditUnavailable, e))?;
    Ok(head.seq)
}

/// Signs checkpoints every `interval` while records arrive, until hkmsd stops; then one
/// last checkpoint.
pub async fn run_forever(app: Arc<Appliance>, interval: Duration) {
    if !app.audit.enabled() {
        return;
    }
    let mut last = 0;
    let mut warned = false;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping = app.stopping();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stopping => break,
        }
        if app.instance().is_err() {
            continue;
        }
        match checkpoint(&app, last).await {
            Ok(seq) => {
                last = seq;
                warned = false;
            }
            Err(e) if !warned => {
                tracing::warn!("audit checkpoint not signed: {e}");
                warned = true;
            }
            Err(_) => {}
        }
    }
    if app.instance().is_ok() {
        if let Err(e) = checkpoint(&app, last).await {
            tracing::warn!("final audit checkpoint not signed: {e}");
        }
    }
}
