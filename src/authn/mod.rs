//! Authentication: who is calling, computed once per request and carried in the request's
//! extensions as a [`Caller`].
//!
//! - [`peer`]: local peers on the Unix socket, by their credentials (SO_PEERCRED);
//! - [`signed`]: application requests of the KMS instance API, relayed by the gateway and
//!   verified here with the ClientKey's certificate.

pub mod peer;
pub mod signed;

use crate::error::{ErrorCode, KmsError};
use std::net::IpAddr;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A local administrator (`[access] operator_uids` / `operator_gids`).
    Operator { uid: u32, gid: u32 },
    /// A local hkms-gateway (`[access] gateway_uids`): may only relay signed requests.
    Gateway { uid: u32, gid: u32 },
    /// An application, authenticated by one of its AAP's ClientKeys.
    Application {
        aap: String,
        client_key_id: String,
        source: IpAddr,
    },
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Operator { uid, gid } => write!(f, "operator uid={uid} gid={gid}"),
            Caller::Gateway { uid, gid } => write!(f, "gateway uid={uid} gid={gid}"),
            Caller::Application {
                aap,
                client_key_id,
                source,
            } => write!(f, "aap={aap} client_key={client_key_id} source={source}"),
        }
    }
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
