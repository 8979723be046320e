//! Key tokens: a key version's material wrapped under the domain key and bound to its key id
//! and version.
//!
//! Token version 2 (every version created since it exists): `wrapped_key` is material that
//! can only derive. Unwrapping it yields three keys derived inside the HSM, one per mode
//! family ([`crypto::ModeFamily`]): AES-GCM, AES-CBC and the binding key. The binding value
//! is one AES block under the binding key over a digest of the key id, the version id, the
//! key length and the hash of any legacy material; it is checked after every unwrap against
//! the ids the token was *looked up by*, never the ids written inside the record, so a
//! record copied whole from one key to another is refused ([`HsmError::TokenBinding`]).
//!
//! Tokens written before (token version 0) held material that served every mode, and a
//! binding under that material. They are migrated ([`migrate`]): the old material moves to
//! `legacy_wrapped_key`, where it keeps serving AES-CBC (a bare CBC ciphertext does not say
//! which key wrote it) and decrypts the AES-GCM ciphertexts it wrote; fresh material is
//! generated for everything else. New AES-GCM ciphertexts therefore never share a key with
//! AES-CBC.

use crate::hsm::crypto::{self, ModeFamily};
use crate::hsm::{HsmError, Member, ModeKeys};
use crate::store::records::KeyTokenRecord;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

/// The token version written by this build.
pub const TOKEN_VERSION: u32 = 2;

/// What a version-0 binding value commits to.
fn legacy_binding_context(key_id: &str, key_version_id: &str) -> Vec<u8> {
    format!("hkms key token v1\0{key_id}\0{key_version_id}").into_bytes()
}

