//! `hkms.v1.AccessService`: network rules, policies, AAPs, ClientKeys. Operators only.
//!
//! Each handler is one `operator_call` (see `super::resource`): the operation name, a call of
//! the generic record functions of [`crate::access::manage`], and the reply message.

use super::resource::{operator, operator_call, operator_call_async};
use super::{reply, Reply};
use crate::access::{apikey, clientkey, manage, network, rotation};
use crate::appliance::Appliance;
use crate::authn::caller;
use crate::proto::access_service_server::AccessService;
use crate::proto::*;
use std::sync::Arc;
use tonic::Request;

#[derive(Debug, Clone)]
pub struct AccessApi(pub Arc<Appliance>);

/// Public summary of a ClientKey at `now`.
pub fn summary(k: &ClientKey, now: i64) -> ClientKeySummary {
    let (days_left, state) = clientkey::standing(k.not_before, k.not_after, k.retire_unix, now);
    ClientKeySummary {
        client_key_id: k.client_key_id.clone(),
        aap_name: k.aap_name.clone(),
        not_before: k.not_before,
        not_after: k.not_after,
        create_time: k.create_time.clone(),
        days_left,
        state: state.into(),
        certificate_sha256: k.certificate_sha256.clone(),
        retire_unix: k.retire_unix,
    }
}

impl AccessApi {
    fn store(&self) -> &dyn crate::store::AccessStore {
        &*self.0.store
    }

    fn store_all(&self) -> &dyn crate::store::Store {
        &*self.0.store
    }
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn create_network_rule(
        &self,
        req: Request<CreateNetworkRuleRequest>,
    ) -> Reply<CreateNetworkRuleResponse> {
        operator_call(req, "CreateNetworkRule", |r| {
            let rule = manage::create(self.store(), r.rule.unwrap_or_default())?;
            Ok(CreateNetworkRuleResponse { rule: Some(rule) })
        })
    }

    async fn describe_network_rule(
        &self,
        req: Request<DescribeNetworkRuleRequest>,
    ) -> Reply<DescribeNetworkRuleResponse> {
        operator_call(req, "DescribeNetworkRule", |r| {
            let rule = manage::get(self.store(), &r.name)?;
            Ok(DescribeNetworkRuleResponse { rule: Some(rule) })
        })
    }

    async fn list_network_rules(
        &self,
        req: Request<ListNetworkRulesRequest>,
    ) -> Reply<ListNetworkRulesResponse> {
        operator_call(req, "ListNetworkRules", |_| {
            let rules = manage::list(self.store())?;
            Ok(ListNetworkRulesResponse { rules })
        })
    }

    async fn update_network_rule(
        &self,
        req: Request<UpdateNetworkRuleRequest>,
    ) -> Reply<UpdateNetworkRuleResponse> {
        operator_call(req, "UpdateNetworkRule", |r| {
            let rule = manage::update(self.store(), &r.name, |rule: &mut NetworkRule| {
                if !r.source_private_ips.is_empty() {
                    rule.source_private_ips = network::trimmed(&r.source_private_ips);
                }
                if let Some(d) = r.description {
                    rule.description = d;
                }
            })?;
            Ok(UpdateNetworkRuleResponse { rule: Some(rule) })
        })
    }

    async fn delete_network_rule(
        &self,
        req: Request<DeleteNetworkRuleRequest>,
    ) -> Reply<DeleteNetworkRuleResponse> {
        operator_call(req, "DeleteNetworkRule", |r| {
            manage::delete::<NetworkRule>(self.store(), &r.name)?;
            Ok(DeleteNetworkRuleResponse {})
        })
    }

    async fn create_policy(
        &self,
        req: Request<CreatePolicyRequest>,
    ) -> Reply<CreatePolicyResponse> {
        operator_call(req, "CreatePolicy", |r| {
            let policy = manage::create(self.store(), r.policy.unwrap_or_default())?;
            Ok(CreatePolicyResponse {
                policy: Some(policy),
            })
        })
    }

