//! The domain key ceremony: create the domain key in one member and copy it HSM-to-HSM.
//!
//! The copy never passes through host memory in plaintext:
//! 1. the receiving member generates an RSA transport pair whose private half can only unwrap;
//! 2. the security officer of the source member imports that public key as a *trusted*
//!    wrapping key (the domain key has `CKA_WRAP_WITH_TRUSTED`, so nothing else can wrap it);
//! 3. the source wraps the domain key with RSA-OAEP and the receiver unwraps it as a token
//!    object with the same attributes;
//! 4. a probe key wrapped on the source must unwrap on the receiver, proving both hold the
//!    same domain key.

use super::crypto;
use super::error::HsmError;
use super::member::Member;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

/// Creates the domain key on `source` (which must be connected and logged in).
pub fn create(source: &Member, domain_key_id: &str) -> Result<(), HsmError> {
    let handle = source.with_login_session(|s| {
        crypto::generate_domain_key(
            source.module_path(),
            s,
            domain_key_id,
            source.quirks().key_templates(),
        )
        .map_err(|e| source.err(e))
    })?;
    source.set_domain_key(domain_key_id, handle)
}

/// Copies the domain key from `source` to `target`. `so_pin` is the security officer PIN of
/// `source`.
pub fn transfer(
    source: &Member,
    target: &Member,
    domain_key_id: &str,
    so_pin: &AuthPin,
) -> Result<(), HsmError> {
    if !source.can_give_domain_key() {
        return Err(HsmError::Other {
            member: source.name.clone(),
            message: format!(
                "cannot give the domain key: HSM profile {:?} says the device cannot mark a \
                 wrapping key trusted (CKA_TRUSTED); copy it from another member",
                source.profile_name()
            ),
        });
    }
    let transport = target
        .with_login_session(|s| crypto::generate_transport_key(s).map_err(|e| target.err(e)))?;
    let result = transfer_with(source, target, domain_key_id, so_pin, &transport);
    let _ = target.with_login_session(|s| {
        let _ = s.destroy_object(transport.private);
        let _ = s.destroy_object(transport.public);
        Ok(())
    });
    result?;
    verify_same_domain_key(source, target)
}

fn transfer_with(
    source: &Member,
    target: &Member,
    domain_key_id: &str,
    so_pin: &AuthPin,
    transport: &crypto::TransportKey,
) -> Result<(), HsmError> {
    // The SO session must stay open while the trusted key is used: session objects vanish
    // with the session that created them.
    let so_session = source.open_session()?;
    // The user and the SO cannot be logged in at once: log the user out (for every session
    // of this process on that token), do the SO step, and always log the user back in.
    let trusted = source.with_login_session(|s| {
        match s.logout() {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
            Err(e) => return Err(source.err(e)),
        }
        so_session
            .login(UserType::So, Some(so_pin))
            .and_then(|()| {
                let h = crypto::import_trusted_transport_key(
                    &so_session,
                    &transport.modulus,
                    &transport.public_exponent,
                );
                let _ = so_session.logout();
                h
            })
            .map_err(|e| source.err(e))
    });
    let relogin = source.relogin();
    let trusted = trusted?;
    relogin?;

    let dk = source.domain_key()?;
    let wrapped = source
        .with_login_session(|s| crypto::wrap_domain_key(s, trusted, dk).map_err(|e| source.err(e)));
    let _ = so_session.destroy_object(trusted);
    drop(so_session);
    let wrapped = wrapped?;

    let handle = target.with_login_session(|s| {
        crypto::unwrap_domain_key(
            target.module_path(),
            s,
            transport.private,
            &wrapped,
            domain_key_id,
            target.quirks().key_templates(),
        )
        .map_err(|e| target.err(e))
    })?;
    target.set_domain_key(domain_key_id, handle)
}

/// Wraps a fresh probe key on `a` and unwraps it on `b`; AES key wrap's integrity check makes
/// the unwrap fail unless both hold the same domain key.
fn verify_same_domain_key(a: &Member, b: &Member) -> Result<(), HsmError> {
    let dk_a = a.domain_key()?;
    let wrapped = a.with_login_session(|s| {
        let probe = crypto::generate_version_key(s, 256).map_err(|e| a.err(e))?;
        let wrapped = crypto::wrap_version_key(s, dk_a, probe).map_err(|e| a.err(e));
        let _ = s.destroy_object(probe);
        wrapped
    })?;
    let dk_b = b.domain_key()?;
    b.with_login_session(|s| {
        let h = crypto::unwrap_version_key(s, dk_b, &wrapped, crypto::ModeFamily::Gcm, true)
            .map_err(|e| b.err(e))?;
        let _ = s.destroy_object(h);
        Ok(())
    })
}

/// Removes the domain key with this id from a member (undoing a failed ceremony).
pub fn destroy(member: &Member, domain_key_id: &str) {
    let _ = member.with_login_session(|s| {
        if let Ok(Some(h)) = crypto::find_domain_key(s, domain_key_id) {
            let _ = s.destroy_object(h);
        }
        Ok(())
    });
}
