//! The KMS instance API front: requests relayed by hkms-gateway
//! (`hkms.v1.ApplicationService`).
//!
//! Each call is authenticated here ([`auth`]), then decoded into one call of the operations
//! layer ([`crate::ops`]), which authorises it against the caller's AAP and runs it; hkmsd's
//! errors become the API's codes in [`errors`]. Every outcome that belongs to the
//! external client is a successful gRPC reply carrying the HTTP status and the protobuf body
//! (the operation's response or the protocol's `Error`); gRPC errors mean the relay itself
//! was refused (not a gateway, malformed source address).
//!
//! Requests that arrive on the gateway's Internet endpoint are refused before
//! authentication while the switch that governs them is off ([`crate::access::endpoint`]:
//! Internet access for cryptographic operations, secret reads over the Internet for
//! GetSecretValue); the endpoint also decides which of the AAP's network rules may admit a
//! request. Keys may be named by alias; aliases resolve before authorisation. The
//! codecs are [`symmetric`], [`asymmetric`] (Sign, Verify, GetPublicKey),
//! [`mac`] (Hmac), [`key_pair`] (the data key pairs) and [`secrets`] (GetSecretValue). A
//! key whose usage does not allow an operation (signing with an ENCRYPT/DECRYPT key...) is
//! refused with 400 `InvalidParameter`.
//!
//! The transfer SDK (classic KMS code moved onto an instance) keeps the key version that
//! Encrypt reports in the `x-kms-migrationkeyversionid` response header inside its own
//! ciphertext, and its Decrypt sends that version in the same request header instead of a
//! KeyId: the version then names both the key (authorised like any other) and the version
//! to decrypt with ([`crate::ops::Ctx::version`]).

mod asymmetric;
pub mod auth;
pub mod errors;
mod key_pair;
mod mac;
mod secrets;
mod symmetric;

use self::auth::Headers;
use self::errors::ApiError;
use crate::access::endpoint;
use crate::access::{clientkey, operations};
use crate::appliance::Appliance;
use crate::authn::Caller;
use crate::crypto::ciphertext;
use crate::error::KmsError;
use crate::instance_api as api;
use crate::ops::Ctx;
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse, HttpHeader};
use prost::Message;
use std::sync::Arc;

/// Operations this build runs for applications: every operation of the instance API. An
/// operation of the API missing here would be answered with `UnsupportedOperation`; names
/// the instance API does not define ([`operations::in_instance_api`]) get `InvalidApiName`.
pub const SUPPORTED: [&str; 16] = [
    "Encrypt",
    "Decrypt",
    "AdvanceEncrypt",
    "AdvanceDecrypt",
    "GenerateDataKey",
    "AdvanceGenerateDataKey",
    "GenerateRandom",
    "Sign",
    "Verify",
    "GetPublicKey",
    "Hmac",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "AdvanceGenerateDataKeyPair",
    "AdvanceGenerateDataKeyPairWithoutPlaintext",
    "GetSecretValue",
];

#[derive(Debug, Clone)]
pub struct ApplicationApi(pub Arc<Appliance>, Arc<auth::PublicKeys>);

impl ApplicationApi {
    pub fn new(app: Arc<Appliance>) -> ApplicationApi {
        ApplicationApi(app, Arc::default())
    }
}

/// Names a key version: sent by hkmsd with every ciphertext it makes for Encrypt-like
/// operations, and by the transfer SDK's Decrypt in place of the KeyId.
pub const MIGRATION_HEADER: &str = "x-kms-migrationkeyversionid";

/// One request being served: who asks, for which operation, with what.
struct Call<'a> {
    app: &'a Appliance,
    caller: &'a Caller,
    api_name: &'a str,
    headers: &'a Headers,
    body: &'a [u8],
    request_id: &'a str,
}

impl<'a> Call<'a> {
    /// The caller, for the operations layer.
    fn ctx(&self) -> Ctx<'a> {
        Ctx::new(self.app, self.caller)
    }

    /// The key version the transfer SDK names (`x-kms-migrationkeyversionid`), if any.
    fn named_version(&self) -> Result<Option<&'a str>, ApiError> {
        Ok(self
            .headers
            .one(MIGRATION_HEADER)?
            .map(str::trim)
            .filter(|v| !v.is_empty()))
    }
}

/// A response body and, for operations that encrypt, the key version used.
type Answer = Result<(Vec<u8>, Option<String>), ApiError>;

fn decode<M: Message + Default>(body: &[u8]) -> Result<M, ApiError> {
    M::decode(body).map_err(|_| errors::malformed_body())
}

/// The KeyId of a request whose operation needs one.
fn required(key_id: &str) -> Result<&str, ApiError> {
    if key_id.is_empty() {
        return Err(errors::key_id_required());
    }
    Ok(key_id)
}

