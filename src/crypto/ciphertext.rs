//! The self-describing ciphertext format.
//!
//! ```text
//! offset  len  field
//!      0    2  magic "hk"
//!      2    1  format version (1)
//!      3    1  algorithm (1 = AES-GCM, 128-bit tag)
//!      4   16  key id (UUID)
//!     20   16  key version id (UUID)
//!     36   12  IV
//!     48    n  ciphertext
//!   48+n   16  GCM tag
//! ```
//! The whole 48-byte header is authenticated: the GCM AAD is `header || caller AAD` (the
//! header has a fixed length, so the concatenation is unambiguous). Changing any header
//! byte, the body, the tag or the caller's AAD makes decryption fail.

use crate::hsm::crypto::{GCM_IV_LEN, GCM_TAG_LEN};
use uuid::Uuid;

pub const MAGIC: [u8; 2] = *b"hk";
pub const FORMAT_VERSION: u8 = 1;
pub const ALG_AES_GCM: u8 = 1;
pub const HEADER_LEN: usize = 48;

/// Parsed header of a ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key_id: Uuid,
    pub key_version_id: Uuid,
    pub iv: [u8; GCM_IV_LEN],
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = FORMAT_VERSION;
        out[3] = ALG_AES_GCM;
        out[4..20].copy_from_slice(self.key_id.as_bytes());
        out[20..36].copy_from_slice(self.key_version_id.as_bytes());
        out[36..48].copy_from_slice(&self.iv);
        out
    }
}

/// Why a blob is not a ciphertext of this format (kept for logs; callers see one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    TooShort,
    BadMagic,
    UnknownVersion,
    UnknownAlgorithm,
}

/// A ciphertext split into its parts.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub header: Header,
    pub header_bytes: &'a [u8],
    /// Ciphertext followed by the tag.
    pub body: &'a [u8],
}

/// Splits a blob; never panics on any input.
pub fn parse(blob: &[u8]) -> Result<Parsed<'_>, ParseError> {
    if blob.len() < HEADER_LEN + GCM_TAG_LEN {
        return Err(ParseError::TooShort);
    }
    if blob[0..2] != MAGIC {
        return Err(ParseError::BadMagic);
    }
    if blob[2] != FORMAT_VERSION {
        return Err(ParseError::UnknownVersion);
    }
    if blob[3] != ALG_AES_GCM {
        return Err(ParseError::UnknownAlgorithm);
    }
    let uuid_at = |at: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&blob[at..at + 16]);
        Uuid::from_bytes(b)
    };
    let mut iv = [0u8; GCM_IV_LEN];
    iv.copy_from_slice(&blob[36..48]);
    Ok(Parsed {
        header: Header {
            key_id: uuid_at(4),
            key_version_id: uuid_at(20),
            iv,
        },
        header_bytes: &blob[..HEADER_LEN],
        body: &blob[HEADER_LEN..],
    })
}

/// The GCM additional data: header, then the caller's AAD.
pub fn gcm_aad(header: &[u8], caller_aad: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + caller_aad.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(caller_aad);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            key_id: Uuid::new_v4(),
            key_version_id: Uuid::new_v4(),
            iv: [7; 12],
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        let mut blob = h.encode().to_vec();
        blob.extend_from_slice(&[0u8; 20]);
        let p = parse(&blob).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.body.len(), 20);
        assert_eq!(p.header_bytes, &h.encode()[..]);
    }

    #[test]
    fn malformed_blobs_are_refused() {
        let mut blob = header().encode().to_vec();
        blob.extend_from_slice(&[0u8; 16]);
        assert_eq!(parse(&blob[..60]).unwrap_err(), ParseError::TooShort);
        let mut bad = blob.clone();
        bad[0] = b'x';
        assert_eq!(parse(&bad).unwrap_err(), ParseError::BadMagic);
        let mut bad = blob.clone();
        bad[2] = 2;
        assert_eq!(parse(&bad).unwrap_err(), ParseError::UnknownVersion);
        let mut bad = blob;
        bad[3] = 9;
        assert_eq!(parse(&bad).unwrap_err(), ParseError::UnknownAlgorithm);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn aad_keeps_header_prefix(aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = header().encode();
            let joined = gcm_aad(&h, &aad);
            prop_assert_eq!(&joined[..HEADER_LEN], &h[..]);
            prop_assert_eq!(&joined[HEADER_LEN..], &aad[..]);
        }
    }
}
