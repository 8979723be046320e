//! Key tokens: a key version's keys wrapped under the domain key and bound to its key id
//! and version.
//!
//! Token version 2 (every version created since it exists) holds three independent AES keys
//! generated inside an HSM, one per mode family ([`ModeFamily`]): `wrapped_key` (AES-GCM),
//! `wrapped_cbc_key` (AES-CBC) and `wrapped_binding_key` (the binding key, which only hkms
//! uses). The binding value is one AES block under the binding key over a digest of the key
//! id, the version id, the key length and the two other wrapped keys; it is checked after
//! every unwrap against the ids the token was *looked up by*, never the ids written inside
//! the record, so a record copied whole from one key to another is refused
//! ([`HsmError::TokenBinding`]).
//!
//! Tokens written before (token version 0) held one material that served every mode, and a
//! binding under that material. They are migrated ([`migrate`]): the old material becomes
//! the AES-CBC key (`legacy_cbc_key`), where it keeps serving AES-CBC (a bare CBC
//! ciphertext does not say which key wrote it) and decrypts the AES-GCM ciphertexts it
//! wrote; a fresh AES-GCM key and binding key are generated. New AES-GCM ciphertexts
//! therefore never share a key with AES-CBC.

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

/// The parts of a version-2 token the binding value commits to, beside the ids it is stored
/// under (the binding key itself is committed to by computing the value under it).
struct Bound<'a> {
    bits: u32,
    gcm: &'a [u8],
    cbc: &'a [u8],
    legacy_cbc: bool,
}

fn binding_context(key_id: &str, key_version_id: &str, t: &Bound) -> Vec<u8> {
    let h = |b: &[u8]| hex::encode(crate::crypto::primitives::sha256(b));
    format!(
        "hkms key token v2\0{key_id}\0{key_version_id}\0{}\0{}\0{}\0{}",
        t.bits,
        h(t.gcm),
        h(t.cbc),
        u8::from(t.legacy_cbc)
    )
    .into_bytes()
}

pub(super) fn binding_mismatch(member: &Member, key_version_id: &str) -> HsmError {
    HsmError::TokenBinding {
        member: member.name.clone(),
        key_version_id: key_version_id.to_owned(),
    }
}

