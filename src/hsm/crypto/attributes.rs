//! Attributes every mechanism module shares: the unwrap template each unwrap passes, and
//! the components read back from an RSA public key.

use cryptoki::error::Result;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;

/// What the domain key may unwrap: only sensitive keys that can leave the HSM at most
/// under a trusted key and cannot derive (a derived key's sensitivity is the caller's
/// choice). Every unwrap template hkms passes names all three.
pub fn unwrap_template() -> [Attribute; 3] {
    [
        Attribute::Sensitive(true),
        Attribute::WrapWithTrusted(true),
        Attribute::Derive(false),
    ]
}

/// The modulus and public exponent of an RSA public key object.
pub fn rsa_public_components(
    session: &Session,
    public: ObjectHandle,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let attrs = session.get_attributes(
        public,
        &[
            cryptoki::object::AttributeType::Modulus,
            cryptoki::object::AttributeType::PublicExponent,
        ],
    )?;
    let (mut modulus, mut exponent) = (Vec::new(), Vec::new());
    for a in attrs {
        match a {
            Attribute::Modulus(m) => modulus = m,
            Attribute::PublicExponent(e) => exponent = e,
            _ => {}
        }
    }
    Ok((modulus, exponent))
}