impl ApplicationApi {
    /// Runs one operation of [`SUPPORTED`]; returns the response body and, for operations
    /// that encrypt, the key version used (sent as `x-kms-migrationkeyversionid`).
    async fn dispatch(&self, call: &Call<'_>) -> Answer {
        match call.api_name {
            "Encrypt" => self.encrypt(call).await,
            "Decrypt" | "AdvanceDecrypt" => self.decrypt(call).await,
            "AdvanceEncrypt" => self.advance_encrypt(call).await,
            "GenerateDataKey" => self.generate_data_key(call).await,
            "AdvanceGenerateDataKey" => self.advance_generate_data_key(call).await,
            "GenerateRandom" => self.generate_random(call).await,
            "Sign" => self.sign(call).await,
            "Verify" => self.verify(call).await,
            "GetPublicKey" => self.get_public_key(call).await,
            "Hmac" => self.hmac(call).await,
            "GenerateDataKeyPair"
            | "GenerateDataKeyPairWithoutPlaintext"
            | "AdvanceGenerateDataKeyPair"
            | "AdvanceGenerateDataKeyPairWithoutPlaintext" => self.data_key_pair(call).await,
            "GetSecretValue" => self.get_secret_value(call).await,
            _ => Err(errors::unsupported()),
        }
    }
}

/// The IV inside a self-describing ciphertext's header.
pub(super) fn header_iv(blob: &[u8]) -> Vec<u8> {
    ciphertext::parse(blob)
        .map(|p| p.header.iv().to_vec())
        .unwrap_or_default()
}

impl ApplicationApi {
    /// Authenticates, authorises and runs one relayed request. Every outcome that belongs
    /// to the external client is an answer (HTTP status and protobuf body); an error means
    /// the relay message itself was malformed (unknown endpoint, bad source address).
    pub async fn serve(
        &self,
        r: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, KmsError> {
        let (endpoint, source) = crate::front::relayed::origin(&r)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let headers = Headers::new(r.headers.iter().map(|h| (h.name.as_str(), h.value.clone())));
        let now = crate::clock::now_unix();
        let store = self.0.store.clone();
        let lookup = move |id: &str| {
            clientkey::find(&*store, id).map_err(|e| {
                tracing::error!("ClientKey lookup failed: {e}");
                ApiError::internal()
            })
        };
        // The operation named before authentication: the verified request names the same
        // one (the same header, signed, read the same way), checked again below.
        let named = headers
            .one("x-kms-apiname")
            .ok()
            .flatten()
            .map(str::trim)
            .unwrap_or("")
            .to_owned();
        let verified = match endpoint::closed_to(&*self.0.store, endpoint, &named) {
            Some(why) => Err(errors::internet_access_disabled(why)),
            None => auth::verify(&r.method, &headers, &r.body, now, &lookup, &self.1),
        };
        let mut version_header = None;
        let authenticated = Some(verified.is_ok());
        let outcome = match verified {
            Err(e) => {
                tracing::info!(source = %source, code = e.code, "application request refused: {}", e.message);
                Err(e)
            }
            Ok(v) => {
                auth::warn_if_expiring(&v.client_key, now);
                let caller = Caller::Application {
                    aap: v.client_key.aap_name.clone(),
                    credential: v.client_key.client_key_id.clone(),
                    source,
                    endpoint,
                };
                if v.api_name != named {
                    Err(errors::api_name_mismatch())
                } else if !operations::in_instance_api(&v.api_name) {
                    Err(errors::invalid_api_name(&v.api_name))
                } else if !SUPPORTED.contains(&v.api_name.as_str()) {
                    Err(errors::unsupported())
                } else {
                    let call = Call {
                        app: &self.0,
                        caller: &caller,
                        api_name: &v.api_name,
                        headers: &headers,
                        body: &r.body,
                        request_id: &request_id,
                    };
                    let result = self.dispatch(&call).await.map(|(body, version)| {
                        version_header = version;
                        body
                    });
                    match &result {
                        Ok(_) => {
                            tracing::debug!(caller = %caller, api = %v.api_name, "application request served")
                        }
                        Err(e) => {
                            tracing::info!(caller = %caller, api = %v.api_name, code = e.code, "application request refused: {}", e.message)
                        }
                    }
                    result
                }
            }
        };
        Ok(answer(outcome, request_id, version_header, authenticated))
    }
}

/// The wire answer of an instance API request: the operation's body, or the API's Error
/// message with its HTTP status.
pub fn answer(
    outcome: Result<Vec<u8>, ApiError>,
    request_id: String,
    version_header: Option<String>,
    authenticated: Option<bool>,
) -> ApplicationCallResponse {
    let mut headers = vec![
        HttpHeader {
            name: "x-kms-requestid".into(),
            value: request_id.clone(),
        },
        HttpHeader {
            name: "content-type".into(),
            value: "application/x-protobuf".into(),
        },
    ];
    if let Some(v) = version_header {
        headers.push(HttpHeader {
            name: MIGRATION_HEADER.into(),
            value: v,
        });
    }
    match outcome {
        Ok(body) => ApplicationCallResponse {
            http_status: 200,
            headers,
            body,
            request_id,
            error_code: String::new(),
            authenticated,
        },
        Err(e) => ApplicationCallResponse {
            http_status: e.http_status.into(),
            headers,
            body: api::Error {
                status_code: e.http_status.into(),
                error_code: e.code.into(),
                error_message: e.message.clone(),
                request_id: request_id.clone(),
            }
            .encode_to_vec(),
            request_id,
            error_code: e.code.into(),
            authenticated,
        },
    }
}
