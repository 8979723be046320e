//! Stages and versions of a secret record: which version holds which stage, what a new
//! version does to them, moving a stage, and which versions go when there are too many.
//! Pure functions on the record; the caller stores the result.

use super::names::{check_id, CURRENT, MAX_STAGES_PER_VERSION, PREVIOUS};
use crate::error::{ErrorCode, KmsError};
use crate::store::records::{SecretRecord, SecretStageRecord};

/// Most versions kept per secret: past it, the oldest versions that hold no stage go.
pub const MAX_VERSIONS: usize = 100;

/// The stages `version_id` holds, in the record's order.
pub fn stages_of(rec: &SecretRecord, version_id: &str) -> Vec<String> {
    rec.stages
        .iter()
        .filter(|s| s.version_id == version_id)
        .map(|s| s.stage.clone())
        .collect()
}

/// The version holding `stage`.
pub fn holder<'a>(rec: &'a SecretRecord, stage: &str) -> Option<&'a str> {
    rec.stages
        .iter()
        .find(|s| s.stage == stage)
        .map(|s| s.version_id.as_str())
}

fn not_found(message: String) -> KmsError {
    KmsError::new(ErrorCode::ResourceNotFound, message)
}

/// The version a read asks for: by id (which must hold `stage` when one is named too), by
/// stage, or ACSCurrent.
pub fn choose(rec: &SecretRecord, stage: &str, version_id: &str) -> Result<String, KmsError> {
    match (version_id, stage) {
        ("", "") => holder(rec, CURRENT)
            .map(str::to_owned)
            .ok_or_else(|| not_found(format!("secret {} has no {CURRENT} version", rec.name))),
        ("", stage) => holder(rec, stage).map(str::to_owned).ok_or_else(|| {
            not_found(format!(
                "secret {} has no version in stage {stage}",
                rec.name
            ))
        }),
        (id, stage) => {
            if !rec.version_ids.iter().any(|v| v == id) {
                return Err(not_found(format!(
                    "secret {} has no version {id}",
                    rec.name
                )));
            }
            if !stage.is_empty() && holder(rec, stage) != Some(id) {
                return Err(not_found(format!(
                    "version {id} of secret {} is not in stage {stage}",
                    rec.name
                )));
            }
            Ok(id.to_owned())
        }
    }
}

fn set_stage(rec: &mut SecretRecord, stage: &str, version_id: &str) {
    rec.stages.retain(|s| s.stage != stage);
    rec.stages.push(SecretStageRecord {
        stage: stage.to_owned(),
        version_id: version_id.to_owned(),
    });
}

/// Gives `stage` to `to`; when ACSCurrent moves to another version, ACSPrevious follows to
/// the version that held it.
fn give(rec: &mut SecretRecord, stage: &str, to: &str) {
    if stage == CURRENT {
        if let Some(old) = holder(rec, CURRENT).map(str::to_owned) {
            if old != to {
                set_stage(rec, PREVIOUS, &old);
            }
        }
    }
    set_stage(rec, stage, to);
}

