//! Data key pairs: an RSA or EC key pair whose private key comes back encrypted under a
//! symmetric customer master key ([`crate::crypto::key_pair`]). Authorise, then run.

use super::Ctx;
use crate::crypto::key_pair;
use crate::error::KmsError;

pub use crate::crypto::key_pair::{DataKeyPair, Sealing};

/// A key pair of `key_pair_spec` in `key_format` (PEM or DER), its private key sealed under
/// `key_ref` as `sealing` says. `operation` names what the caller asked for
/// (GenerateDataKeyPair, its WithoutPlaintext and Advance forms), so a policy grants each by
/// its name; the caller drops the plaintext private key of the WithoutPlaintext forms.
pub async fn generate(
    ctx: Ctx<'_>,
    operation: &str,
    key_ref: &str,
    key_pair_spec: &str,
    key_format: &str,
    aad: &[u8],
    sealing: Sealing,
) -> Result<DataKeyPair, KmsError> {
    let key_id = ctx.key(operation, key_ref)?;
    key_pair::generate(ctx.app, &key_id, key_pair_spec, key_format, aad, sealing).await
}