/// Compares a computed binding value with the stored one, in constant time.
pub(super) fn same_binding(
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

/// Runs `f` on a session object, destroying the object afterwards whatever happens.
pub fn with_object<T>(
    session: &Session,
    object: ObjectHandle,
    f: impl FnOnce(ObjectHandle) -> Result<T, HsmError>,
) -> Result<T, HsmError> {
    let result = f(object);
    let _ = session.destroy_object(object);
    result
}

/// Generates a key inside `member` and returns it wrapped under the domain key, after
/// `use_it` has used it (the binding key computes the binding value before it goes).
pub(super) fn fresh_key<T>(
    member: &Member,
    session: &Session,
    bits: u32,
    use_it: impl FnOnce(ObjectHandle) -> Result<T, HsmError>,
) -> Result<(Vec<u8>, T), HsmError> {
    let dk = member.domain_key()?;
    let key = crypto::generate_version_key(session, bits).map_err(|e| member.err(e))?;
    // The generated object is extractable; it never outlives this call.
    with_object(session, key, |key| {
        let wrapped = crypto::wrap_version_key(session, dk, key).map_err(|e| member.err(e))?;
        Ok((wrapped, use_it(key)?))
    })
}

/// The wrapped keys and binding value of a version-2 token.
struct Fresh {
    gcm: Vec<u8>,
    cbc: Vec<u8>,
    binding_key: Vec<u8>,
    binding: Vec<u8>,
}

/// Generates the keys a version-2 token needs: an AES-GCM key, an AES-CBC key unless
/// `legacy_cbc` brings the old material, and a binding key that binds them to the ids.
fn fresh_keys(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    legacy_cbc: Option<&[u8]>,
) -> Result<Fresh, HsmError> {
    let (gcm, ()) = fresh_key(member, session, bits, |_| Ok(()))?;
    let cbc = match legacy_cbc {
        Some(old) => old.to_vec(),
        None => fresh_key(member, session, bits, |_| Ok(()))?.0,
    };
    bind(
        member,
        session,
        key_id,
        key_version_id,
        bits,
        gcm,
        cbc,
        legacy_cbc.is_some(),
    )
}

/// Generates the binding key of a version whose AES-GCM and AES-CBC keys are wrapped
/// already, and binds them to the ids.
#[allow(clippy::too_many_arguments)]
fn bind(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    gcm: Vec<u8>,
    cbc: Vec<u8>,
    legacy_cbc: bool,
) -> Result<Fresh, HsmError> {
    let bound = Bound {
        bits,
        gcm: &gcm,
        cbc: &cbc,
        legacy_cbc,
    };
    let context = binding_context(key_id, key_version_id, &bound);
    let (binding_key, binding) = fresh_key(member, session, bits, |key| {
        crypto::binding(session, key, &context).map_err(|e| member.err(e))
    })?;
    Ok(Fresh {
        gcm,
        cbc,
        binding_key,
        binding,
    })
}

impl Fresh {
    /// The token record of a version made now (not migrated).
    fn into_record(
        self,
        key_id: &str,
        key_version_id: &str,
        bits: u32,
        domain_key_id: &str,
        created: &str,
    ) -> KeyTokenRecord {
        KeyTokenRecord {
            key_id: key_id.to_owned(),
            key_version_id: key_version_id.to_owned(),
            creation_date: created.to_owned(),
            domain_key_id: domain_key_id.to_owned(),
            wrap_mechanism: crypto::TOKEN_WRAP_MECHANISM,
            wrapped_key: self.gcm,
            binding: self.binding,
            key_bits: bits,
            token_version: TOKEN_VERSION,
            wrapped_cbc_key: self.cbc,
            wrapped_binding_key: self.binding_key,
            legacy_cbc_key: false,
            ..Default::default()
        }
    }
}

/// Generates a key version inside `member` and returns its token. The plaintext keys exist
/// only inside the HSM.
pub fn generate(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    domain_key_id: &str,
    created: &str,
) -> Result<KeyTokenRecord, HsmError> {
    let fresh = fresh_keys(member, session, key_id, key_version_id, bits, None)?;
    Ok(fresh.into_record(key_id, key_version_id, bits, domain_key_id, created))
}

/// What the keys derived from imported material are derived with (see [`from_material`]).
const IMPORTED_CBC_LABEL: &str = "hkms imported material: AES-CBC key";
const IMPORTED_CHECK_LABEL: &str = "hkms imported material: check value";

/// The data a key of `bits` is derived with under `label`: the first `bits / 8` bytes of
/// SHA-256(label).
fn derivation_data(label: &str, bits: u32) -> Vec<u8> {
    crate::crypto::primitives::sha256(label.as_bytes())[..(bits / 8) as usize].to_vec()
}

/// The length in bytes of imported material (a session object): its `CKA_VALUE_LEN`, or,
/// where the token leaves that unset on unwrapped keys, the length of the material wrapped
/// under the domain key less the 8 bytes of RFC 5649's integrity block. That is exact for
/// every AES key length (16, 24 and 32 wrap to 24, 32 and 40 bytes); other lengths round up
/// to a multiple of 8, and AES then refuses the key when it is first used.
pub fn material_len(
    member: &Member,
    session: &Session,
    material: ObjectHandle,
) -> Result<usize, HsmError> {
    let said = crypto::secret_key_len(session, material).map_err(|e| member.err(e))?;
    if said != 0 {
        return Ok(said);
    }
    let dk = member.domain_key()?;
    let wrapped = crypto::wrap_version_key(session, dk, material).map_err(|e| member.err(e))?;
    Ok(wrapped.len().saturating_sub(8))
}

/// A check value of imported material, computed inside the HSM: one AES block under a key
/// derived from the material (`IMPORTED_CHECK_LABEL`) over the key id. Equal values mean
/// equal material; the value says nothing about the material itself.
pub fn material_check(
    member: &Member,
    session: &Session,
    material: ObjectHandle,
    key_id: &str,
    bits: u32,
) -> Result<Vec<u8>, HsmError> {
    let data = derivation_data(IMPORTED_CHECK_LABEL, bits);
    let check =
        crypto::derive_from_material(session, material, &data, false).map_err(|e| member.err(e))?;
    with_object(session, check, |check| {
        let context = format!("hkms material check\0{key_id}");
        crypto::binding(session, check, context.as_bytes()).map_err(|e| member.err(e))
    })
}

/// The token of a version whose material was imported (`material`, a session object the
/// caller destroys). The material itself is the AES-GCM key, so a ciphertext made outside
/// hkms with the same material in hkms's ciphertext format decrypts; the AES-CBC key is
/// derived from it inside the HSM (`IMPORTED_CBC_LABEL`), so the two modes still never
/// share a key; the binding key is generated fresh, as for every version.
#[allow(clippy::too_many_arguments)]
pub fn from_material(
    member: &Member,
    session: &Session,
    material: ObjectHandle,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    domain_key_id: &str,
    created: &str,
) -> Result<KeyTokenRecord, HsmError> {
    let dk = member.domain_key()?;
    let gcm = crypto::wrap_version_key(session, dk, material).map_err(|e| member.err(e))?;
    let data = derivation_data(IMPORTED_CBC_LABEL, bits);
    let cbc_key =
        crypto::derive_from_material(session, material, &data, true).map_err(|e| member.err(e))?;
    let cbc = with_object(session, cbc_key, |k| {
        crypto::wrap_version_key(session, dk, k).map_err(|e| member.err(e))
    })?;
    let fresh = bind(
        member,
        session,
        key_id,
        key_version_id,
        bits,
        gcm,
        cbc,
        false,
    )?;
    Ok(fresh.into_record(key_id, key_version_id, bits, domain_key_id, created))
}

/// Checks that `token` is stored under the ids it claims and uses a known wrap mechanism.
pub(super) fn check_record(
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
    let material =
        member.unwrap_working_key(session, domain_key, &token.wrapped_key, ModeFamily::Cbc)?;
    with_object(session, material, |material| {
        let context = legacy_binding_context(key_id, key_version_id);
        let b = crypto::binding(session, material, &context).map_err(|e| member.err(e))?;
        same_binding(member, &b, &token.binding, key_version_id)
    })
}

/// Unwraps a version-2 token looked up under (`key_id`, `key_version_id`), checks its
/// binding, and returns its mode keys.
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
    let unwrap_one =
        |wrapped: &[u8], family| member.unwrap_working_key(session, domain_key, wrapped, family);
    let bound = Bound {
        bits: token.key_bits,
        gcm: &token.wrapped_key,
        cbc: &token.wrapped_cbc_key,
        legacy_cbc: token.legacy_cbc_key,
    };
    let binding_key = unwrap_one(&token.wrapped_binding_key, ModeFamily::Binding)?;
    with_object(session, binding_key, |key| {
        let context = binding_context(key_id, key_version_id, &bound);
        let b = crypto::binding(session, key, &context).map_err(|e| member.err(e))?;
        same_binding(member, &b, &token.binding, key_version_id)
    })?;
    let gcm = unwrap_one(&token.wrapped_key, ModeFamily::Gcm)?;
    let cbc = unwrap_one(&token.wrapped_cbc_key, ModeFamily::Cbc).inspect_err(|_| {
        let _ = session.destroy_object(gcm);
    })?;
    let legacy = token.legacy_cbc_key.then_some(cbc);
    Ok(ModeKeys { gcm, cbc, legacy })
}

