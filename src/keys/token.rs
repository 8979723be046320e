//! Key tokens: a key version's material wrapped under the domain key and bound to its key id
//! and version.

use crate::hsm::{crypto, HsmError, Member};
use crate::store::records::KeyTokenRecord;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

/// What the binding value commits to.
fn binding_context(key_id: &str, key_version_id: &str) -> Vec<u8> {
    format!("hkms key token v1\0{key_id}\0{key_version_id}").into_bytes()
}

/// Generates a key version inside `member` and returns its token. The plaintext material
/// exists only inside the HSM, for the moment between generation and wrapping.
pub fn generate(
    member: &Member,
    session: &Session,
    key_id: &str,
    key_version_id: &str,
    bits: u32,
    domain_key_id: &str,
    created: &str,
) -> Result<KeyTokenRecord, HsmError> {
    let dk = member.domain_key()?;
    let key = crypto::generate_key_version(session, bits).map_err(|e| member.err(e))?;
    let result = (|| {
        let wrapped = crypto::wrap_key_version(session, dk, key).map_err(|e| member.err(e))?;
        let binding = crypto::binding(session, key, &binding_context(key_id, key_version_id))
            .map_err(|e| member.err(e))?;
        Ok(KeyTokenRecord {
            key_id: key_id.to_owned(),
            key_version_id: key_version_id.to_owned(),
            creation_date: created.to_owned(),
            domain_key_id: domain_key_id.to_owned(),
            wrap_mechanism: crypto::TOKEN_WRAP_MECHANISM,
            wrapped_key: wrapped,
            binding,
            key_bits: bits,
        })
    })();
    // The generated object is extractable; it never outlives this call.
    let _ = session.destroy_object(key);
    result
}

/// Unwraps a token into a non-extractable session object and checks its binding.
pub fn unwrap(
    member: &Member,
    session: &Session,
    domain_key: ObjectHandle,
    token: &KeyTokenRecord,
) -> Result<ObjectHandle, HsmError> {
    if token.wrap_mechanism != crypto::TOKEN_WRAP_MECHANISM {
        return Err(HsmError::Other {
            member: member.name.clone(),
            message: format!(
                "key token {} uses unknown wrap mechanism {:#x}",
                token.key_version_id, token.wrap_mechanism
            ),
        });
    }
    let handle = crypto::unwrap_key_version(session, domain_key, &token.wrapped_key)
        .map_err(|e| member.err(e))?;
    let check = crypto::binding(
        session,
        handle,
        &binding_context(&token.key_id, &token.key_version_id),
    )
    .map_err(|e| member.err(e));
    match check {
        Ok(b) if b.len() == token.binding.len() && openssl::memcmp::eq(&b, &token.binding) => {
            Ok(handle)
        }
        other => {
            let _ = session.destroy_object(handle);
            other?;
            Err(HsmError::TokenBinding {
                member: member.name.clone(),
                key_version_id: token.key_version_id.clone(),
            })
        }
    }
}

/// The handle of a token's key on `member`, from the member's cache or unwrapped now.
pub fn handle(member: &Member, token: &KeyTokenRecord) -> Result<ObjectHandle, HsmError> {
    member.key_handle(&token.key_version_id, |login, dk| {
        unwrap(member, login, dk, token)
    })
}