    async fn describe_policy(
        &self,
        req: Request<DescribePolicyRequest>,
    ) -> Reply<DescribePolicyResponse> {
        operator_call(req, "DescribePolicy", |r| {
            let policy = manage::get(self.store(), &r.name)?;
            Ok(DescribePolicyResponse {
                policy: Some(policy),
            })
        })
    }

    async fn list_policies(
        &self,
        req: Request<ListPoliciesRequest>,
    ) -> Reply<ListPoliciesResponse> {
        operator_call(req, "ListPolicies", |_| {
            let policies = manage::list(self.store())?;
            Ok(ListPoliciesResponse { policies })
        })
    }

    async fn update_policy(
        &self,
        req: Request<UpdatePolicyRequest>,
    ) -> Reply<UpdatePolicyResponse> {
        operator_call(req, "UpdatePolicy", |r| {
            let policy = manage::update(self.store(), &r.name, |p: &mut Policy| {
                if !r.resources.is_empty() {
                    p.resources = r.resources;
                }
                if r.clear_network_rules {
                    p.network_rules.clear();
                } else if !r.network_rules.is_empty() {
                    p.network_rules = r.network_rules;
                }
                if let Some(d) = r.description {
                    p.description = d;
                }
                if !r.rbac_role.is_empty() {
                    p.rbac_role = r.rbac_role;
                }
            })?;
            Ok(UpdatePolicyResponse {
                policy: Some(policy),
            })
        })
    }

    async fn delete_policy(
        &self,
        req: Request<DeletePolicyRequest>,
    ) -> Reply<DeletePolicyResponse> {
        operator_call(req, "DeletePolicy", |r| {
            manage::delete::<Policy>(self.store(), &r.name)?;
            Ok(DeletePolicyResponse {})
        })
    }

    async fn create_application_access_point(
        &self,
        req: Request<CreateApplicationAccessPointRequest>,
    ) -> Reply<CreateApplicationAccessPointResponse> {
        operator_call(req, "CreateApplicationAccessPoint", |r| {
            let aap = manage::create(self.store(), r.aap.unwrap_or_default())?;
            Ok(CreateApplicationAccessPointResponse { aap: Some(aap) })
        })
    }

    async fn describe_application_access_point(
        &self,
        req: Request<DescribeApplicationAccessPointRequest>,
    ) -> Reply<DescribeApplicationAccessPointResponse> {
        operator_call(req, "DescribeApplicationAccessPoint", |r| {
            let aap: ApplicationAccessPoint = manage::get(self.store(), &r.name)?;
            let now = crate::clock::now_unix();
            let client_keys = manage::client_keys(self.store(), &r.name)?
                .iter()
                .map(|k| summary(k, now))
                .collect();
            Ok(DescribeApplicationAccessPointResponse {
                aap: Some(aap),
                client_keys,
            })
        })
    }

    async fn list_application_access_points(
        &self,
        req: Request<ListApplicationAccessPointsRequest>,
    ) -> Reply<ListApplicationAccessPointsResponse> {
        operator_call(req, "ListApplicationAccessPoints", |_| {
            let keys: Vec<ClientKey> = manage::list(self.store())?;
            let now = crate::clock::now_unix();
            let aaps = manage::list::<ApplicationAccessPoint>(self.store())?
                .into_iter()
                .map(|aap| {
                    let mine: Vec<&ClientKey> =
                        keys.iter().filter(|k| k.aap_name == aap.name).collect();
                    let days_left = mine
                        .iter()
                        .map(|k| {
                            clientkey::standing(k.not_before, k.not_after, k.retire_unix, now).0
                        })
                        .max()
                        .unwrap_or(-1);
                    ApplicationAccessPointSummary {
                        client_key_count: mine.len() as u32,
                        days_left,
                        aap: Some(aap),
                    }
                })
                .collect();
            Ok(ListApplicationAccessPointsResponse { aaps })
        })
    }

