//! Changing an AAP's ClientKey before it expires.
//!
//! The operator registers a new ClientKey first (`CreateClientKey`), then retires the
//! AAP's other ClientKeys in its favour: they keep working for an overlap of 0 to
//! [`MAX_OVERLAP_DAYS`] days, time for the application to move to the new files, and are
//! refused from then on like expired keys ([`clientkey::standing`]). A key already retiring
//! sooner keeps its own date.
//!
//! The new key must be accepted at the retirement time and not be retiring itself, so the
//! AAP never loses its last working key this way. Every record changes in one store
//! transaction that lands only if each is still as read (compare-and-swap), or not at all.

use super::clientkey::{self, MAX_OVERLAP_DAYS};
use super::manage;
use crate::clock::rfc3339;
use crate::error::{ErrorCode, KmsError};
use crate::proto::{ApplicationAccessPoint, ClientKey};
use crate::store::access as records;
use crate::store::AccessStore;

/// Tries before giving up on records that keep changing under the change.
const ATTEMPTS: usize = 5;

/// Checks an overlap: 0 to [`MAX_OVERLAP_DAYS`] days.
pub fn check_overlap(overlap_days: i64) -> Result<(), KmsError> {
    if !(0..=MAX_OVERLAP_DAYS).contains(&overlap_days) {
        return Err(KmsError::invalid(format!(
            "the overlap must be 0 to {MAX_OVERLAP_DAYS} days (it is {overlap_days}): the \
             days during which the earlier ClientKeys keep working; 0 refuses them at once"
        )));
    }
    Ok(())
}

/// Retires every ClientKey of `aap` but `keep` at `now` plus `overlap_days` days. Returns
/// the retirement time and every ClientKey of the AAP after the change.
pub fn retire_client_keys(
    store: &dyn AccessStore,
    aap: &str,
    keep: &str,
    overlap_days: i64,
    now: i64,
) -> Result<(i64, Vec<ClientKey>), KmsError> {
    check_overlap(overlap_days)?;
    let retire_at = now + overlap_days * 86_400;
    let _g = manage::lock();
    for _ in 0..ATTEMPTS {
        manage::get::<ApplicationAccessPoint>(store, aap)?;
        let keys = manage::client_keys(store, aap)?;
        let kept = kept_key(store, aap, keep, &keys, retire_at)?;
        let changed: Vec<(&ClientKey, ClientKey)> = keys
            .iter()
            .filter(|k| k.client_key_id != keep)
            .filter_map(|k| {
                let retire_unix = match k.retire_unix {
                    0 => retire_at,
                    sooner => sooner.min(retire_at),
                };
                (retire_unix != k.retire_unix).then(|| {
                    let mut new = k.clone();
                    new.retire_unix = retire_unix;
                    (k, new)
                })
            })
            .collect();
        // The kept key is part of the transaction unchanged: deleted or changed meanwhile,
        // it makes the change fail rather than leave the AAP without a key.
        let mut swaps: Vec<(&ClientKey, &ClientKey)> = vec![(kept, kept)];
        swaps.extend(changed.iter().map(|(old, new)| (*old, new)));
        if !records::swap(store, &swaps)? {
            continue;
        }
        for (_, k) in &changed {
            tracing::info!(
                client_key = %k.client_key_id,
                aap = %k.aap_name,
                kept = %keep,
                retire = %rfc3339(k.retire_unix),
                "ClientKey retiring"
            );
        }
        let after = keys
            .iter()
            .map(|k| {
                changed
                    .iter()
                    .find(|(old, _)| old.client_key_id == k.client_key_id)
                    .map_or_else(|| k.clone(), |(_, new)| new.clone())
            })
            .collect();
        return Ok((retire_at, after));
    }
    Err(KmsError::new(
        ErrorCode::Conflict,
        format!("the ClientKeys of AAP {aap} kept changing meanwhile; try again"),
    ))
}

