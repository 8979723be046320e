//! Key tokens of RSA, EC and HMAC key versions: one key (a private key or an HMAC key)
//! generated inside an HSM and wrapped under the domain key, the public key in clear, and a
//! binding value under a binding key of their own (as for AES tokens, [`super::token`]).
//!
//! The binding value commits to the ids the token is stored under, its spec and usage, the
//! wrapped key and the public key: a token copied to another key, or a public key swapped
//! for another, is refused when it is unwrapped ([`HsmError::TokenBinding`]).

use super::spec::{Curve, KeySpec, MacHash, Usage};
use super::token::{binding_mismatch, check_record, fresh_key, same_binding, with_object};
use crate::hsm::crypto::asymmetric::{self as pkc, Hash, PairSpec, PrivateUse};
use crate::hsm::crypto::{self, ModeFamily};
use crate::hsm::{HsmError, Member};
use crate::store::records::KeyTokenRecord;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use openssl::nid::Nid;

/// The key pair behind an RSA or EC spec; `None` for other specs.
pub fn pair_spec(spec: KeySpec) -> Option<PairSpec> {
    match spec {
        KeySpec::Rsa(bits) => Some(PairSpec::Rsa(bits)),
        KeySpec::Ec(Curve::P256) => Some(PairSpec::Ec(Nid::X9_62_PRIME256V1)),
        KeySpec::Ec(Curve::P384) => Some(PairSpec::Ec(Nid::SECP384R1)),
        KeySpec::Ec(Curve::P256K) => Some(PairSpec::Ec(Nid::SECP256K1)),
        _ => None,
    }
}

/// The hash of an HMAC key's MACs.
pub fn mac_hash(hash: MacHash) -> Hash {
    match hash {
        MacHash::Sha256 => Hash::Sha256,
        MacHash::Sha384 => Hash::Sha384,
        MacHash::Sha512 => Hash::Sha512,
    }
}

fn private_use(usage: Usage) -> PrivateUse {
    match usage {
        Usage::EncryptDecrypt => PrivateUse::Decrypt,
        _ => PrivateUse::Sign,
    }
}

fn binding_context(
    key_id: &str,
    key_version_id: &str,
    spec: &str,
    usage: Usage,
    wrapped: &[u8],
    public_key: &[u8],
) -> Vec<u8> {
    let h = |b: &[u8]| hex::encode(crate::crypto::primitives::sha256(b));
    format!(
        "hkms key token v2 single\0{key_id}\0{key_version_id}\0{spec}\0{}\0{}\0{}",
        usage.as_str(),
        h(wrapped),
        h(public_key)
    )
    .into_bytes()
}

fn unsupported(member: &Member, spec: KeySpec) -> HsmError {
    HsmError::Other {
        member: member.name.clone(),
        message: format!("{} keys have no single-key token", spec.as_str()),
    }
}

/// Generates a version of an RSA, EC or HMAC key inside `member` and returns its token.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    spec: KeySpec,
    usage: Usage,
    domain_key_id: &str,
    created: &str,
) -> Result<KeyTokenRecord, HsmError> {
    let dk = member.domain_key()?;
    let err = |e| member.err(e);
    let (wrapped, public_key) = if let Some(pair) = pair_spec(spec) {
        pkc::generate_wrapped_pair(session, dk, pair, private_use(usage)).map_err(err)?
    } else if let KeySpec::Hmac(hash) = spec {
        let wrapped = pkc::generate_wrapped_mac_key(session, dk, hash.key_len()).map_err(err)?;
        (wrapped, Vec::new())
    } else {
        return Err(unsupported(member, spec));
    };
    let context = binding_context(
        key_id,
        key_version_id,
        spec.as_str(),
        usage,
        &wrapped,
        &public_key,
    );
    let (binding_key, binding) = fresh_key(member, session, 256, |key| {
        crypto::binding(session, key, &context).map_err(err)
    })?;
    Ok(KeyTokenRecord {
        key_id: key_id.to_owned(),
        key_version_id: key_version_id.to_owned(),
        creation_date: created.to_owned(),
        domain_key_id: domain_key_id.to_owned(),
        wrap_mechanism: crypto::TOKEN_WRAP_MECHANISM,
        binding,
        token_version: super::token::TOKEN_VERSION,
        wrapped_binding_key: binding_key,
        wrapped_private_key: wrapped,
        public_key,
        key_spec: spec.as_str().to_owned(),
        ..Default::default()
    })
}

/// Unwraps a single-key token looked up under (`key_id`, `key_version_id`) for a key of
/// `spec` and `usage`, checks its binding, and returns its key.
fn unwrap(
    member: &Member,
    session: &Session,
    domain_key: ObjectHandle,
    token: &KeyTokenRecord,
    spec: KeySpec,
    usage: Usage,
) -> Result<ObjectHandle, HsmError> {
    let (key_id, key_version_id) = (&token.key_id, &token.key_version_id);
    check_record(member, token, key_id, key_version_id)?;
    if token.key_spec != spec.as_str() {
        return Err(binding_mismatch(member, key_version_id));
    }
    let err = |e| member.err(e);
    let binding_key = member.unwrap_working_key(
        session,
        domain_key,
        &token.wrapped_binding_key,
        ModeFamily::Binding,
    )?;
    with_object(session, binding_key, |key| {
        let context = binding_context(
            key_id,
            key_version_id,
            &token.key_spec,
            usage,
            &token.wrapped_private_key,
            &token.public_key,
        );
        let b = crypto::binding(session, key, &context).map_err(err)?;
        same_binding(member, &b, &token.binding, key_version_id)
    })?;
    let wrapped = &token.wrapped_private_key;
    match (pair_spec(spec), spec) {
        (Some(pair), _) => {
            pkc::unwrap_private_key(session, domain_key, wrapped, pair, private_use(usage))
                .map_err(err)
        }
        (None, KeySpec::Hmac(hash)) => {
            pkc::unwrap_mac_key(session, domain_key, wrapped, mac_hash(hash)).map_err(err)
        }
        _ => Err(unsupported(member, spec)),
    }
}

/// The key of `token` on `member`, from the member's cache or unwrapped now. Only for tokens
/// that [`crate::keys::usable_version`] returned (it checked that the ids written in the
/// token are those it was found under).
pub fn handle(
    member: &Member,
    token: &KeyTokenRecord,
    spec: KeySpec,
    usage: Usage,
) -> Result<ObjectHandle, HsmError> {
    // The public key is used outside the HSM (Verify, AsymmetricEncrypt, GetPublicKey): a
    // cached key serves only the public key its binding was checked with.
    let checked_for = format!(
        "{}\0{}",
        token.key_id,
        hex::encode(crate::crypto::primitives::sha256(&token.public_key))
    );
    member.single_key_handle(&checked_for, &token.key_version_id, |login, dk| {
        unwrap(member, login, dk, token, spec, usage)
    })
}