/// What a version-2 binding value commits to: the ids the token is stored under, its
/// length, and the legacy material it carries (if any).
fn binding_context(key_id: &str, key_version_id: &str, bits: u32, legacy: &[u8]) -> Vec<u8> {
    let legacy_hash = if legacy.is_empty() {
        String::new()
    } else {
        hex(&openssl::sha::sha256(legacy))
    };
    format!("hkms key token v2\0{key_id}\0{key_version_id}\0{bits}\0{legacy_hash}").into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn binding_mismatch(member: &Member, key_version_id: &str) -> HsmError {
    HsmError::TokenBinding {
        member: member.name.clone(),
        key_version_id: key_version_id.to_owned(),
    }
}

/// Compares a computed binding value with the stored one, in constant time.
fn same_binding(
    member: &Member,
    computed: &[u8],
    stored: &[u8],
    key_version_id: &str,
) -> Result<(), HsmError> {
    if computed.len() == stored.len() && openssl::memcmp::eq(computed, stored) {
        Ok(())
    } else {
        Err(binding_mismatch(member, key_version_id))
    }
}

/// Runs `f` on a fresh material object, destroying the object afterwards whatever happens.
fn with_object<T>(
    session: &Session,
    object: ObjectHandle,
    f: impl FnOnce(ObjectHandle) -> Result<T, HsmError>,
) -> Result<T, HsmError> {
    let result = f(object);
    let _ = session.destroy_object(object);
    result
}

/// The binding value of version-2 material for the given context.
fn bind(
    member: &Member,
    session: &Session,
    material: ObjectHandle,
    bits: u32,
    context: &[u8],
) -> Result<Vec<u8>, HsmError> {
    let key = crypto::derive_mode_key(session, material, bits, ModeFamily::Binding)
        .map_err(|e| member.err(e))?;
    with_object(session, key, |key| {
        crypto::binding(session, key, context).map_err(|e| member.err(e))
    })
}

/// Generates fresh material inside `member`, wraps it, and binds it to the ids and `legacy`.
fn fresh_material(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    legacy: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), HsmError> {
    let dk = member.domain_key()?;
    let key = crypto::generate_key_version(session, bits).map_err(|e| member.err(e))?;
    // The generated object is extractable; it never outlives this call.
    with_object(session, key, |key| {
        let wrapped = crypto::wrap_key_version(session, dk, key).map_err(|e| member.err(e))?;
        let context = binding_context(key_id, key_version_id, bits, legacy);
        let binding = bind(member, session, key, bits, &context)?;
        Ok((wrapped, binding))
    })
}

/// Generates a key version inside `member` and returns its token. The plaintext material
/// exists only inside the HSM.
pub fn generate(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    domain_key_id: &str,
    created: &str,
) -> Result<KeyTokenRecord, HsmError> {
    let (wrapped, binding) = fresh_material(member, session, key_id, key_version_id, bits, &[])?;
    Ok(KeyTokenRecord {
        key_id: key_id.to_owned(),
        key_version_id: key_version_id.to_owned(),
        creation_date: created.to_owned(),
        domain_key_id: domain_key_id.to_owned(),
        wrap_mechanism: crypto::TOKEN_WRAP_MECHANISM,
        wrapped_key: wrapped,
        binding,
        key_bits: bits,
        token_version: TOKEN_VERSION,
        legacy_wrapped_key: Vec::new(),
    })
}

/// Checks that `token` is stored under the ids it claims and uses a known wrap mechanism.
fn check_record(
    member: &Member,
    token: &KeyTokenRecord,
    key_id: &str,
    key_version_id: &str,
) -> Result<(), HsmError> {
    if token.wrap_mechanism != crypto::TOKEN_WRAP_MECHANISM {
        return Err(HsmError::Other {
            member: member.name.clone(),
            message: format!(
                "key token {key_version_id} uses unknown wrap mechanism {:#x}",
                token.wrap_mechanism
            ),
        });
    }
    if token.key_id != key_id || token.key_version_id != key_version_id {
        return Err(binding_mismatch(member, key_version_id));
    }
    Ok(())
}

/// Checks a version-0 token's binding (one AES block under its own material) against the
/// ids it is stored under.
fn check_legacy_binding(
    member: &Member,
    session: &Session,
    domain_key: ObjectHandle,
    token: &KeyTokenRecord,
    key_id: &str,
    key_version_id: &str,
) -> Result<(), HsmError> {
    let material = crypto::unwrap_legacy_version(session, domain_key, &token.wrapped_key)
        .map_err(|e| member.err(e))?;
    with_object(session, material, |material| {
        let context = legacy_binding_context(key_id, key_version_id);
        let b = crypto::binding(session, material, &context).map_err(|e| member.err(e))?;
        same_binding(member, &b, &token.binding, key_version_id)
    })
}

/// Unwraps a version-2 token looked up under (`key_id`, `key_version_id`), checks its
/// binding, and derives its mode keys.
pub fn unwrap(
    member: &Member,
    session: &Session,
    domain_key: ObjectHandle,
    token: &KeyTokenRecord,
    key_id: &str,
    key_version_id: &str,
) -> Result<ModeKeys, HsmError> {
    check_record(member, token, key_id, key_version_id)?;
    if token.token_version != TOKEN_VERSION {
        return Err(HsmError::Other {
            member: member.name.clone(),
            message: format!(
                "key token {key_version_id} has token version {}; it must be migrated first",
                token.token_version
            ),
        });
    }
    let bits = token.key_bits;
    let material = crypto::unwrap_key_version(session, domain_key, &token.wrapped_key)
        .map_err(|e| member.err(e))?;
    with_object(session, material, |material| {
        let context = binding_context(key_id, key_version_id, bits, &token.legacy_wrapped_key);
        let b = bind(member, session, material, bits, &context)?;
        same_binding(member, &b, &token.binding, key_version_id)?;
        let gcm = crypto::derive_mode_key(session, material, bits, ModeFamily::Gcm)
            .map_err(|e| member.err(e))?;
        let cbc = if token.legacy_wrapped_key.is_empty() {
            crypto::derive_mode_key(session, material, bits, ModeFamily::Cbc)
        } else {
            crypto::unwrap_legacy_version(session, domain_key, &token.legacy_wrapped_key)
        };
        let cbc = cbc.map_err(|e| {
            let _ = session.destroy_object(gcm);
            member.err(e)
        })?;
        let legacy = (!token.legacy_wrapped_key.is_empty()).then_some(cbc);
        Ok(ModeKeys { gcm, cbc, legacy })
    })
}

/// The mode keys of the token stored under (`key_id`, `key_version_id`) on `member`, from
/// the member's cache or unwrapped now.
pub fn handle(
    member: &Member,
    token: &KeyTokenRecord,
    key_id: &str,
    key_version_id: &str,
) -> Result<ModeKeys, HsmError> {
    member.key_handle(key_id, key_version_id, |login, dk| {
        unwrap(member, login, dk, token, key_id, key_version_id)
    })
}

/// Turns a version-0 token stored under (`key_id`, `key_version_id`) into a version-2
/// token: its binding is checked, its material becomes the legacy material, and fresh
/// material is generated and bound to both.
pub fn migrate(
    member: &Member,
    session: &Session,
    token: &KeyTokenRecord,
    key_id: &str,
    key_version_id: &str,
) -> Result<KeyTokenRecord, HsmError> {
    check_record(member, token, key_id, key_version_id)?;
    let dk = member.domain_key()?;
    check_legacy_binding(member, session, dk, token, key_id, key_version_id)?;
    let legacy = token.wrapped_key.clone();
    let (wrapped, binding) = fresh_material(
        member,
        session,
        key_id,
        key_version_id,
        token.key_bits,
        &legacy,
    )?;
    Ok(KeyTokenRecord {
        wrapped_key: wrapped,
        binding,
        token_version: TOKEN_VERSION,
        legacy_wrapped_key: legacy,
        ..token.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_contexts_differ_by_every_field() {
        let base = binding_context("k", "v", 256, b"");
        assert_ne!(base, binding_context("k2", "v", 256, b""));
        assert_ne!(base, binding_context("k", "v2", 256, b""));
        assert_ne!(base, binding_context("k", "v", 128, b""));
        assert_ne!(base, binding_context("k", "v", 256, b"legacy"));
        assert_ne!(base, legacy_binding_context("k", "v"));
    }
}