    async fn update_application_access_point(
        &self,
        req: Request<UpdateApplicationAccessPointRequest>,
    ) -> Reply<UpdateApplicationAccessPointResponse> {
        operator_call(req, "UpdateApplicationAccessPoint", |r| {
            let aap = manage::update(self.store(), &r.name, |a: &mut ApplicationAccessPoint| {
                if !r.policies.is_empty() {
                    a.policies = r.policies;
                }
                if let Some(d) = r.description {
                    a.description = d;
                }
                if let Some(p) = r.managed_product {
                    a.managed_product = p;
                }
            })?;
            Ok(UpdateApplicationAccessPointResponse { aap: Some(aap) })
        })
    }

    async fn delete_application_access_point(
        &self,
        req: Request<DeleteApplicationAccessPointRequest>,
    ) -> Reply<DeleteApplicationAccessPointResponse> {
        operator_call(req, "DeleteApplicationAccessPoint", |r| {
            manage::delete::<ApplicationAccessPoint>(self.store(), &r.name)?;
            Ok(DeleteApplicationAccessPointResponse {})
        })
    }

    async fn create_client_key(
        &self,
        req: Request<CreateClientKeyRequest>,
    ) -> Reply<CreateClientKeyResponse> {
        operator_call(req, "CreateClientKey", |r| {
            let k = manage::create_client_key(self.store(), &r.aap_name, r.certificate)?;
            Ok(CreateClientKeyResponse {
                client_key: Some(summary(&k, crate::clock::now_unix())),
            })
        })
    }

    async fn retire_client_keys(
        &self,
        req: Request<RetireClientKeysRequest>,
    ) -> Reply<RetireClientKeysResponse> {
        operator_call(req, "RetireClientKeys", |r| {
            let now = crate::clock::now_unix();
            let (retire_unix, keys) = rotation::retire_client_keys(
                self.store(),
                &r.aap_name,
                &r.keep_client_key_id,
                r.overlap_days,
                now,
            )?;
            Ok(RetireClientKeysResponse {
                retire_unix,
                client_keys: keys.iter().map(|k| summary(k, now)).collect(),
            })
        })
    }

    async fn list_client_keys(
        &self,
        req: Request<ListClientKeysRequest>,
    ) -> Reply<ListClientKeysResponse> {
        operator_call(req, "ListClientKeys", |r| {
            let aap = &r.aap_name;
            if !aap.is_empty() {
                manage::get::<ApplicationAccessPoint>(self.store(), aap)?;
            }
            let now = crate::clock::now_unix();
            let client_keys: Vec<ClientKeySummary> = manage::client_keys(self.store(), aap)?
                .iter()
                .map(|k| summary(k, now))
                .collect();
            for k in &client_keys {
                if k.state == "ExpiringSoon" || k.state == "Expired" {
                    tracing::warn!(client_key = %k.client_key_id, aap = %k.aap_name, days_left = k.days_left, state = %k.state, "ClientKey needs changing");
                }
            }
            Ok(ListClientKeysResponse { client_keys })
        })
    }

    async fn delete_client_key(
        &self,
        req: Request<DeleteClientKeyRequest>,
    ) -> Reply<DeleteClientKeyResponse> {
        operator_call(req, "DeleteClientKey", |r| {
            manage::delete::<ClientKey>(self.store(), &r.client_key_id)?;
            Ok(DeleteClientKeyResponse {})
        })
    }

    async fn create_api_key(
        &self,
        req: Request<CreateApiKeyRequest>,
    ) -> Reply<CreateApiKeyResponse> {
        operator_call_async(req, "CreateApiKey", |r| async move {
            let (k, secret_key) =
                apikey::create(&self.0, &r.aap_name, r.validity_days, &r.description).await?;
            Ok(CreateApiKeyResponse {
                api_key: Some(apikey::summary(&k, crate::clock::now_unix())),
                // The response buffer goes to the transport; the copy held here is wiped.
                secret_key: secret_key.as_str().to_owned(),
            })
        })
        .await
    }

