//! Authentication: who is calling, computed once per request and carried in the request's
//! extensions as a [`Caller`].
//!
//! - [`endpoint`]: the gateway endpoint a request came in on;
//! - [`peer`]: local peers on the Unix socket, by their credentials (SO_PEERCRED), and
//!   remote peers on the TCP listener, by the identity [`tls`] established;
//! - application requests relayed by the gateway are authenticated by their API's front
//!   ([`crate::front`]), which then names the caller as a [`Caller::Application`];
//! - [`tls`]: the optional TCP listener with mutual TLS (ClientKey certificates of
//!   applications, instance-CA certificates of gateways on other hosts).

pub mod endpoint;
pub mod peer;
pub mod tls;

use self::endpoint::EndpointKind;
use crate::error::{ErrorCode, KmsError};
use std::net::IpAddr;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A local administrator (`[access] operator_uids` / `operator_gids`).
    Operator { uid: u32, gid: u32 },
    /// A local hkms-gateway (`[access] gateway_uids`): may only relay signed requests.
    Gateway { uid: u32, gid: u32 },
    /// An hkms-gateway on another host, connected over TCP with a gateway client
    /// certificate of the instance CA: the same rights as a local gateway.
    RemoteGateway { subject: String, address: IpAddr },
    /// An application, authenticated by one of its AAP's credentials: a ClientKey (its id,
    /// `KAAP.<uuid>`) or an API key (its SecretId, `AKID...`). `source` and
    /// `endpoint` say where the request came from, for the AAP's network rules: the
    /// gateway endpoint it arrived on, or [`EndpointKind::Private`] for a call to hkmsd's
    /// own TCP listener (a private network between hosts).
    Application {
        aap: String,
        credential: String,
        source: IpAddr,
        endpoint: EndpointKind,
    },
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Operator { uid, gid } => write!(f, "operator uid={uid} gid={gid}"),
            Caller::Gateway { uid, gid } => write!(f, "gateway uid={uid} gid={gid}"),
            Caller::RemoteGateway { subject, address } => {
                write!(f, "gateway cert=\"{subject}\" address={address}")
            }
            Caller::Application {
                aap,
                credential,
                source,
                endpoint,
            } => write!(
                f,
                "aap={aap} credential={credential} source={source} endpoint={endpoint}"
            ),
        }
    }
}

/// Recorded (in the request's extensions) for peers that may relay signed application
/// requests and assert their source address: a local gateway uid, or a remote gateway
/// with an instance-CA gateway certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAllowed;

/// Whether the request's peer may relay application requests.
pub fn may_relay<T>(req: &tonic::Request<T>) -> bool {
    req.extensions().get::<RelayAllowed>().is_some()
}

/// The caller of a request, as the authentication layer recorded it.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, KmsError> {
    req.extensions().get::<Caller>().cloned().ok_or_else(|| {
        KmsError::new(
            ErrorCode::Unauthenticated,
            "the caller could not be identified",
        )
    })
}
