//! The self-describing ciphertext format (AdvanceEncrypt, AdvanceGenerateDataKey, and
//! hkmsd's own Encrypt).
//!
//! ```text
//! offset  len  field
//!      0    2  magic "hk"
//!      2    1  format version: 2 (written now) or 1 (written before: see below)
//!      3    1  algorithm: 1 = AES-GCM (128-bit tag), 2 = AES-CBC with PKCS#7 padding,
//!              3 = AES-CBC without padding
//!      4   16  key id (UUID)
//!     20   16  key version id (UUID)
//!     36    v  IV: 12 bytes for AES-GCM, 16 for AES-CBC
//!   36+v    n  body: AES-GCM ciphertext then its 16-byte tag; AES-CBC ciphertext (whole
//!              16-byte blocks, at least one)
//! ```
//! The algorithm byte fixes the IV length. Format version 2 means the body was encrypted
//! under the key version's mode key for its algorithm (AES-GCM and AES-CBC never share a
//! key: see `crate::keys::token`). Format version 1 blobs were written before, under the
//! version's material itself; they keep decrypting (AES-GCM ones under the version's legacy
//! material only), and nothing writes them any more. Builds that know only version 1 refuse
//! version 2 blobs as unknown.
//!
//! AES-GCM authenticates the whole header: its AAD is `header || caller AAD` (the header
//! has a fixed length per algorithm, so the concatenation is unambiguous). Changing any
//! header byte, the body, the tag or the caller's AAD makes decryption fail.
//!
//! AES-CBC authenticates nothing, neither the header nor the body, and takes no AAD: a
//! changed blob decrypts to other bytes or fails the padding check. It exists for
//! applications that need the instance API's AES_CBC; AES-GCM is the default.

use super::algorithm::Algorithm;
use crate::hsm::crypto::{CBC_IV_LEN, GCM_IV_LEN, GCM_TAG_LEN};
use uuid::Uuid;

pub const MAGIC: [u8; 2] = *b"hk";
/// The format version written.
pub const FORMAT_VERSION: u8 = 2;
/// The format version of blobs written before mode keys existed (still read).
pub const LEGACY_FORMAT_VERSION: u8 = 1;
pub const ALG_AES_GCM: u8 = 1;
pub const ALG_AES_CBC_PKCS7: u8 = 2;
pub const ALG_AES_CBC_NO_PADDING: u8 = 3;
/// Bytes before the IV.
const FIXED_LEN: usize = 36;
/// Header length of an AES-GCM ciphertext.
pub const GCM_HEADER_LEN: usize = FIXED_LEN + GCM_IV_LEN;
/// Header length of an AES-CBC ciphertext.
pub const CBC_HEADER_LEN: usize = FIXED_LEN + CBC_IV_LEN;
/// AES block length: AES-CBC bodies are whole blocks.
const BLOCK_LEN: usize = 16;

/// How the body is encrypted, with its IV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-GCM with a 128-bit tag; authenticates the header and the caller's AAD.
    Gcm { iv: [u8; GCM_IV_LEN] },
    /// AES-CBC with PKCS#7 padding or none; authenticates nothing.
    Cbc { pkcs7: bool, iv: [u8; CBC_IV_LEN] },
}

impl Cipher {
    /// The instance API's name for it (Algorithm and PaddingMode).
    pub fn algorithm(&self) -> Algorithm {
        match *self {
            Cipher::Gcm { .. } => Algorithm::Gcm,
            Cipher::Cbc { pkcs7, .. } => Algorithm::Cbc { pkcs7 },
        }
    }

    pub fn iv(&self) -> &[u8] {
        match self {
            Cipher::Gcm { iv } => iv,
            Cipher::Cbc { iv, .. } => iv,
        }
    }

    fn code(&self) -> u8 {
        match self {
            Cipher::Gcm { .. } => ALG_AES_GCM,
            Cipher::Cbc { pkcs7: true, .. } => ALG_AES_CBC_PKCS7,
            Cipher::Cbc { pkcs7: false, .. } => ALG_AES_CBC_NO_PADDING,
        }
    }
}

/// Parsed header of a ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// [`FORMAT_VERSION`] or [`LEGACY_FORMAT_VERSION`].
    pub format_version: u8,
    pub key_id: Uuid,
    pub key_version_id: Uuid,
    pub cipher: Cipher,
}

impl Header {
    /// Length of the encoded header.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + self.cipher.iv().len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(self.format_version);
        out.push(self.cipher.code());
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(self.key_version_id.as_bytes());
        out.extend_from_slice(self.cipher.iv());
        out
    }

    /// The IV (12 bytes for AES-GCM, 16 for AES-CBC).
    pub fn iv(&self) -> &[u8] {
        self.cipher.iv()
    }
}

/// Why a blob is not a ciphertext of this format (kept for logs; callers see one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    TooShort,
    BadMagic,
    UnknownVersion,
    UnknownAlgorithm,
    /// An AES-CBC body that is not a whole number of blocks.
    PartialBlock,
}

/// A ciphertext split into its parts.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub header: Header,
    pub header_bytes: &'a [u8],
    /// AES-GCM: ciphertext followed by the tag. AES-CBC: the ciphertext blocks.
    pub body: &'a [u8],
}