/// The key to keep, among `keys` of `aap`, checked: it must be accepted at `retire_at` and
/// not be retiring itself.
fn kept_key<'a>(
    store: &dyn AccessStore,
    aap: &str,
    keep: &str,
    keys: &'a [ClientKey],
    retire_at: i64,
) -> Result<&'a ClientKey, KmsError> {
    let Some(kept) = keys.iter().find(|k| k.client_key_id == keep) else {
        return Err(match records::get::<ClientKey>(store, keep)? {
            Some(other) => KmsError::invalid(format!(
                "ClientKey {keep} belongs to AAP {}, not to AAP {aap}",
                other.aap_name
            )),
            None => KmsError::new(
                ErrorCode::ResourceNotFound,
                format!("ClientKey {keep} does not exist"),
            ),
        });
    };
    if kept.retire_unix != 0 {
        return Err(KmsError::invalid(format!(
            "ClientKey {keep} is retiring itself (from {}); keep a ClientKey that is not",
            rfc3339(kept.retire_unix)
        )));
    }
    let (_, then) = clientkey::standing(kept.not_before, kept.not_after, 0, retire_at);
    if !clientkey::accepted(then) {
        return Err(KmsError::invalid(format!(
            "ClientKey {keep} is valid from {} to {}, so not at {} when the other ClientKeys \
             of AAP {aap} would retire: the AAP would be left without a working key",
            rfc3339(kept.not_before),
            rfc3339(kept.not_after),
            rfc3339(retire_at)
        )));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Policy;
    use crate::store::SledStore;

    const DAY: i64 = 86_400;

    fn key(s: &SledStore, aap: &str, id: &str, not_before: i64, not_after: i64) -> ClientKey {
        let k = ClientKey {
            client_key_id: id.into(),
            aap_name: aap.into(),
            not_before,
            not_after,
            ..Default::default()
        };
        records::put(s, &k, true).unwrap();
        k
    }

    fn retire_of(s: &SledStore, id: &str) -> i64 {
        records::get::<ClientKey>(s, id)
            .unwrap()
            .unwrap()
            .retire_unix
    }

    #[test]
    fn the_other_keys_retire_after_the_overlap_and_the_new_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let now = 1_000 * DAY;
        manage::create(
            &s,
            Policy {
                name: "p".into(),
                rbac_role: "CryptoServiceKeyUser".into(),
                resources: vec!["key/*".into()],
                ..Default::default()
            },
        )
        .unwrap();
        for aap in ["app", "other"] {
            manage::create(
                &s,
                ApplicationAccessPoint {
                    name: aap.into(),
                    policies: vec!["p".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        }
        key(&s, "app", "KAAP.old", now - 300 * DAY, now + 60 * DAY);
        key(&s, "app", "KAAP.new", now, now + 365 * DAY);
        key(&s, "app", "KAAP.later", now + 30 * DAY, now + 365 * DAY);
        key(&s, "other", "KAAP.elsewhere", now, now + 365 * DAY);
        let code = |r: Result<(i64, Vec<ClientKey>), KmsError>| r.unwrap_err().code;

        // Bad requests change nothing.
        for days in [-1, 91] {
            let e = retire_client_keys(&s, "app", "KAAP.new", days, now).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameter);
            assert!(e.message.contains("0 to 90 days"), "{}", e.message);
        }
        let ghost = retire_client_keys(&s, "ghost", "KAAP.new", 7, now);
        assert_eq!(code(ghost), ErrorCode::ResourceNotFound);
        let missing = retire_client_keys(&s, "app", "KAAP.none", 7, now);
        assert_eq!(code(missing), ErrorCode::ResourceNotFound);
        let e = retire_client_keys(&s, "app", "KAAP.elsewhere", 7, now).unwrap_err();
        assert!(e.message.contains("belongs to AAP other"), "{}", e.message);
        // Not valid yet when the others would retire, or expired by then.
        let e = retire_client_keys(&s, "app", "KAAP.later", 7, now).unwrap_err();
        assert!(e.message.contains("without a working key"), "{}", e.message);
        let e = retire_client_keys(&s, "app", "KAAP.old", 90, now).unwrap_err();
        assert!(e.message.contains("without a working key"), "{}", e.message);
        for id in ["KAAP.old", "KAAP.new", "KAAP.later", "KAAP.elsewhere"] {
            assert_eq!(retire_of(&s, id), 0, "{id}");
        }

        let (at, after) = retire_client_keys(&s, "app", "KAAP.new", 7, now).unwrap();
        assert_eq!(at, now + 7 * DAY);
        assert_eq!(after.len(), 3);
        assert_eq!(retire_of(&s, "KAAP.old"), at);
        assert_eq!(retire_of(&s, "KAAP.later"), at);
        assert_eq!(retire_of(&s, "KAAP.new"), 0);
        assert_eq!(retire_of(&s, "KAAP.elsewhere"), 0, "another AAP's key");
        let old = after
            .iter()
            .find(|k| k.client_key_id == "KAAP.old")
            .unwrap();
        assert_eq!(old.retire_unix, at);
        // A retiring key cannot be the one kept.
        let e = retire_client_keys(&s, "app", "KAAP.old", 0, now).unwrap_err();
        assert!(e.message.contains("retiring itself"), "{}", e.message);

        // A later change moves no retirement further away, and may bring one closer.
        key(&s, "app", "KAAP.newest", now, now + 365 * DAY);
        retire_client_keys(&s, "app", "KAAP.newest", 30, now + DAY).unwrap();
        assert_eq!(retire_of(&s, "KAAP.old"), at);
        assert_eq!(retire_of(&s, "KAAP.new"), now + 31 * DAY);
        retire_client_keys(&s, "app", "KAAP.newest", 0, now + 2 * DAY).unwrap();
        for id in ["KAAP.old", "KAAP.new", "KAAP.later"] {
            assert_eq!(retire_of(&s, id), now + 2 * DAY, "{id}");
        }
        assert_eq!(retire_of(&s, "KAAP.newest"), 0);
    }
}
