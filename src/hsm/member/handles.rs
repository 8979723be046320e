//! The member's cache of unwrapped key versions: session objects in its login session,
//! each checked against the key it was unwrapped for.

use super::{lock, Member};
use crate::hsm::crypto::{self, ModeFamily};
use crate::hsm::{HsmError, ModeKeys, VersionKeys};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use std::sync::atomic::Ordering;

impl Member {
    /// Unwraps one key of a key token under the domain key into a working key of
    /// `family`, a session object of `session`: private unless this member's profile says
    /// `public_working_keys`.
    pub fn unwrap_working_key(
        &self,
        session: &Session,
        domain_key: ObjectHandle,
        wrapped: &[u8],
        family: ModeFamily,
    ) -> Result<ObjectHandle, HsmError> {
        let private = !self.profile.public_working_keys;
        crypto::unwrap_version_key(session, domain_key, wrapped, family, private)
            .map_err(|e| self.err(e))
    }

    /// The mode keys of an AES key version, unwrapping (and checking) its token on first
    /// use.
    ///
    /// `unwrap` runs in the login session (session objects live as long as the session that
    /// made them) and returns the keys after checking the token's binding to `key_id` and
    /// `key_version_id`, the ids the token was looked up by.
    pub fn key_handle(
        &self,
        key_id: &str,
        key_version_id: &str,
        unwrap: impl FnOnce(&Session, ObjectHandle) -> Result<ModeKeys, HsmError>,
    ) -> Result<ModeKeys, HsmError> {
        match self.cached_keys(key_id, key_version_id, |s, dk| {
            unwrap(s, dk).map(VersionKeys::Aes)
        })? {
            VersionKeys::Aes(keys) => Ok(keys),
            VersionKeys::Single(_) => Err(self.wrong_kind(key_version_id)),
        }
    }

    /// The private or MAC key of a key version, unwrapping (and checking) its token on first
    /// use, as [`Member::key_handle`] does for AES versions. `checked_for` names everything
    /// the check covered that callers use outside the HSM (the key id and the public key): a
    /// cached key is served only for the same value, otherwise the token is checked again.
    pub fn single_key_handle(
        &self,
        checked_for: &str,
        key_version_id: &str,
        unwrap: impl FnOnce(&Session, ObjectHandle) -> Result<ObjectHandle, HsmError>,
    ) -> Result<ObjectHandle, HsmError> {
        match self.cached_keys(checked_for, key_version_id, |s, dk| {
            unwrap(s, dk).map(VersionKeys::Single)
        })? {
            VersionKeys::Single(key) => Ok(key),
            VersionKeys::Aes(_) => Err(self.wrong_kind(key_version_id)),
        }
    }

    fn wrong_kind(&self, key_version_id: &str) -> HsmError {
        HsmError::Other {
            member: self.name.clone(),
            message: format!("key version {key_version_id} is cached as another kind of key"),
        }
    }

    fn cached_keys(
        &self,
        key_id: &str,
        key_version_id: &str,
        unwrap: impl FnOnce(&Session, ObjectHandle) -> Result<VersionKeys, HsmError>,
    ) -> Result<VersionKeys, HsmError> {
        let mut conn = lock(&self.conn);
        let conn = conn.as_mut().ok_or_else(|| self.not_connected())?;
        match conn.handles.get(key_version_id) {
            Some((checked_for, keys)) if checked_for == key_id => return Ok(*keys),
            Some(_) => {
                if let Some((_, stale)) = conn.handles.remove(key_version_id) {
                    for h in stale.objects() {
                        let _ = conn.login.destroy_object(h);
                    }
                }
            }
            None => {}
        }
        let dk = conn.domain_key.ok_or_else(|| HsmError::Other {
            member: self.name.clone(),
            message: "the instance is not initialised".into(),
        })?;
        let keys = unwrap(&conn.login, dk)?;
        conn.handles
            .insert(key_version_id.to_owned(), (key_id.to_owned(), keys));
        self.cached
            .store(conn.handles.len() as u64, Ordering::Relaxed);
        Ok(keys)
    }

    /// Forgets the cached keys of one key version (deleted, or its material deleted).
    /// Blocking (it waits for the connection, which a hung call may hold): the pool runs it
    /// on a blocking thread under the call deadline ([`crate::hsm::Pool::forget_versions`]).
    pub fn forget_version(&self, key_version_id: &str) {
        let mut conn = lock(&self.conn);
        if let Some(conn) = conn.as_mut() {
            if let Some((_, keys)) = conn.handles.remove(key_version_id) {
                for h in keys.objects() {
                    let _ = conn.login.destroy_object(h);
                }
            }
            self.cached
                .store(conn.handles.len() as u64, Ordering::Relaxed);
        }
    }

    /// Whether the member's token offers mechanism `ckm` (a `CKM_*` value), from the list
    /// read when it connected; `None` when it has not connected yet. Makes no PKCS#11 call.
    pub fn has_mechanism(&self, ckm: cryptoki_sys::CK_MECHANISM_TYPE) -> Option<bool> {
        let list = lock(&self.mechanisms);
        (!list.is_empty()).then(|| crate::hsm::capability::has(&list, ckm))
    }

    /// Why this member cannot do `capability` (a key spec or algorithm name, see
    /// [`crate::hsm::capability`]); `None` when it can, or has not connected yet (it is
    /// then tried, and a missing mechanism fails like any HSM error). Makes no PKCS#11 call.
    pub fn cannot(&self, capability: crate::hsm::capability::Need) -> Option<String> {
        let list = lock(&self.mechanisms);
        if list.is_empty() {
            return None;
        }
        crate::hsm::capability::missing(capability, &list, &self.profile.quirks)
    }

    /// The key specs and algorithms this member can do; empty before it has connected.
    pub fn capabilities(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        let list = lock(&self.mechanisms);
        if list.is_empty() {
            return (Vec::new(), Vec::new());
        }
        crate::hsm::capability::offered(&list, &self.profile.quirks)
    }

    /// Forgets every cached key handle (destroying the session objects behind them).
    pub fn clear_handles(&self) {
        let mut conn = lock(&self.conn);
        if let Some(conn) = conn.as_mut() {
            for (_, (_, keys)) in conn.handles.drain() {
                for h in keys.objects() {
                    let _ = conn.login.destroy_object(h);
                }
            }
        }
        self.cached.store(0, Ordering::Relaxed);
    }
}
