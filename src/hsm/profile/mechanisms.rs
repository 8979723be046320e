//! Mechanism names in profiles, and how a token's mechanism list is held against its
//! profile when a member connects.

use super::model::Mechanisms;
use cryptoki_sys::*;

/// The mechanisms a profile may name (hkms's own, and those profiles mention for the
/// certify checks), with their `CKM_*` values.
const NAMES: &[(&str, CK_MECHANISM_TYPE)] = &[
    ("CKM_AES_KEY_GEN", CKM_AES_KEY_GEN),
    ("CKM_AES_KEY_WRAP", CKM_AES_KEY_WRAP),
    ("CKM_AES_KEY_WRAP_PAD", CKM_AES_KEY_WRAP_PAD),
    ("CKM_AES_KEY_WRAP_KWP", CKM_AES_KEY_WRAP_KWP),
    ("CKM_AES_GCM", CKM_AES_GCM),
    ("CKM_AES_CBC", CKM_AES_CBC),
    ("CKM_AES_CBC_PAD", CKM_AES_CBC_PAD),
    ("CKM_AES_ECB", CKM_AES_ECB),
    ("CKM_AES_CTR", CKM_AES_CTR),
    ("CKM_AES_XTS", CKM_AES_XTS),
    ("CKM_AES_CBC_ENCRYPT_DATA", CKM_AES_CBC_ENCRYPT_DATA),
    ("CKM_RSA_PKCS_KEY_PAIR_GEN", CKM_RSA_PKCS_KEY_PAIR_GEN),
    ("CKM_RSA_X9_31_KEY_PAIR_GEN", CKM_RSA_X9_31_KEY_PAIR_GEN),
    ("CKM_RSA_PKCS_OAEP", CKM_RSA_PKCS_OAEP),
    ("CKM_RSA_PKCS_PSS", CKM_RSA_PKCS_PSS),
    ("CKM_RSA_PKCS", CKM_RSA_PKCS),
    ("CKM_RSA_AES_KEY_WRAP", CKM_RSA_AES_KEY_WRAP),
    ("CKM_EC_KEY_PAIR_GEN", CKM_EC_KEY_PAIR_GEN),
    ("CKM_ECDSA", CKM_ECDSA),
    ("CKM_GENERIC_SECRET_KEY_GEN", CKM_GENERIC_SECRET_KEY_GEN),
    ("CKM_SHA_1_HMAC", CKM_SHA_1_HMAC),
    ("CKM_SHA256_HMAC", CKM_SHA256_HMAC),
    ("CKM_SHA384_HMAC", CKM_SHA384_HMAC),
    ("CKM_SHA512_HMAC", CKM_SHA512_HMAC),
    ("CKM_ML_DSA_KEY_PAIR_GEN", CKM_ML_DSA_KEY_PAIR_GEN),
    ("CKM_ML_DSA", CKM_ML_DSA),
    ("CKM_ML_KEM_KEY_PAIR_GEN", CKM_ML_KEM_KEY_PAIR_GEN),
    ("CKM_ML_KEM", CKM_ML_KEM),
];

/// Mechanisms hkms calls: a token that offers one its profile does not list is reported
/// (the profile is out of date, or names the wrong device). Others a token lists are not.
const USED_BY_HKMS: &[&str] = &[
    "CKM_AES_KEY_GEN",
    "CKM_AES_KEY_WRAP_PAD",
    "CKM_AES_KEY_WRAP_KWP",
    "CKM_AES_GCM",
    "CKM_AES_CBC",
    "CKM_AES_CBC_PAD",
    "CKM_AES_ECB",
    "CKM_AES_CBC_ENCRYPT_DATA",
    "CKM_RSA_PKCS_KEY_PAIR_GEN",
    "CKM_RSA_PKCS_OAEP",
    "CKM_RSA_PKCS_PSS",
    "CKM_RSA_PKCS",
    "CKM_EC_KEY_PAIR_GEN",
    "CKM_ECDSA",
    "CKM_GENERIC_SECRET_KEY_GEN",
    "CKM_SHA256_HMAC",
    "CKM_SHA384_HMAC",
    "CKM_SHA512_HMAC",
];