    async fn list_api_keys(&self, req: Request<ListApiKeysRequest>) -> Reply<ListApiKeysResponse> {
        operator_call(req, "ListApiKeys", |r| {
            if !r.aap_name.is_empty() {
                manage::get::<ApplicationAccessPoint>(self.store(), &r.aap_name)?;
            }
            let now = crate::clock::now_unix();
            let api_keys = apikey::list(self.store(), &r.aap_name)?
                .iter()
                .map(|k| apikey::summary(k, now))
                .collect();
            Ok(ListApiKeysResponse { api_keys })
        })
    }

    async fn delete_api_key(
        &self,
        req: Request<DeleteApiKeyRequest>,
    ) -> Reply<DeleteApiKeyResponse> {
        operator_call(req, "DeleteApiKey", |r| {
            apikey::delete(self.store(), &r.secret_id)?;
            Ok(DeleteApiKeyResponse {})
        })
    }

    async fn get_instance_owner(
        &self,
        req: Request<GetInstanceOwnerRequest>,
    ) -> Reply<GetInstanceOwnerResponse> {
        operator_call(req, "GetInstanceOwner", |_| {
            Ok(GetInstanceOwnerResponse {
                owner: self.0.store.instance_owner()?,
            })
        })
    }

    async fn set_internet_access(
        &self,
        req: Request<SetInternetAccessRequest>,
    ) -> Reply<SetInternetAccessResponse> {
        reply((|| {
            let c = caller(&req)?;
            let enabled = req.get_ref().enabled;
            crate::access::endpoint::set_internet(self.store_all(), &c, enabled)
                .map(|enabled| SetInternetAccessResponse { enabled })
        })())
    }

    async fn get_internet_access(
        &self,
        req: Request<GetInternetAccessRequest>,
    ) -> Reply<GetInternetAccessResponse> {
        operator_call(req, "GetInternetAccess", |_| {
            crate::access::endpoint::internet_enabled(&*self.0.store)
                .map(|enabled| GetInternetAccessResponse { enabled })
        })
    }

    async fn set_internet_secret_access(
        &self,
        req: Request<SetInternetSecretAccessRequest>,
    ) -> Reply<SetInternetSecretAccessResponse> {
        reply((|| {
            let c = caller(&req)?;
            let enabled = req.get_ref().enabled;
            crate::access::endpoint::set_internet_secret_reads(self.store_all(), &c, enabled)
                .map(|enabled| SetInternetSecretAccessResponse { enabled })
        })())
    }

    async fn get_internet_secret_access(
        &self,
        req: Request<GetInternetSecretAccessRequest>,
    ) -> Reply<GetInternetSecretAccessResponse> {
        operator_call(req, "GetInternetSecretAccess", |_| {
            crate::access::endpoint::internet_secret_reads(&*self.0.store)
                .map(|enabled| GetInternetSecretAccessResponse { enabled })
        })
    }
}

/// Refuses everyone but operators (for administrative handlers).
pub(super) fn operator_only<T>(req: &Request<T>, operation: &str) -> Result<(), tonic::Status> {
    operator(req, operation).map_err(|e| {
        tracing::info!(
            code = e.code.as_str(),
            operation,
            "request refused: {}",
            e.message
        );
        e.into()
    })
}

/// Records the operator who initialised the instance as its owner.
pub(super) fn record_owner(app: &Appliance, caller: Option<crate::authn::Caller>) {
    if let Some(crate::authn::Caller::Operator { uid, gid }) = caller {
        let owner = InstanceOwner {
            uid,
            gid,
            recorded: crate::appliance::now_rfc3339(),
        };
        match app.store.record_instance_owner(&owner) {
            Ok(()) => tracing::info!(uid, gid, "instance owner recorded"),
            Err(e) => tracing::error!("cannot record the instance owner: {e}"),
        }
    }
}