/// The mode keys of `token` on `member`, from the member's cache or unwrapped now. Only for
/// tokens that [`crate::keys::usable_token`] returned: it has checked that the ids written
/// in the token are those it was found under, so the binding is checked against them.
pub fn handle(member: &Member, token: &KeyTokenRecord) -> Result<ModeKeys, HsmError> {
    let (key_id, key_version_id) = (&token.key_id, &token.key_version_id);
    member.key_handle(key_id, key_version_id, |login, dk| {
        unwrap(member, login, dk, token, key_id, key_version_id)
    })
}

/// Turns a version-0 token stored under (`key_id`, `key_version_id`) into a version-2
/// token: its binding is checked, its material becomes the AES-CBC key, and a fresh AES-GCM
/// key and binding key are generated.
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
    let fresh = fresh_keys(
        member,
        session,
        key_id,
        key_version_id,
        token.key_bits,
        Some(&token.wrapped_key),
    )?;
    Ok(KeyTokenRecord {
        wrapped_key: fresh.gcm,
        binding: fresh.binding,
        token_version: TOKEN_VERSION,
        wrapped_cbc_key: fresh.cbc,
        wrapped_binding_key: fresh.binding_key,
        legacy_cbc_key: true,
        ..token.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_contexts_differ_by_every_field() {
        let t = Bound {
            bits: 256,
            gcm: b"g",
            cbc: b"c",
            legacy_cbc: false,
        };
        let base = binding_context("k", "v", &t);
        assert_ne!(base, binding_context("k2", "v", &t));
        assert_ne!(base, binding_context("k", "v2", &t));
        for other in [
            Bound { bits: 128, ..t },
            Bound { gcm: b"x", ..t },
            Bound { cbc: b"x", ..t },
            Bound {
                legacy_cbc: true,
                ..t
            },
        ] {
            assert_ne!(base, binding_context("k", "v", &other));
        }
        assert_ne!(base, legacy_binding_context("k", "v"));
    }
}