/// The `CKM_*` value of a mechanism named in a profile: a name above, or a vendor-defined
/// value written in hexadecimal (`0x80000001`).
pub fn value(name: &str) -> Option<CK_MECHANISM_TYPE> {
    if let Some(hex) = name.strip_prefix("0x") {
        return CK_MECHANISM_TYPE::from_str_radix(hex, 16).ok();
    }
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The two numbers of AES key wrap with padding (RFC 5649): `CKM_AES_KEY_WRAP_PAD` (0x210A,
/// PKCS#11 2.40) and `CKM_AES_KEY_WRAP_KWP` (0x210B, PKCS#11 3.0). hkms wraps under
/// whichever a member offers (`crypto/keywrap.rs`), so a profile entry naming either is met
/// by a token offering either: a profile that requires `CKM_AES_KEY_WRAP_PAD` does not
/// refuse a 3.0 token offering only `CKM_AES_KEY_WRAP_KWP`, and the other way round.
const RFC_5649: [&str; 2] = ["CKM_AES_KEY_WRAP_PAD", "CKM_AES_KEY_WRAP_KWP"];

/// The other names that stand for the same mechanism as `name` (none for most).
fn equivalents(name: &str) -> &'static [&'static str] {
    if RFC_5649.contains(&name) {
        &RFC_5649
    } else {
        &[]
    }
}

/// Whether `token` offers `name` under any of its numbers.
pub fn offers(token: &[CK_MECHANISM_TYPE], name: &str) -> bool {
    let direct = value(name).is_some_and(|v| token.contains(&v));
    direct
        || equivalents(name)
            .iter()
            .any(|n| value(n).is_some_and(|v| token.contains(&v)))
}

/// What a token's mechanism list says against its profile.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Required by the profile, absent from the token: the member is refused.
    pub missing_required: Vec<String>,
    /// Listed as optional by the profile, absent from the token.
    pub missing_optional: Vec<String>,
    /// Offered by the token and used by hkms, but not listed by the profile.
    pub unlisted: Vec<String>,
}

impl Comparison {
    /// One line per finding, naming the profile (for logs and `hkms status`).
    pub fn findings(&self, profile: &str) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.missing_required {
            out.push(format!(
                "profile {profile:?} requires {m}, which the token does not offer"
            ));
        }
        for m in &self.missing_optional {
            out.push(format!(
                "profile {profile:?} lists {m} as optional, but the token does not offer it"
            ));
        }
        for m in &self.unlisted {
            out.push(format!(
                "the token offers {m}, which hkms uses but profile {profile:?} does not list"
            ));
        }
        out
    }
}

/// Holds a token's mechanism list against a profile's `[mechanisms]` (whose names were
/// checked when the profile loaded).
pub fn compare(profile: &Mechanisms, token: &[CK_MECHANISM_TYPE]) -> Comparison {
    let absent = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .filter(|n| !offers(token, n))
            .cloned()
            .collect()
    };
    let listed = |name: &str| {
        profile
            .required
            .iter()
            .chain(&profile.optional)
            .any(|n| n == name || equivalents(name).contains(&n.as_str()))
    };
    let exactly = |name: &str| value(name).is_some_and(|v| token.contains(&v));
    Comparison {
        missing_required: absent(&profile.required),
        missing_optional: absent(&profile.optional),
        unlisted: USED_BY_HKMS
            .iter()
            .filter(|n| exactly(n) && !listed(n))
            .map(|n| n.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hex_values_resolve() {
        assert_eq!(value("CKM_AES_GCM"), Some(CKM_AES_GCM));
        assert_eq!(value("0x80000001"), Some(0x8000_0001));
        assert_eq!(value("CKM_NOT_A_MECHANISM"), None);
        for n in USED_BY_HKMS {
            assert!(value(n).is_some(), "{n}");
        }
    }

    #[test]
    fn every_kind_of_contradiction_is_found() {
        let profile = Mechanisms {
            required: vec!["CKM_AES_GCM".into(), "CKM_AES_XTS".into()],
            optional: vec!["CKM_ECDSA".into()],
        };
        let token = [CKM_AES_GCM, CKM_RSA_PKCS_PSS, CKM_AES_CTR];
        let c = compare(&profile, &token);
        assert_eq!(c.missing_required, ["CKM_AES_XTS"]);
        assert_eq!(c.missing_optional, ["CKM_ECDSA"]);
        // CKM_AES_CTR is offered but hkms does not use it: not reported.
        assert_eq!(c.unlisted, ["CKM_RSA_PKCS_PSS"]);
        let lines = c.findings("vendor");
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("\"vendor\"") && lines[0].contains("CKM_AES_XTS"));
    }

    #[test]
    fn either_number_of_rfc_5649_meets_a_required_key_wrap_with_padding() {
        let pad = Mechanisms {
            required: vec!["CKM_AES_KEY_WRAP_PAD".into()],
            optional: vec![],
        };
        let kwp = Mechanisms {
            required: vec!["CKM_AES_KEY_WRAP_KWP".into()],
            optional: vec![],
        };
        for token in [[CKM_AES_KEY_WRAP_PAD], [CKM_AES_KEY_WRAP_KWP]] {
            assert_eq!(compare(&pad, &token), Comparison::default(), "{token:?}");
            assert_eq!(compare(&kwp, &token), Comparison::default(), "{token:?}");
        }
        // Plain key wrap (RFC 3394) is another mechanism: it meets neither.
        let c = compare(&kwp, &[CKM_AES_KEY_WRAP]);
        assert_eq!(c.missing_required, ["CKM_AES_KEY_WRAP_KWP"]);
        assert!(!offers(&[CKM_AES_GCM], "CKM_AES_KEY_WRAP_PAD"));
        assert!(offers(&[CKM_AES_GCM], "CKM_AES_GCM"));
    }
}
