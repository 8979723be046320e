//! What the gateway asserts about every request it relays, whichever API it speaks: the
//! endpoint it arrived on and the client's address. A relay message that does not say both
//! plainly is refused as a whole (a gateway fault, not the client's).

use crate::authn::endpoint::EndpointKind;
use crate::error::KmsError;
use crate::proto::ApplicationCallRequest;
use std::net::IpAddr;

/// The endpoint and source address of a relayed request.
pub fn origin(r: &ApplicationCallRequest) -> Result<(EndpointKind, IpAddr), KmsError> {
    let Some(endpoint) = EndpointKind::parse(&r.endpoint) else {
        return Err(KmsError::invalid(format!(
            "unknown endpoint {:?}",
            r.endpoint
        )));
    };
    let source = r.source_address.trim().parse().map_err(|_| {
        KmsError::invalid(format!(
            "source_address {:?} is not an IP address",
            r.source_address
        ))
    })?;
    Ok((endpoint, source))
}
