//! AES key wrap with padding (RFC 5649), the wrap of every stored key token, under either of
//! its two PKCS#11 mechanism numbers.
//!
//! PKCS#11 2.40 devices such as SoftHSM2 offer RFC 5649 as `CKM_AES_KEY_WRAP_PAD` (0x210A);
//! PKCS#11 3.0 names it `CKM_AES_KEY_WRAP_KWP` (0x210B) and leaves 0x210A for key wrap with
//! PKCS #7 padding, so devices built on 3.0 such as Kryoptic offer only 0x210B. Both produce
//! the same bytes, so a token wrapped by one unwraps on the other. Each call tries 0x210A and,
//! when the member answers `CKR_MECHANISM_INVALID`, makes it again with 0x210B (a refused
//! call costs microseconds; members mix within one cluster, and sessions do not say which
//! device they belong to).

use super::super::ffi;
use cryptoki::error::{Error, Result, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;

fn kwp() -> Mechanism<'static> {
    ffi::plain_mechanism(cryptoki_sys::CKM_AES_KEY_WRAP_KWP)
}

/// The number under which a token whose `C_GetMechanismList` gave `listed` offers RFC 5649:
/// `CKM_AES_KEY_WRAP_PAD` when it lists it (what [`wrap`] tries first), else
/// `CKM_AES_KEY_WRAP_KWP`; `None` when it lists neither.
pub fn offered(listed: &[cryptoki_sys::CK_MECHANISM_TYPE]) -> Option<MechanismType> {
    [
        cryptoki_sys::CKM_AES_KEY_WRAP_PAD,
        cryptoki_sys::CKM_AES_KEY_WRAP_KWP,
    ]
    .into_iter()
    .find(|m| listed.contains(m))
    .map(ffi::mechanism_type)
}

/// The PKCS#11 name of a mechanism [`offered`] returns.
pub fn name(mechanism: MechanismType) -> &'static str {
    if mechanism == MechanismType::AES_KEY_WRAP_PAD {
        "CKM_AES_KEY_WRAP_PAD"
    } else {
        "CKM_AES_KEY_WRAP_KWP"
    }
}

/// `C_GetMechanismList` of `slot` with every number the library lists (cryptoki leaves out
/// those it has no name for, `CKM_AES_KEY_WRAP_KWP` among them).
pub fn mechanism_list(
    module: &std::path::Path,
    slot: cryptoki::slot::Slot,
) -> Result<Vec<cryptoki_sys::CK_MECHANISM_TYPE>> {
    ffi::mechanism_list(module, slot)
}

fn mechanism_invalid<T>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::Pkcs11(RvError::MechanismInvalid, _)))
}

/// `C_WrapKey` of `key` under `wrapping_key`, RFC 5649.
pub fn wrap(session: &Session, wrapping_key: ObjectHandle, key: ObjectHandle) -> Result<Vec<u8>> {
    let r = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping_key, key);
    if mechanism_invalid(&r) {
        return session.wrap_key(&kwp(), wrapping_key, key);
    }
    r
}

/// `C_UnwrapKey` of an RFC 5649 `wrapped` key under `unwrapping_key`, with `template`.
pub fn unwrap(
    session: &Session,
    unwrapping_key: ObjectHandle,
    wrapped: &[u8],
    template: &[Attribute],
) -> Result<ObjectHandle> {
    let r = session.unwrap_key(&Mechanism::AesKeyWrapPad, unwrapping_key, wrapped, template);
    if mechanism_invalid(&r) {
        return session.unwrap_key(&kwp(), unwrapping_key, wrapped, template);
    }
    r
}