/// Checks requested stages (ACSCurrent when none): valid names, no duplicates, not
/// ACSPrevious (it only follows ACSCurrent), at most [`MAX_STAGES_PER_VERSION`].
pub fn requested(stages: &[String]) -> Result<Vec<String>, KmsError> {
    if stages.is_empty() {
        return Ok(vec![CURRENT.to_owned()]);
    }
    if stages.len() > MAX_STAGES_PER_VERSION {
        return Err(KmsError::invalid(format!(
            "a version holds at most {MAX_STAGES_PER_VERSION} stages"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for s in stages {
        check_id("VersionStage", s)?;
        if s == PREVIOUS {
            return Err(KmsError::invalid(format!(
                "{PREVIOUS} is not given directly: it follows the version {CURRENT} leaves"
            )));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// Adds a new version holding `stages` and returns the versions that now go (the oldest
/// without a stage, past [`MAX_VERSIONS`]). Refused when every version would still hold a
/// stage past the limit.
pub fn add_version(
    rec: &mut SecretRecord,
    version_id: &str,
    stages: &[String],
) -> Result<Vec<String>, KmsError> {
    rec.version_ids.push(version_id.to_owned());
    for s in stages {
        give(rec, s, version_id);
    }
    let removed = prune(rec);
    if rec.version_ids.len() > MAX_VERSIONS {
        return Err(KmsError::invalid(format!(
            "secret {} keeps at most {MAX_VERSIONS} versions and every one holds a stage; take a custom stage off an old version first",
            rec.name
        )));
    }
    Ok(removed)
}

fn prune(rec: &mut SecretRecord) -> Vec<String> {
    let mut removed = Vec::new();
    while rec.version_ids.len() > MAX_VERSIONS {
        let staged: Vec<String> = rec.stages.iter().map(|s| s.version_id.clone()).collect();
        let Some(pos) = rec.version_ids.iter().position(|v| !staged.contains(v)) else {
            break;
        };
        removed.push(rec.version_ids.remove(pos));
    }
    removed
}

/// Moves `stage`: takes it from `from` (which must hold it when named) and gives it to `to`.
/// ACSCurrent must always name a version, so it can only be moved, never removed.
pub fn move_stage(
    rec: &mut SecretRecord,
    stage: &str,
    from: &str,
    to: &str,
) -> Result<(), KmsError> {
    check_id("VersionStage", stage)?;
    if from.is_empty() && to.is_empty() {
        return Err(KmsError::invalid(
            "name RemoveFromVersion, MoveToVersion or both",
        ));
    }
    for v in [from, to].into_iter().filter(|v| !v.is_empty()) {
        if !rec.version_ids.iter().any(|x| x == v) {
            return Err(not_found(format!("secret {} has no version {v}", rec.name)));
        }
    }
    let held = holder(rec, stage).map(str::to_owned);
    if !from.is_empty() && held.as_deref() != Some(from) {
        return Err(KmsError::invalid(format!(
            "version {from} does not hold stage {stage}"
        )));
    }
    if from.is_empty() && held.is_some() && held.as_deref() != Some(to) {
        return Err(KmsError::invalid(format!(
            "stage {stage} is held by version {}; name it as RemoveFromVersion",
            held.unwrap_or_default()
        )));
    }
    if to.is_empty() {
        if stage == CURRENT {
            return Err(KmsError::invalid(format!(
                "{CURRENT} cannot be removed, only moved to another version"
            )));
        }
        rec.stages.retain(|s| s.stage != stage);
        return Ok(());
    }
    if stages_of(rec, to).len() >= MAX_STAGES_PER_VERSION && held.as_deref() != Some(to) {
        return Err(KmsError::invalid(format!(
            "version {to} holds {MAX_STAGES_PER_VERSION} stages already"
        )));
    }
    give(rec, stage, to);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> SecretRecord {
        let mut r = SecretRecord {
            name: "db".into(),
            ..Default::default()
        };
        add_version(&mut r, "v1", &[CURRENT.into()]).unwrap();
        r
    }

    #[test]
    fn a_new_current_version_pushes_the_old_one_to_previous() {
        let mut r = rec();
        add_version(&mut r, "v2", &[CURRENT.into()]).unwrap();
        assert_eq!(holder(&r, CURRENT), Some("v2"));
        assert_eq!(holder(&r, PREVIOUS), Some("v1"));
        add_version(&mut r, "v3", &["staging".into()]).unwrap();
        assert_eq!(holder(&r, CURRENT), Some("v2"));
        assert_eq!(stages_of(&r, "v3"), ["staging"]);
        assert_eq!(choose(&r, "", "").unwrap(), "v2");
        assert_eq!(choose(&r, PREVIOUS, "").unwrap(), "v1");
        assert_eq!(choose(&r, "", "v3").unwrap(), "v3");
        assert_eq!(choose(&r, "staging", "v3").unwrap(), "v3");
        for (stage, id) in [("nope", ""), ("", "v9"), (CURRENT, "v3")] {
            assert_eq!(
                choose(&r, stage, id).unwrap_err().code,
                ErrorCode::ResourceNotFound
            );
        }
    }

    #[test]
    fn stages_move_and_current_is_never_lost() {
        let mut r = rec();
        add_version(&mut r, "v2", &["staging".into()]).unwrap();
        move_stage(&mut r, CURRENT, "v1", "v2").unwrap();
        assert_eq!(holder(&r, CURRENT), Some("v2"));
        assert_eq!(holder(&r, PREVIOUS), Some("v1"));
        move_stage(&mut r, "staging", "v2", "").unwrap();
        assert_eq!(holder(&r, "staging"), None);
        move_stage(&mut r, "blue", "", "v1").unwrap();
        assert_eq!(holder(&r, "blue"), Some("v1"));
        assert!(move_stage(&mut r, CURRENT, "v2", "").is_err());
        assert!(
            move_stage(&mut r, CURRENT, "v1", "v2").is_err(),
            "v1 does not hold it"
        );
        assert!(
            move_stage(&mut r, "blue", "", "v2").is_err(),
            "held elsewhere"
        );
        assert_eq!(
            move_stage(&mut r, "blue", "v1", "v7").unwrap_err().code,
            ErrorCode::ResourceNotFound
        );
        assert!(requested(&[PREVIOUS.into()]).is_err());
        assert_eq!(requested(&[]).unwrap(), [CURRENT]);
    }

    #[test]
    fn the_oldest_unstaged_versions_go_first() {
        let mut r = rec();
        move_stage(&mut r, "keep", "", "v1").unwrap();
        let mut removed = Vec::new();
        for i in 2..=MAX_VERSIONS + 2 {
            removed.extend(add_version(&mut r, &format!("v{i}"), &[CURRENT.into()]).unwrap());
        }
        assert_eq!(r.version_ids.len(), MAX_VERSIONS);
        // v1 holds "keep"; v2 and v3 were the oldest without a stage.
        assert_eq!(removed, ["v2", "v3"]);
        assert_eq!(r.version_ids[0], "v1");

        // When every version holds a stage, no version can go: the new one is refused.
        let mut full = rec();
        for i in 2..=MAX_VERSIONS {
            let v = format!("v{i}");
            add_version(&mut full, &v, &[format!("s{i}")]).unwrap();
        }
        move_stage(&mut full, "s1", "", "v1").unwrap();
        assert!(add_version(&mut full, "v-extra", &["s-extra".into()]).is_err());
    }
}
