//! A version's value replaced in place: what Tencent SSM's UpdateSecret does. Every other
//! API of hkms adds versions instead (PutSecretValue); this is the one exception to
//! immutable versions, and only the SSM front uses it.

use super::names::{self, DataType, CURRENT};
use super::{commit_to, require_enabled, seal_version, stages, Request};
use crate::error::{ErrorCode, KmsError};
use crate::store::records::{SecretRecord, SecretVersionRecord};
use crate::store::SecretStore;

/// Replaces the value of a version (what Tencent SSM's UpdateSecret does), chosen like
/// GetSecretValue chooses one (by id, by stage, or ACSCurrent): the version keeps its id and
/// its stages; the new value is sealed with a fresh data key, and the old value is gone.
/// Every other API of hkms adds versions instead (PutSecretValue). Returns the record and
/// the version's id.
pub async fn replace_value(
    r: Request<'_>,
    rec: SecretRecord,
    stage: &str,
    version_id: &str,
    data: &[u8],
    data_type: &str,
) -> Result<(SecretRecord, String), KmsError> {
    require_enabled(&rec)?;
    let data_type = DataType::parse(data_type)?;
    names::check_value(data, data_type)?;
    let chosen = stages::choose(&rec, stage, version_id)?;
    let name = rec.name.clone();
    let version = seal_version(r.app, &name, &rec.kms_key_id, &chosen, data_type, data).await?;
    let rec = replace_version(&*r.app.store, rec, &version, stage, version_id)?;
    tracing::info!(caller = %r.caller, secret = %name, version_id = %chosen, "secret version's value replaced");
    Ok((rec, chosen))
}

/// Stores `version` in place of the version of the same id, which `stage` and `version_id`
/// chose from `rec`. The version is chosen again from every record the commit is made on:
/// when another writer moved the stage meanwhile (a PutSecretValue made a new version
/// current), the value sealed for the version chosen first must not overwrite the one that
/// is no longer current, so that is a `Conflict` (the caller may try again).
fn replace_version<S: SecretStore + ?Sized>(
    store: &S,
    rec: SecretRecord,
    version: &SecretVersionRecord,
    stage: &str,
    version_id: &str,
) -> Result<SecretRecord, KmsError> {
    let chosen = version.version_id.as_str();
    commit_to(store, rec, Some(version), &|rec| {
        require_enabled(rec)?;
        let now = stages::choose(rec, stage, version_id)?;
        if now != chosen {
            let stage = if stage.is_empty() { CURRENT } else { stage };
            return Err(KmsError::new(
                ErrorCode::Conflict,
                format!(
                    "{stage} of secret {} moved from version {chosen} to {now} while its value was being replaced; try again",
                    rec.name
                ),
            ));
        }
        // The stored version goes and the new one takes its place, in one transaction.
        Ok(vec![chosen.to_owned()])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SecretChange, SledStore};

    fn sealed(id: &str, byte: u8) -> SecretVersionRecord {
        SecretVersionRecord {
            secret_name: "db".into(),
            version_id: id.into(),
            data_type: "text".into(),
            ciphertext: vec![byte; 16],
            ..Default::default()
        }
    }

    /// A store holding the secret `db` with the version `v1`, current.
    fn store_with_v1(dir: &std::path::Path) -> (SledStore, SecretRecord) {
        let store = SledStore::open(dir).unwrap();
        let mut rec = SecretRecord {
            name: "db".into(),
            kms_key_id: "k".into(),
            create_time: "2026-01-02T03:04:05Z".into(),
            ..Default::default()
        };
        stages::add_version(&mut rec, "v1", &[CURRENT.to_owned()]).unwrap();
        store
            .change_secret(SecretChange {
                expected: None,
                new: Some(&rec),
                add: Some(&sealed("v1", 1)),
                remove: &[],
            })
            .unwrap();
        (store, rec)
    }

    /// PutSecretValue's commit: `v2` becomes current.
    fn put_v2(store: &SledStore, rec: SecretRecord) -> SecretRecord {
        commit_to(store, rec, Some(&sealed("v2", 2)), &|rec| {
            stages::add_version(rec, "v2", &[CURRENT.to_owned()])
        })
        .unwrap()
    }

    #[test]
    fn a_value_replaced_by_stage_never_lands_on_the_version_the_stage_left() {
        let dir = tempfile::tempdir().unwrap();
        let (store, first) = store_with_v1(dir.path());
        // UpdateSecret of ACSCurrent reads the record (v1 current) and seals its value for
        // v1; meanwhile a PutSecretValue makes v2 current.
        let chosen = stages::choose(&first, CURRENT, "").unwrap();
        assert_eq!(chosen, "v1");
        let after_put = put_v2(&store, first.clone());
        let e = replace_version(&store, first.clone(), &sealed("v1", 9), CURRENT, "").unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict, "{e}");
        assert!(e.message.contains("v2"), "{e}");
        // Nothing changed: v1 keeps its value, v2 is current.
        assert_eq!(
            store.secret_version("db", "v1").unwrap(),
            Some(sealed("v1", 1))
        );
        assert_eq!(
            store.secret_version("db", "v2").unwrap(),
            Some(sealed("v2", 2))
        );
        assert_eq!(store.secret("db").unwrap().as_ref(), Some(&after_put));

        // Chosen by id, the version is the one named, whichever is current.
        let rec = replace_version(&store, first, &sealed("v1", 9), "", "v1").unwrap();
        assert_eq!(
            store.secret_version("db", "v1").unwrap(),
            Some(sealed("v1", 9))
        );
        assert_eq!(stages::holder(&rec, CURRENT), Some("v2"));
    }

    #[test]
    fn a_value_replaced_by_stage_lands_on_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let (store, first) = store_with_v1(dir.path());
        let rec = put_v2(&store, first);
        let rec = replace_version(&store, rec, &sealed("v2", 9), CURRENT, "").unwrap();
        assert_eq!(
            store.secret_version("db", "v2").unwrap(),
            Some(sealed("v2", 9))
        );
        assert_eq!(
            store.secret_version("db", "v1").unwrap(),
            Some(sealed("v1", 1))
        );
        assert_eq!(stages::stages_of(&rec, "v2"), [CURRENT]);
        // A version that is not there is not found.
        let e = replace_version(&store, rec, &sealed("v3", 9), "", "v3").unwrap_err();
        assert_eq!(e.code, ErrorCode::ResourceNotFound, "{e}");
    }
}
