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

/// Classifies a peer by the `[access]` configuration. A gateway uid is a gateway and
/// nothing else: never an operator, even when its group is in `operator_gids` (or its uid
/// in `operator_uids`, which [`AccessConfig::validate`] refuses at start-up). So a gateway
/// started as root, with uid 0 in `gateway_uids`, may relay and cannot administer.
pub fn classify(config: &AccessConfig, uid: u32, gid: u32, pid: Option<i32>) -> LocalPeer {
    let gateway = config.gateway_uids.contains(&uid);
    LocalPeer {
        uid,
        gid,
        pid,
        operator: !gateway
            && (config.operator_uids.contains(&uid) || config.operator_gids.contains(&gid)),
        gateway,
    }
}

/// A configuration that lists one uid as operator and as gateway, refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "[access]: uid {uids} is listed both in operator_uids and in gateway_uids (operator_uids \
     defaults to [0]). A gateway may only relay application requests and is never an \
     operator: run hkms-gateway as its own user (\"hkms-gateway\", [hardening] run_as) and \
     list that uid in gateway_uids only, or name other operators in operator_uids"
)]
pub struct RoleConflict {
    /// The uids in both lists, comma separated.
    pub uids: String,
}

impl RoleConflict {
    /// The stable code of the refusal.
    pub const CODE: &'static str = "OperatorIsGateway";
}

/// Refuses a uid that is both an operator and a gateway: a gateway faces the network, and
/// a compromised one must not be able to administer the appliance. `operator_uids`
/// defaults to `[0]`, so a gateway running as root (`gateway_uids = [0]`) needs the
/// operators named. (A gateway uid whose group is in `operator_gids` is allowed: it is
/// still only a gateway, see [`classify`].)
pub fn check_roles(config: &AccessConfig) -> Result<(), RoleConflict> {
    let mut both: Vec<u32> = config
        .gateway_uids
        .iter()
        .copied()
        .filter(|uid| config.operator_uids.contains(uid))
        .collect();
    both.sort_unstable();
    both.dedup();
    if both.is_empty() {
        return Ok(());
    }
    Err(RoleConflict {
        uids: both
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })
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
            let now = crate::clock::now_unix();
            let (caller, relay) = remote_caller(&*self.store, &info, now)?;
            if relay {
                req.extensions_mut().insert(RelayAllowed);
            }
            crate::audit::scope::note_caller(&caller);
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
        let caller = if peer.gateway {
            Caller::Gateway {
                uid: peer.uid,
                gid: peer.gid,
            }
        } else if peer.operator {
            Caller::Operator {
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
        crate::audit::scope::note_caller(&caller);
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
            gateway_uids: vec![991],
        };
        let p = classify(&c, 0, 0, None);
        assert!(p.operator && !p.gateway);
        let p = classify(&c, 1000, 1000, None);
        assert!(p.operator && !p.gateway);
        let p = classify(&c, 1234, 990, None);
        assert!(p.operator && !p.gateway);
        let p = classify(&c, 991, 991, None);
        assert!(!p.operator && p.gateway);
        let p = classify(&c, 4321, 4321, None);
        assert!(!p.operator && !p.gateway);
    }

    #[test]
    fn a_gateway_is_never_an_operator() {
        // Root as the gateway, with root's group among the operators' groups.
        let c = AccessConfig {
            operator_uids: vec![1000],
            operator_gids: vec![0],
            gateway_uids: vec![0],
        };
        let p = classify(&c, 0, 0, None);
        assert!(p.gateway && !p.operator, "{p:?}");
        // Even a configuration that was never validated does not make both of one uid.
        let both = AccessConfig {
            operator_uids: vec![0],
            operator_gids: vec![],
            gateway_uids: vec![0],
        };
        let p = classify(&both, 0, 0, None);
        assert!(p.gateway && !p.operator, "{p:?}");
        // A member of an operator group that is no gateway stays an operator.
        assert!(classify(&c, 1234, 0, None).operator);
    }

    #[test]
    fn a_uid_is_never_both_operator_and_gateway() {
        let access = |operator_uids: Vec<u32>, operator_gids: Vec<u32>, gateway_uids| {
            check_roles(&AccessConfig {
                operator_uids,
                operator_gids,
                gateway_uids,
            })
        };
        let e = access(vec![0], vec![], vec![0]).unwrap_err();
        assert_eq!(e.uids, "0");
        let text = e.to_string();
        assert!(
            text.contains("uid 0 is listed both in operator_uids and in gateway_uids"),
            "{text}"
        );
        assert!(text.contains("run_as"), "the message names the fix: {text}");
        let e = access(vec![1000, 991, 992], vec![], vec![992, 991, 991]).unwrap_err();
        assert_eq!(e.uids, "991, 992");
        assert!(access(vec![1000], vec![], vec![0]).is_ok());
        assert!(access(vec![0], vec![], vec![991]).is_ok());
        assert!(access(vec![], vec![0], vec![0]).is_ok());
        // operator_uids defaults to root.
        assert!(check_roles(&AccessConfig {
            gateway_uids: vec![0],
            ..AccessConfig::default()
        })
        .is_err());
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