/// Splits a blob; never panics on any input.
pub fn parse(blob: &[u8]) -> Result<Parsed<'_>, ParseError> {
    if blob.len() < 4 {
        return Err(ParseError::TooShort);
    }
    if blob[0..2] != MAGIC {
        return Err(ParseError::BadMagic);
    }
    let format_version = blob[2];
    if format_version != FORMAT_VERSION && format_version != LEGACY_FORMAT_VERSION {
        return Err(ParseError::UnknownVersion);
    }
    // Header length and the shortest body of each algorithm (a tag; one block).
    let (header_len, min_body) = match blob[3] {
        ALG_AES_GCM => (GCM_HEADER_LEN, GCM_TAG_LEN),
        ALG_AES_CBC_PKCS7 | ALG_AES_CBC_NO_PADDING => (CBC_HEADER_LEN, BLOCK_LEN),
        _ => return Err(ParseError::UnknownAlgorithm),
    };
    if blob.len() < header_len + min_body {
        return Err(ParseError::TooShort);
    }
    let body = &blob[header_len..];
    let iv = &blob[FIXED_LEN..header_len];
    let cipher = match blob[3] {
        ALG_AES_GCM => Cipher::Gcm {
            iv: iv.try_into().expect("length checked"),
        },
        code => {
            if !body.len().is_multiple_of(BLOCK_LEN) {
                return Err(ParseError::PartialBlock);
            }
            Cipher::Cbc {
                pkcs7: code == ALG_AES_CBC_PKCS7,
                iv: iv.try_into().expect("length checked"),
            }
        }
    };
    let uuid_at = |at: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&blob[at..at + 16]);
        Uuid::from_bytes(b)
    };
    Ok(Parsed {
        header: Header {
            format_version,
            key_id: uuid_at(4),
            key_version_id: uuid_at(20),
            cipher,
        },
        header_bytes: &blob[..header_len],
        body,
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
            format_version: FORMAT_VERSION,
            key_id: Uuid::new_v4(),
            key_version_id: Uuid::new_v4(),
            cipher: Cipher::Gcm { iv: [7; 12] },
        }
    }

    fn cbc_header(pkcs7: bool) -> Header {
        Header {
            cipher: Cipher::Cbc { pkcs7, iv: [9; 16] },
            ..header()
        }
    }

    #[test]
    fn header_round_trips() {
        let h = header();
        let mut blob = h.encode();
        assert_eq!(blob.len(), GCM_HEADER_LEN);
        blob.extend_from_slice(&[0u8; 20]);
        let p = parse(&blob).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.body.len(), 20);
        assert_eq!(p.header_bytes, &h.encode()[..]);
        assert_eq!(p.header.cipher.algorithm(), Algorithm::Gcm);
    }

    /// A GCM blob as earlier builds wrote it (fixed bytes, not this module's encoder) still
    /// parses to the same fields.
    #[test]
    fn earlier_gcm_blobs_still_parse() {
        let key = Uuid::from_bytes([1; 16]);
        let version = Uuid::from_bytes([2; 16]);
        let mut blob = b"hk\x01\x01".to_vec();
        blob.extend_from_slice(&[1; 16]);
        blob.extend_from_slice(&[2; 16]);
        blob.extend_from_slice(&[3; 12]);
        blob.extend_from_slice(&[4; 26]);
        let p = parse(&blob).unwrap();
        assert_eq!(p.header.key_id, key);
        assert_eq!(p.header.key_version_id, version);
        assert_eq!(p.header.cipher, Cipher::Gcm { iv: [3; 12] });
        assert_eq!(p.header_bytes.len(), 48);
        assert_eq!(p.body, &[4; 26]);
        assert_eq!(p.header.encode(), &blob[..48]);
    }

    #[test]
    fn cbc_headers_round_trip() {
        for pkcs7 in [true, false] {
            let h = cbc_header(pkcs7);
            let mut blob = h.encode();
            assert_eq!(blob.len(), CBC_HEADER_LEN);
            assert_eq!(
                blob[3],
                if pkcs7 {
                    ALG_AES_CBC_PKCS7
                } else {
                    ALG_AES_CBC_NO_PADDING
                }
            );
            blob.extend_from_slice(&[0u8; 32]);
            let p = parse(&blob).unwrap();
            assert_eq!(p.header, h);
            assert_eq!(p.header.iv(), &[9; 16]);
            assert_eq!(p.body.len(), 32);
            assert_eq!(p.header.cipher.algorithm(), Algorithm::Cbc { pkcs7 });
            assert_eq!(
                parse(&blob[..CBC_HEADER_LEN + 20]).unwrap_err(),
                ParseError::PartialBlock
            );
            assert_eq!(
                parse(&blob[..CBC_HEADER_LEN + 8]).unwrap_err(),
                ParseError::TooShort
            );
        }
    }

    #[test]
    fn malformed_blobs_are_refused() {
        let mut blob = header().encode();
        blob.extend_from_slice(&[0u8; 16]);
        assert_eq!(parse(&blob[..60]).unwrap_err(), ParseError::TooShort);
        assert_eq!(parse(b"hk").unwrap_err(), ParseError::TooShort);
        let mut bad = blob.clone();
        bad[0] = b'x';
        assert_eq!(parse(&bad).unwrap_err(), ParseError::BadMagic);
        let mut bad = blob.clone();
        bad[2] = 3;
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
        fn parse_never_panics_past_a_valid_prefix(
            alg in 0u8..5,
            rest in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut blob = vec![b'h', b'k', FORMAT_VERSION, alg];
            blob.extend_from_slice(&rest);
            let _ = parse(&blob);
        }

        #[test]
        fn aad_keeps_header_prefix(aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = header().encode();
            let joined = gcm_aad(&h, &aad);
            prop_assert_eq!(&joined[..GCM_HEADER_LEN], &h[..]);
            prop_assert_eq!(&joined[GCM_HEADER_LEN..], &aad[..]);
        }
    }
}
