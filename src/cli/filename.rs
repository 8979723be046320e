//! Names of files the CLI writes from ids that hkmsd returns (`clientKey_<id>.json`,
//! `PrivateKmsCA_<instance>.pem`). An id is checked before it becomes part of a path, so a
//! daemon that answers with `../x` or `a/b` (a bug, or a peer that is not the real hkmsd)
//! cannot make the CLI write outside the directory the operator named.

use crate::error::{ErrorCode, KmsError};

/// Longest id accepted in a file name.
pub const MAX_ID_LEN: usize = 128;

/// Returns `id` when it is a well-formed id that can be one path component: 1 to
/// [`MAX_ID_LEN`] ASCII letters, digits, `.`, `_` and `-`, not starting with `.` and with
/// no `..`. `what` names the id in the error (`ClientKey id`, `instance id`).
pub fn id_component<'a>(what: &str, id: &'a str) -> Result<&'a str, KmsError> {
    let well_formed = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && !id.contains("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if well_formed {
        Ok(id)
    } else {
        Err(KmsError::new(
            ErrorCode::Internal,
            format!(
                "hkmsd returned a {what} {id:?} that is not a well-formed id (letters, digits, \
                 '.', '_', '-'; no path separator or \"..\"); no file was written"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_pass() {
        for id in [
            "KAAP.0b5e4c1e-8d3a-4c4b-9d5e-1f2a3b4c5d6e",
            "kst-hzz6800a1b2c3d4e5f6",
            "a",
            "v1_2-3.x",
            &"x".repeat(MAX_ID_LEN),
        ] {
            assert_eq!(id_component("id", id).unwrap(), id);
        }
    }

    #[test]
    fn ids_that_could_leave_the_directory_are_refused() {
        for id in [
            "",
            ".",
            "..",
            "../x",
            "KAAP.../../etc",
            "a/b",
            "/etc/passwd",
            "a\\b",
            ".hidden",
            "a..b",
            "a\0b",
            "a b",
            "a\nb",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            let e = id_component("ClientKey id", id).unwrap_err();
            assert_eq!(e.code, ErrorCode::Internal, "{id:?}");
            assert!(
                e.message.contains("ClientKey id") && e.message.contains("no file was written"),
                "{}",
                e.message
            );
        }
    }
}
