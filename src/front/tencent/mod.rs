//! Tencent Cloud KMS API 3.0 (`2019-01-18`) and SSM (`2019-09-23`), as the unchanged
//! `tencentcloud-sdk-python-kms` / `-ssm` SDKs and `tccli` speak them.
//!
//! A request is `POST /` with a JSON body, the operation in `X-TC-Action`, the API version in
//! `X-TC-Version`, and a TC3-HMAC-SHA256 signature made with one of an AAP's API keys
//! ([`auth`]). The version picks the service (KMS or SSM), which must be the service the
//! signature's credential scope names. Once authenticated, the request is one call of the
//! operations layer ([`kms`], [`ssm`]: the codecs), authorised against the AAP like a
//! ClientKey's requests. Every answer, errors included ([`errors`]), is HTTP 200 with
//! `Content-Type: application/json` and `{"Response": {..., "RequestId"}}`.

pub mod auth;
pub mod errors;
pub mod headers;
pub mod json;
pub mod kms;
pub mod service;
pub mod ssm;

use crate::access::endpoint;
use crate::appliance::Appliance;
use crate::authn::Caller;
use crate::error::KmsError;
use crate::ops::Ctx;
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse, HttpHeader};
use errors::TcError;
use headers::Headers;
use serde_json::{Map, Value};
use std::sync::Arc;

pub use json::Fields;
pub use service::Service;

/// The Tencent front.
#[derive(Debug, Clone)]
pub struct TencentApi {
    app: Arc<Appliance>,
    keys: Arc<auth::SigningKeys>,
}

impl TencentApi {
    pub fn new(app: Arc<Appliance>) -> TencentApi {
        TencentApi {
            app,
            keys: Arc::default(),
        }
    }

    /// Authenticates, authorises and runs one relayed request; every outcome that belongs
    /// to the client is an answer. An error means the relay message itself was malformed.
    pub async fn serve(
        &self,
        r: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, KmsError> {
        let (endpoint, source) = crate::front::relayed::origin(&r)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let headers = Headers::new(&r.headers);
        let action = headers.get("x-tc-action").unwrap_or("").to_owned();
        let mut authenticated = false;
        let outcome = async {
            let service = self.request_service(&r, &headers)?;
            if let Some(why) = endpoint::closed_to(&*self.app.store, endpoint, &action) {
                return Err(TcError::new(errors::UNAUTHORIZED, why));
            }
            let now = crate::clock::now_unix();
            let key = auth::verify(&self.app, &self.keys, &r.method, &headers, &r.body, service, now)
                .await?;
            authenticated = true;
            let caller = Caller::Application {
                aap: key.aap_name,
                credential: key.secret_id,
                source,
                endpoint,
            };
            let body: Value = serde_json::from_slice(&r.body).map_err(|e| {
                TcError::new("InvalidParameter", format!("the request body is not a JSON object: {e}"))
            })?;
            let Value::Object(body) = body else {
                return Err(TcError::new("InvalidParameter", "the request body is not a JSON object"));
            };
            let ctx = Ctx::new(&self.app, &caller);
            let result = match service {
                Service::Kms => kms::run(ctx, &action, body).await,
                Service::Ssm => ssm::run(ctx, &action, body).await,
            };
            match &result {
                Ok(_) => tracing::debug!(caller = %caller, action = %action, "Tencent API request served"),
                Err(e) => tracing::info!(caller = %caller, action = %action, code = e.code, "Tencent API request refused: {}", e.message),
            }
            result
        }
        .await;
        if let (Err(e), false) = (&outcome, authenticated) {
            tracing::info!(source = %source, action = %action, code = e.code, "Tencent API request refused: {}", e.message);
        }
        Ok(answer(outcome, request_id, Some(authenticated)))
    }

    /// The service the request's `X-TC-Version` names; checks the request's shape first.
    fn request_service(
        &self,
        r: &ApplicationCallRequest,
        headers: &Headers<'_>,
    ) -> Result<Service, TcError> {
        if r.method != "POST" {
            return Err(TcError::new(
                "UnsupportedProtocol",
                "only POST requests with a JSON body are served",
            ));
        }
        for name in ["x-tc-action", "x-tc-version", "content-type"] {
            if headers.count(name) > 1 {
                return Err(TcError::new(
                    "InvalidParameter",
                    format!("the header {name} is sent more than once"),
                ));
            }
        }
        let content_type = headers.get("content-type").unwrap_or("");
        if !content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        {
            return Err(TcError::new(
                "InvalidParameter",
                "Content-Type must be application/json",
            ));
        }
        let version = headers.get("x-tc-version").unwrap_or("");
        Service::of_version(version).ok_or_else(|| {
            TcError::new(
                "NoSuchVersion",
                format!("X-TC-Version {version:?} is not served; use 2019-01-18 (KMS) or 2019-09-23 (SSM)"),
            )
        })
    }
}

/// `{"Response": {...fields, "RequestId"}}`, or `{"Response": {"Error": {...}, "RequestId"}}`.
/// The wire answer of a Tencent API request (HTTP 200 whatever the outcome, as the API
/// does).
pub fn answer(
    outcome: Result<Fields, TcError>,
    request_id: String,
    authenticated: Option<bool>,
) -> ApplicationCallResponse {
    let error_code = outcome
        .as_ref()
        .err()
        .map(|e| e.code.to_owned())
        .unwrap_or_default();
    ApplicationCallResponse {
        http_status: 200,
        headers: vec![
            HttpHeader {
                name: "content-type".into(),
                value: "application/json".into(),
            },
            HttpHeader {
                name: "x-tc-requestid".into(),
                value: request_id.clone(),
            },
        ],
        body: response_body(outcome, &request_id),
        request_id,
        error_code,
        authenticated,
    }
}

pub fn response_body(outcome: Result<Fields, TcError>, request_id: &str) -> Vec<u8> {
    let mut response = match outcome {
        Ok(fields) => fields,
        Err(e) => {
            let mut m = Map::new();
            m.insert(
                "Error".into(),
                serde_json::json!({"Code": e.code, "Message": e.message}),
            );
            m
        }
    };
    response.insert("RequestId".into(), Value::String(request_id.to_owned()));
    serde_json::to_vec(&serde_json::json!({ "Response": response })).unwrap_or_default()
}
