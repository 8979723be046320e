//! What a member can do: key specs and algorithms, each with the PKCS#11 mechanisms it
//! needs. A member's mechanism list is read when it connects; its profile's quirks take away
//! what the list promises but the device does not do. The pool sends an operation only to
//! members that can do it ([`crate::hsm::Pool::run_needing`]).

use super::profile::{EcCurve, OaepHash, Quirks};
use cryptoki_sys::*;

/// A named capability and the mechanisms (value and name) it needs.
struct Entry {
    name: &'static str,
    mechanisms: &'static [(CK_MECHANISM_TYPE, &'static str)],
    /// Not offered by a member whose profile has this quirk.
    unless: Option<fn(&Quirks) -> bool>,
}

/// What making an AES key version takes (its keys, their wrap, the binding value) and its
/// main mode.
const AES: &[(CK_MECHANISM_TYPE, &str)] = &[
    (CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"),
    (CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"),
    (CKM_AES_ECB, "CKM_AES_ECB"),
    (CKM_AES_GCM, "CKM_AES_GCM"),
];
/// Every private or MAC key is stored wrapped under the domain key.
const RSA: &[(CK_MECHANISM_TYPE, &str)] = &[
    (CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"),
    (CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"),
];
const EC: &[(CK_MECHANISM_TYPE, &str)] = &[
    (CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"),
    (CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"),
];
const HMAC_KEY: (CK_MECHANISM_TYPE, &str) =
    (CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN");
const WRAP: (CK_MECHANISM_TYPE, &str) = (CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD");
const PSS: &[(CK_MECHANISM_TYPE, &str)] = &[(CKM_RSA_PKCS_PSS, "CKM_RSA_PKCS_PSS")];
const PKCS1: &[(CK_MECHANISM_TYPE, &str)] = &[(CKM_RSA_PKCS, "CKM_RSA_PKCS")];
const ECDSA: &[(CK_MECHANISM_TYPE, &str)] = &[(CKM_ECDSA, "CKM_ECDSA")];
const OAEP: &[(CK_MECHANISM_TYPE, &str)] = &[(CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP")];

const fn entry(
    name: &'static str,
    mechanisms: &'static [(CK_MECHANISM_TYPE, &'static str)],
) -> Entry {
    Entry {
        name,
        mechanisms,
        unless: None,
    }
}

/// Key specs, in the order [`crate::keys::spec::KeySpec::ALL`] lists them.
const SPECS: &[Entry] = &[
    entry("Aliyun_AES_256", AES),
    entry("Aliyun_AES_128", AES),
    entry("RSA_2048", RSA),
    entry("RSA_3072", RSA),
    entry("RSA_4096", RSA),
    Entry {
        name: "EC_P256",
        mechanisms: EC,
        unless: Some(|q| !q.ec_allows(EcCurve::P256)),
    },
    Entry {
        name: "EC_P384",
        mechanisms: EC,
        unless: Some(|q| !q.ec_allows(EcCurve::P384)),
    },
    // A device may offer CKM_EC_KEY_PAIR_GEN without this curve (Kryoptic does): its
    // profile's `ec_curves` says so, and its members are not sent EC_P256K keys.
    Entry {
        name: "EC_P256K",
        mechanisms: EC,
        unless: Some(|q| !q.ec_allows(EcCurve::Secp256k1)),
    },
    entry(
        "HMAC_SHA_256",
        &[HMAC_KEY, WRAP, (CKM_SHA256_HMAC, "CKM_SHA256_HMAC")],
    ),
    entry(
        "HMAC_SHA_384",
        &[HMAC_KEY, WRAP, (CKM_SHA384_HMAC, "CKM_SHA384_HMAC")],
    ),
    entry(
        "HMAC_SHA_512",
        &[HMAC_KEY, WRAP, (CKM_SHA512_HMAC, "CKM_SHA512_HMAC")],
    ),
];

/// Algorithms of Sign, AsymmetricDecrypt and GenerateMac (what runs inside the HSM).
const ALGORITHMS: &[Entry] = &[
    entry("RSA_PSS_SHA_256", PSS),
    entry("RSA_PSS_SHA_384", PSS),
    entry("RSA_PSS_SHA_512", PSS),
    entry("RSA_PKCS1_SHA_256", PKCS1),
    entry("RSA_PKCS1_SHA_384", PKCS1),
    entry("RSA_PKCS1_SHA_512", PKCS1),
    entry("ECDSA_SHA_256", ECDSA),
    entry("ECDSA_SHA_384", ECDSA),
    entry("RSAES_OAEP_SHA_1", OAEP),
    Entry {
        name: "RSAES_OAEP_SHA_256",
        mechanisms: OAEP,
        unless: Some(|q| !q.oaep_allows(OaepHash::Sha256)),
    },
    entry("HMAC_SHA_256", &[(CKM_SHA256_HMAC, "CKM_SHA256_HMAC")]),
    entry("HMAC_SHA_384", &[(CKM_SHA384_HMAC, "CKM_SHA384_HMAC")]),
    entry("HMAC_SHA_512", &[(CKM_SHA512_HMAC, "CKM_SHA512_HMAC")]),
];

/// What an operation needs of a member: a key spec it can generate and hold, or an
/// algorithm it can run (HMAC specs and algorithms share names, so the two are kept apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    Spec(&'a str),
    Algorithm(&'a str),
}

impl Need<'_> {
    pub fn name(&self) -> &str {
        match self {
            Need::Spec(n) | Need::Algorithm(n) => n,
        }
    }
}

fn find(need: Need) -> Option<&'static Entry> {
    let (table, name) = match need {
        Need::Spec(n) => (SPECS, n),
        Need::Algorithm(n) => (ALGORITHMS, n),
    };
    table.iter().find(|e| e.name == name)
}

/// Whether a member lists `ckm`. RFC 5649 counts under either of its numbers:
/// `CKM_AES_KEY_WRAP_KWP` (PKCS#11 3.0) does what `CKM_AES_KEY_WRAP_PAD` does on 2.40
/// devices (`crypto/keywrap.rs` uses whichever the member has).
pub fn has(mechanisms: &[CK_MECHANISM_TYPE], ckm: CK_MECHANISM_TYPE) -> bool {
    mechanisms.contains(&ckm)
        || (ckm == CKM_AES_KEY_WRAP_PAD && mechanisms.contains(&CKM_AES_KEY_WRAP_KWP))
}

/// Why a member with `mechanisms` and `quirks` cannot do `need`; `None` when it can (or
/// when `need` names nothing this table knows of).
pub fn missing(need: Need, mechanisms: &[CK_MECHANISM_TYPE], quirks: &Quirks) -> Option<String> {
    let entry = find(need)?;
    let absent: Vec<&str> = entry
        .mechanisms
        .iter()
        .filter(|(ckm, _)| !has(mechanisms, *ckm))
        .map(|(_, label)| *label)
        .collect();
    if !absent.is_empty() {
        return Some(format!("lacks {}", absent.join(", ")));
    }
    if entry.unless.is_some_and(|q| q(quirks)) {
        return Some("its HSM profile says the device does not do it".into());
    }
    None
}

/// The key specs and algorithms a member with `mechanisms` and `quirks` can do.
pub fn offered(
    mechanisms: &[CK_MECHANISM_TYPE],
    quirks: &Quirks,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let can = |need: Need| missing(need, mechanisms, quirks).is_none();
    (
        SPECS
            .iter()
            .map(|e| e.name)
            .filter(|n| can(Need::Spec(n)))
            .collect(),
        ALGORITHMS
            .iter()
            .map(|e| e.name)
            .filter(|n| can(Need::Algorithm(n)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_spec_has_an_entry() {
        for spec in crate::keys::spec::KeySpec::ALL {
            assert!(
                find(Need::Spec(spec.as_str())).is_some(),
                "{}",
                spec.as_str()
            );
        }
    }

    #[test]
    fn missing_mechanisms_and_quirks_are_named() {
        let list = [
            CKM_RSA_PKCS_KEY_PAIR_GEN,
            CKM_AES_KEY_WRAP_PAD,
            CKM_RSA_PKCS_OAEP,
        ];
        let quirks = Quirks {
            oaep_hashes: Some(vec![OaepHash::Sha1]),
            ..Quirks::default()
        };
        let alg = Need::Algorithm;
        assert_eq!(missing(Need::Spec("RSA_2048"), &list, &quirks), None);
        assert_eq!(missing(alg("RSAES_OAEP_SHA_1"), &list, &quirks), None);
        assert!(missing(alg("RSAES_OAEP_SHA_256"), &list, &quirks)
            .unwrap()
            .contains("profile"));
        assert!(missing(alg("RSAES_OAEP_SHA_256"), &list, &Quirks::default()).is_none());
        let why = missing(alg("RSA_PSS_SHA_256"), &list, &quirks).unwrap();
        assert!(why.contains("CKM_RSA_PKCS_PSS"), "{why}");
        // HMAC specs and algorithms share names: the algorithm needs only its mechanism.
        let hmac_only = [CKM_SHA256_HMAC];
        assert!(missing(alg("HMAC_SHA_256"), &hmac_only, &quirks).is_none());
        let why = missing(Need::Spec("HMAC_SHA_256"), &hmac_only, &quirks).unwrap();
        assert!(why.contains("CKM_GENERIC_SECRET_KEY_GEN"), "{why}");
        let (specs, algorithms) = offered(&list, &quirks);
        assert_eq!(specs, ["RSA_2048", "RSA_3072", "RSA_4096"]);
        assert_eq!(algorithms, ["RSAES_OAEP_SHA_1"]);
        // RFC 5649 under its PKCS#11 3.0 number serves as well.
        let kwp = [CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_AES_KEY_WRAP_KWP];
        assert_eq!(missing(Need::Spec("RSA_2048"), &kwp, &quirks), None);
        let why = missing(
            Need::Spec("RSA_2048"),
            &[CKM_RSA_PKCS_KEY_PAIR_GEN],
            &quirks,
        );
        assert!(why.unwrap().contains("CKM_AES_KEY_WRAP_PAD"));
    }

    #[test]
    fn a_curve_the_profile_leaves_out_is_not_offered() {
        let list = [CKM_EC_KEY_PAIR_GEN, CKM_AES_KEY_WRAP_KWP, CKM_ECDSA];
        let unknown = Quirks::default();
        assert_eq!(missing(Need::Spec("EC_P256K"), &list, &unknown), None);
        let no_k1 = Quirks {
            ec_curves: Some(vec![EcCurve::P256, EcCurve::P384]),
            ..Quirks::default()
        };
        assert!(missing(Need::Spec("EC_P256K"), &list, &no_k1)
            .unwrap()
            .contains("profile"));
        let (specs, algorithms) = offered(&list, &no_k1);
        assert_eq!(specs, ["EC_P256", "EC_P384"]);
        assert!(algorithms.contains(&"ECDSA_SHA_256"));
    }
}
