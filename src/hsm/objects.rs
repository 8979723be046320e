//! What hkms keeps on a member besides sessions: the mode keys of each cached key version,
//! and whether the member's domain key carries its unwrap template.

use cryptoki::object::ObjectHandle;

/// The session objects that serve one key version, each for one mode family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeKeys {
    /// AES-GCM encryption and decryption.
    pub gcm: ObjectHandle,
    /// AES-CBC encryption and decryption.
    pub cbc: ObjectHandle,
    /// A version written before token version 2: its material, which decrypts the AES-GCM
    /// ciphertexts it wrote (it is also `cbc`).
    pub legacy: Option<ObjectHandle>,
}

impl ModeKeys {
    /// Every distinct object behind these keys.
    pub(super) fn objects(&self) -> Vec<ObjectHandle> {
        let mut v = vec![self.gcm, self.cbc];
        v.extend(self.legacy.filter(|l| *l != self.cbc));
        v
    }
}

/// The unwrapped keys of one key version, as a member caches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKeys {
    /// An AES key version.
    Aes(ModeKeys),
    /// An RSA or EC private key, or an HMAC key.
    Single(ObjectHandle),
}

impl VersionKeys {
    /// Every distinct object behind these keys.
    pub(super) fn objects(&self) -> Vec<ObjectHandle> {
        match self {
            VersionKeys::Aes(k) => k.objects(),
            VersionKeys::Single(h) => vec![*h],
        }
    }
}

/// Whether a member's HSM enforces the domain key's unwrap template: only then can the
/// process holding the PIN not turn a stored token into a readable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapTemplate {
    /// Not known yet (no domain key found on the member).
    Unknown = 0,
    /// The domain key carries it, read back from the HSM.
    Enforced = 1,
    /// The domain key has none: it was made before hkms set one, or the device drops it.
    Absent = 2,
}

impl UnwrapTemplate {
    pub fn as_str(self) -> &'static str {
        match self {
            UnwrapTemplate::Unknown => "Unknown",
            UnwrapTemplate::Enforced => "Enforced",
            UnwrapTemplate::Absent => "Absent",
        }
    }
}
