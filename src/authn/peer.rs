//! The authentication layer of every gRPC call. Local peers on the Unix socket are
//! identified by the kernel (SO_PEERCRED), never by anything they send; peers of the TCP
//! listener by the certificate their TLS handshake proved ([`super::tls`]).

use super::tls::{remote_caller, RemoteConnectInfo};
use super::{Caller, RelayAllowed};
use crate::config::AccessConfig;
use crate::error::{ErrorCode, KmsError};
use crate::store::Store;
use std::sync::Arc;
use tonic::transport::server::UdsConnectInfo;

/// Credentials of a local peer and what the configuration allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPeer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    pub operator: bool,
    pub gateway: bool,
}

/// Classifies a peer by the `[access]` configuration.
pub fn classify(config: &AccessConfig, uid: u32, gid: u32, pid: Option<i32>) -> LocalPeer {
    LocalPeer {
        uid,
        gid,
        pid,
        operator: config.operator_uids.contains(&uid) || config.operator_gids.contains(&gid),
        gateway: config.gateway_uids.contains(&uid),
    }
}

/// The authentication layer: refuses peers the configuration does not name, and records the
/// [`Caller`] of everyone else (with the [`LocalPeer`] of Unix socket peers, and
/// [`RelayAllowed`] for gateways).
#[derive(Debug, Clone)]
pub struct PeerAuth {
    config: Arc<AccessConfig>,
    /// ClientKeys of TCP peers are checked against the store on every call.
    store: Arc<dyn Store>,
}

impl PeerAuth {
    pub fn new(config: AccessConfig, store: Arc<dyn Store>) -> PeerAuth {
        PeerAuth {
            config: Arc::new(config),
            store,
        }
    }
}

impl tonic::service::Interceptor for PeerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(info) = req.extensions().get::<RemoteConnectInfo>().cloned() {
            let now = crate::access::clientkey::now_unix();
            let (caller, relay) = remote_caller(&*self.store, &info, now)?;
            if relay {
                req.extensions_mut().insert(RelayAllowed);
            }
            req.extensions_mut().insert(caller);
            return Ok(req);
        }
        let cred = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        let Some(cred) = cred else {
            tracing::warn!("refused a connection without peer credentials");
            return Err(KmsError::new(
                ErrorCode::Unauthenticated,
                "the caller's credentials are unknown",
            )
            .into());
        };
        let peer = classify(&self.config, cred.uid(), cred.gid(), cred.pid());
        let caller = if peer.operator {
            Caller::Operator {
                uid: peer.uid,
                gid: peer.gid,
            }
        } else if peer.gateway {
            Caller::Gateway {
                uid: peer.uid,
                gid: peer.gid,
            }
        } else {
            tracing::warn!(
                uid = peer.uid,
                gid = peer.gid,
                pid = ?peer.pid,
                "refused a local peer that is neither an operator nor a gateway ([access] in the config)"
            );
            return Err(KmsError::new(
                ErrorCode::Forbidden,
                format!(
                    "uid {} is not allowed to use hkmsd (see [access] in the hkmsd config)",
                    peer.uid
                ),
            )
            .into());
        };
        if peer.gateway {
            req.extensions_mut().insert(RelayAllowed);
        }
        req.extensions_mut().insert(peer);
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_classified_by_uid_and_gid() {
        let c = AccessConfig {
            operator_uids: vec![0, 1000],
            operator_gids: vec![990],
            gateway_uids: vec![991, 1000],
        };
        let p = classify(&c, 0, 0, None);
        assert!(p.operator && !p.gateway);
        let p = classify(&c, 1000, 1000, None);
        assert!(p.operator && p.gateway);
        let p = classify(&c, 1234, 990, None);
        assert!(p.operator && !p.gateway);
        let p = classify(&c, 991, 991, None);
        assert!(!p.operator && p.gateway);
        let p = classify(&c, 4321, 4321, None);
        assert!(!p.operator && !p.gateway);
    }

    #[test]
    fn requests_without_credentials_or_from_strangers_are_refused() {
        use tonic::service::Interceptor;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let mut auth = PeerAuth::new(AccessConfig::default(), store);
        let err = auth.call(tonic::Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            crate::error::error_code(&err).as_deref(),
            Some("Unauthenticated")
        );
    }
}
