//! `hkms.v1.AdminService`.

use super::{reply, Reply};
use crate::appliance::Appliance;
use crate::config::MemberConfig;
use crate::error::KmsError;
use crate::hsm::member::TokenSelector;
use crate::hsm::Member;
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;
use cryptoki::types::AuthPin;
use std::sync::Arc;
use tonic::Request;

#[derive(Debug, Clone)]
pub struct AdminApi(pub Arc<Appliance>);

/// Status of one member as the API reports it.
fn status(m: &Member) -> MemberStatus {
    let s = m.snapshot();
    let (key_specs, algorithms) = m.capabilities();
    MemberStatus {
        name: m.name.clone(),
        token_label: match &m.selector {
            TokenSelector::Label(l) => l.clone(),
            TokenSelector::Serial(s) => format!("serial:{s}"),
        },
        state: s.state.into(),
        operations: s.operations,
        errors: s.errors,
        last_error: s.last_error,
        sessions_in_use: s.sessions_in_use as u32,
        max_sessions: s.max_sessions as u32,
        mean_latency_micros: s.mean_latency_micros,
        cached_keys: s.cached_keys as u32,
        module: m.config().module.display().to_string(),
        unwrap_template: s.unwrap_template.as_str().into(),
        calls: if m.inline_calls() {
            "Inline"
        } else {
            "Threads"
        }
        .into(),
        key_specs: key_specs.into_iter().map(String::from).collect(),
        algorithms: algorithms.into_iter().map(String::from).collect(),
        profile: m.profile_name().to_owned(),
        profile_findings: m.profile_findings(),
    }
}

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
        let members = self.0.pool.members().iter().map(|m| status(m)).collect();
        reply(Ok(GetStatusResponse {
            initialized: instance.is_some(),
            instance_id: instance
                .as_ref()
                .map(|i| i.instance_id.clone())
                .unwrap_or_default(),
            domain_key_id: instance.map(|i| i.domain_key_id).unwrap_or_default(),
            members,
            version: env!("CARGO_PKG_VERSION").into(),
            key_deletion_blocked: crate::keys::deletion::blocked(&self.0).unwrap_or(false),
        }))
    }

    async fn add_member(&self, req: Request<AddMemberRequest>) -> Reply<AddMemberResponse> {
        super::access::operator_only(&req, "AddMember")?;
        let mut r = req.into_inner();
        let so_pin = AuthPin::from(std::mem::take(&mut r.source_so_pin));
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        let cfg = MemberConfig {
            name: r.name,
            module: r.module.into(),
            token_label: non_empty(r.token_label),
            token_serial: non_empty(r.token_serial),
            pin_file: r.pin_file.into(),
            profile: non_empty(r.profile).unwrap_or_else(|| "softhsm2".into()),
            max_sessions: if r.max_sessions == 0 {
                8
            } else {
                r.max_sessions as usize
            },
            inline_calls: None,
        };
        let source = non_empty(r.source_member);
        reply(
            self.0
                .add_member(cfg, source, so_pin)
                .await
                .map(|(m, source_member)| AddMemberResponse {
                    member: Some(status(&m)),
                    source_member,
                }),
        )
    }

    async fn drain_member(&self, req: Request<DrainMemberRequest>) -> Reply<DrainMemberResponse> {
        super::access::operator_only(&req, "DrainMember")?;
        let r = req.into_inner();
        reply(
            self.0
                .drain_member(&r.name, !r.resume)
                .map(|m| DrainMemberResponse {
                    member: Some(status(&m)),
                }),
        )
    }

    async fn remove_member(
        &self,
        req: Request<RemoveMemberRequest>,
    ) -> Reply<RemoveMemberResponse> {
        super::access::operator_only(&req, "RemoveMember")?;
        reply(
            self.0
                .remove_member(&req.into_inner().name)
                .map(|()| RemoveMemberResponse {}),
        )
    }

    async fn set_key_deletion_blocked(
        &self,
        req: Request<SetKeyDeletionBlockedRequest>,
    ) -> Reply<SetKeyDeletionBlockedResponse> {
        reply((|| {
            let caller = crate::authn::caller(&req)?;
            let blocked = req.get_ref().blocked;
            if blocked {
                crate::access::require_operator(&caller, "SetKeyDeletionBlocked")?;
            } else {
                // Lifting the instance-wide protection is the owner's decision alone.
                crate::access::endpoint::require_owner(
                    &*self.0.store,
                    &caller,
                    "SetKeyDeletionBlocked",
                    "allow key deletion again",
                )?;
            }
            crate::keys::deletion::set_blocked(&self.0, blocked)
                .map(|blocked| SetKeyDeletionBlockedResponse { blocked })
        })())
    }

    async fn list_scheduled_jobs(
        &self,
        req: Request<ListScheduledJobsRequest>,
    ) -> Reply<ListScheduledJobsResponse> {
        super::resource::operator_call(req, "ListScheduledJobs", |_| {
            Ok(ListScheduledJobsResponse {
                jobs: crate::jobs::scheduled(&self.0)?
                    .iter()
                    .map(crate::jobs::Job::to_api)
                    .collect(),
                now: crate::clock::now_rfc3339(),
            })
        })
    }

    async fn run_due_jobs(&self, req: Request<RunDueJobsRequest>) -> Reply<RunDueJobsResponse> {
        super::resource::operator_call_async(req, "RunDueJobs", |_| async move {
            let outcomes = crate::jobs::run_due(&self.0).await?;
            Ok(RunDueJobsResponse { outcomes })
        })
        .await
    }
}
