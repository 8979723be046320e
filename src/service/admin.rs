//! `hkms.v1.AdminService`.

use super::{reply, Reply};
use crate::appliance::Appliance;
use crate::error::KmsError;
use crate::hsm::member::TokenSelector;
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;
use cryptoki::types::AuthPin;
use std::sync::Arc;
use tonic::Request;

#[derive(Debug, Clone)]
pub struct AdminApi(pub Arc<Appliance>);

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn init(&self, req: Request<InitRequest>) -> Reply<InitResponse> {
        super::access::operator_only(&req, "Init")?;
        let owner = crate::authn::caller(&req).ok();
        let mut r = req.into_inner();
        let so_pin = if r.source_so_pin.is_empty() {
            None
        } else {
            // AuthPin wipes itself on drop; the request's copy is moved into it.
            Some(AuthPin::from(std::mem::take(&mut r.source_so_pin)))
        };
        let result: Result<_, KmsError> = self.0.init(so_pin).await;
        if result.is_ok() {
            super::access::record_owner(&self.0, owner);
        }
        reply(result.map(|rec| {
            InitResponse {
                instance_id: rec.instance_id,
                domain_key_id: rec.domain_key_id,
                members: self
                    .0
                    .pool
                    .members()
                    .iter()
                    .map(|m| m.name.clone())
                    .collect(),
            }
        }))
    }

    async fn get_status(&self, _req: Request<GetStatusRequest>) -> Reply<GetStatusResponse> {
        super::access::operator_only(&_req, "GetStatus")?;
        let instance = self.0.instance().ok();
        let members = self
            .0
            .pool
            .members()
            .iter()
            .map(|m| {
                let (operations, errors, last_error) = m.stats();
                MemberStatus {
                    name: m.name.clone(),
                    token_label: match &m.selector {
                        TokenSelector::Label(l) => l.clone(),
                        TokenSelector::Serial(s) => format!("serial:{s}"),
                    },
                    state: m.health().as_str().into(),
                    operations,
                    errors,
                    last_error,
                }
            })
            .collect();
        reply(Ok(GetStatusResponse {
            initialized: instance.is_some(),
            instance_id: instance
                .as_ref()
                .map(|i| i.instance_id.clone())
                .unwrap_or_default(),
            domain_key_id: instance.map(|i| i.domain_key_id).unwrap_or_default(),
            members,
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }
}
