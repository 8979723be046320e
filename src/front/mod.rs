//! Fronts: one per external API that applications speak through hkms-gateway.
//!
//! A front has three parts, each in its own module of the front's folder:
//! - an **authenticator** (`auth`) that verifies the caller's signature over the request
//!   exactly as the gateway received it, and names the caller ([`Caller::Application`]);
//! - a **codec** that turns the wire request into one call of the operations layer
//!   ([`crate::ops`]) and the result back into the wire response;
//! - an **error table** (`errors`) from hkmsd's stable codes ([`crate::error::ErrorCode`])
//!   to the API's own codes and HTTP statuses.
//!
//! Fronts never reach the store, the HSM pool or the cryptography themselves: everything
//! past authentication goes through [`crate::ops`], as the gRPC services do.
//!
//! - [`instance`]: the KMS instance API (`x-kms-apiname`, protobuf bodies, requests signed
//!   with a ClientKey's RSA key);
//! - [`tencent`]: Tencent Cloud KMS API 3.0 and SSM (`X-TC-Action`, JSON bodies, requests
//!   signed with an API key's SecretKey, TC3-HMAC-SHA256).
//!
//! Both are served on the gateway's one HTTPS port: [`Api::of`] tells them apart by their
//! headers, the same way in the gateway (for its own refusals, in the API's envelope) and in
//! hkmsd (to pick the front).
//!
//! [`Caller::Application`]: crate::authn::Caller::Application

pub mod instance;
pub mod relayed;
pub mod tencent;

use crate::appliance::Appliance;
use crate::audit::{self, scope::Scope};
use crate::authn::Caller;
use crate::error::KmsError;
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse};
use std::sync::Arc;

/// The external API a relayed request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The KMS instance API.
    Instance,
    /// Tencent Cloud API 3.0 (KMS `2019-01-18`, SSM `2019-09-23`).
    Tencent,
}

/// The header every Tencent Cloud API 3.0 request carries, and no instance API request.
pub const TENCENT_ACTION_HEADER: &str = "x-tc-action";

impl Api {
    /// The API of a request with these headers (`header(name)` finds a header by its
    /// lowercase name): Tencent's when it names an `X-TC-Action`, the instance API's
    /// otherwise.
    pub fn of<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Api {
        if header(TENCENT_ACTION_HEADER).is_some() {
            Api::Tencent
        } else {
            Api::Instance
        }
    }

    /// The operation a request names before it is authenticated (for caps and logs).
    pub fn operation_header(self) -> &'static str {
        match self {
            Api::Instance => "x-kms-apiname",
            Api::Tencent => TENCENT_ACTION_HEADER,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Api::Instance => "instance",
            Api::Tencent => "tencent",
        }
    }
}

/// Every front hkmsd serves relayed requests with.
#[derive(Debug, Clone)]
pub struct Fronts {
    app: Arc<Appliance>,
    instance: instance::ApplicationApi,
    tencent: tencent::TencentApi,
}

impl Fronts {
    pub fn new(app: Arc<Appliance>) -> Fronts {
        Fronts {
            instance: instance::ApplicationApi::new(app.clone()),
            tencent: tencent::TencentApi::new(app.clone()),
            app,
        }
    }

    pub fn appliance(&self) -> &Arc<Appliance> {
        &self.app
    }

    /// Serves one relayed request with the front of its API, and records it in the audit
    /// trail before answering (`gateway`: the peer that relayed it). An error means the relay
    /// message itself was malformed (unknown endpoint, bad source address); every outcome
    /// that belongs to the external client is an answer, a trail that cannot be written
    /// included (`AuditUnavailable` in the API's own envelope).
    pub async fn serve(
        &self,
        r: ApplicationCallRequest,
        gateway: Option<&Caller>,
    ) -> Result<ApplicationCallResponse, KmsError> {
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str())
        };
        let api = Api::of(header);
        if !self.app.audit.enabled() {
            // Nothing to record: the request is only counted in hkmsd's metrics.
            let started = std::time::Instant::now();
            let operation = header(api.operation_header()).unwrap_or("").to_owned();
            let answer = self.dispatch(api, r).await;
            let result = match &answer {
                Ok(a) => result_of(a),
                Err(e) => e.code.as_str(),
            };
            crate::metrics::observe_request(api.as_str(), &operation, result, started.elapsed());
            return answer;
        }
        let scope = Scope::new(api.as_str(), header(api.operation_header()).unwrap_or(""));
        scope.with(|record| {
            if let Ok((endpoint, source)) = relayed::origin(&r) {
                record.source = Some(source.to_string());
                record.endpoint = Some(endpoint.as_str().to_owned());
            }
        });
        if let Some(g) = gateway {
            scope.run_sync(|| audit::scope::note_relayed_by(g));
        }
        match scope.run(self.dispatch(api, r)).await {
            Ok(answer) => {
                let result = result_of(&answer);
                match audit::scope::finish(&self.app, &scope, &answer.request_id, result).await {
                    Ok(()) => Ok(answer),
                    Err(e) => Ok(refusal(api, answer.request_id, answer.authenticated, e)),
                }
            }
            Err(e) => {
                let request_id = uuid::Uuid::new_v4().to_string();
                audit::scope::finish(&self.app, &scope, &request_id, e.code.as_str()).await?;
                Err(e)
            }
        }
    }

    async fn dispatch(
        &self,
        api: Api,
        r: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, KmsError> {
        match api {
            Api::Instance => self.instance.serve(r).await,
            Api::Tencent => self.tencent.serve(r).await,
        }
    }
}

/// The answer, in `api`'s envelope, to a request whose own answer is withheld.
fn refusal(
    api: Api,
    request_id: String,
    authenticated: Option<bool>,
    e: KmsError,
) -> ApplicationCallResponse {
    tracing::error!("application request refused: {e}");
    match api {
        Api::Instance => instance::answer(Err(e.into()), request_id, None, authenticated),
        Api::Tencent => tencent::answer(Err(e.into()), request_id, authenticated),
    }
}

/// `OK`, or the error code the external client was answered with.
fn result_of(answer: &ApplicationCallResponse) -> &str {
    match answer.error_code.as_str() {
        "" => "OK",
        code => code,
    }
}
