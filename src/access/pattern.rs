//! Wildcard matching for resource patterns (`key/*`, `secret/rds-ibm*`) and actions
//! (`kms:List*`).
//!
//! `*` matches any run of characters, including none and including `/`. Every other
//! character matches itself. Matching is linear in practice (greedy with one backtrack
//! point), so hostile patterns cannot make it slow.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((after, tried)) = star {
            // Let the last `*` absorb one more character and retry.
            pi = after;
            ti = tried + 1;
            star = Some((after, tried + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Resource kinds a policy may name.
pub const RESOURCE_PREFIXES: [&str; 3] = ["key/", "alias/", "secret/"];

/// Checks a policy resource pattern: `key/...`, `alias/...` or `secret/...`, with at least
/// one character after the prefix, printable ASCII, at most 256 characters.
pub fn validate_resource(pattern: &str) -> Result<(), String> {
    if pattern.len() > 256 {
        return Err(format!(
            "resource {pattern:?} is longer than 256 characters"
        ));
    }
    if !pattern.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "resource {pattern:?} may only hold printable ASCII without spaces"
        ));
    }
    match RESOURCE_PREFIXES
        .iter()
        .find(|prefix| pattern.starts_with(**prefix))
    {
        Some(prefix) if pattern.len() > prefix.len() => Ok(()),
        _ => Err(format!(
            "resource {pattern:?} must look like key/*, key/<key id>, alias/<name>, secret/* or \
             secret/<name prefix>*"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let cases = [
            ("key/*", "key/6f1c", true),
            ("key/*", "key/", true),
            ("key/*", "secret/x", false),
            ("key/6f1c", "key/6f1c", true),
            ("key/6f1c", "key/6f1c0", false),
            ("secret/rds-ibm*", "secret/rds-ibm-prod", true),
            ("secret/rds-ibm*", "secret/rds-ib", false),
            ("secret/mcp!*", "secret/mcp!db", true),
            ("kms:List*", "kms:ListKeys", true),
            ("kms:List*", "kms:GetSecretValue", false),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("a**c", "abc", true),
            ("*a", "bbbbba", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn resource_patterns_are_validated() {
        for ok in [
            "key/*",
            "key/abc",
            "alias/app",
            "secret/*",
            "secret/rds-ibm*",
        ] {
            validate_resource(ok).unwrap();
        }
        for bad in ["", "key/", "keys/*", "*", "secret/a b", "acs:kms:x"] {
            assert!(validate_resource(bad).is_err(), "{bad:?}");
        }
    }

    /// A straightforward recursive matcher to compare against.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(p in "[ab*/]{0,8}", t in "[ab/]{0,10}") {
            prop_assert_eq!(matches(&p, &t), reference(p.as_bytes(), t.as_bytes()));
        }

        #[test]
        fn literal_patterns_match_only_themselves(t in "[a-z0-9/!-]{0,20}", u in "[a-z0-9/!-]{0,20}") {
            prop_assert!(matches(&t, &t));
            prop_assert_eq!(matches(&t, &u), t == u);
        }

        #[test]
        fn prefix_star_matches_every_extension(prefix in "[a-z/-]{0,12}", rest in "[a-z0-9/!*-]{0,12}") {
            let pattern = format!("{prefix}*");
            let text = format!("{prefix}{rest}");
            prop_assert!(matches(&pattern, &text));
        }

        #[test]
        fn star_alone_matches_everything(t in ".{0,30}") {
            prop_assert!(matches("*", &t));
        }
    }
}
