//! `hkms.v1.ApplicationService`: KMS instance API requests relayed by hkms-gateway.
//!
//! Each call is authenticated here ([`crate::front::instance::auth`]), authorised against the
//! caller's AAP ([`crate::access::authorize`]), then run. Every outcome that belongs to the
//! external client is a successful gRPC reply carrying the HTTP status and the protobuf body
//! (the operation's response or the protocol's `Error`); gRPC errors mean the relay itself
//! was refused (not a gateway, malformed source address).
//!
//! Requests that arrive on the gateway's Internet endpoint are refused before
//! authentication while the switch that governs them is off ([`crate::access::endpoint`]:
//! Internet access for cryptographic operations, secret reads over the Internet for
//! GetSecretValue); the endpoint also decides which of the AAP's network rules may admit a
//! request. Keys may be named by alias; aliases resolve before authorisation. The
//! operations themselves are in [`symmetric`], [`asymmetric`] (Sign, Verify, GetPublicKey),
//! [`mac`] (Hmac), [`key_pair`] (the data key pairs) and [`secrets`] (GetSecretValue). A
//! key whose usage does not allow an operation (signing with an ENCRYPT/DECRYPT key...) is
//! refused with 400 `InvalidParameter`.
//!
//! The transfer SDK (classic KMS code moved onto an instance) keeps the key version that
//! Encrypt reports in the `x-kms-migrationkeyversionid` response header inside its own
//! ciphertext, and its Decrypt sends that version in the same request header instead of a
//! KeyId: the version then names both the key (authorised like any other) and the version
//! to decrypt with.

mod asymmetric;
pub mod auth;
mod key_pair;
mod mac;
mod secrets;
mod symmetric;

use self::auth::{ApiError, Headers};
use crate::access::endpoint::{self, EndpointKind};
use crate::access::{self, clientkey, operations};
use crate::appliance::Appliance;
use crate::authn::Caller;
use crate::crypto::ciphertext;
use crate::error::{ErrorCode, KmsError};
use crate::instance_api as api;
use crate::keys::{self, alias};
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse, ClientKey, HttpHeader};
use crate::store::access as records;
use prost::Message;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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

/// When each ClientKey's coming expiry was last logged (once a day per key is enough).
static EXPIRY_WARNED: Mutex<Option<HashMap<String, i64>>> = Mutex::new(None);

fn warn_if_expiring(key: &ClientKey, now: i64) {
    let (days_left, state) =
        clientkey::standing(key.not_before, key.not_after, key.retire_unix, now);
    if state != "ExpiringSoon" {
        return;
    }
    let mut warned = EXPIRY_WARNED.lock().unwrap_or_else(|p| p.into_inner());
    let last = warned
        .get_or_insert_with(HashMap::new)
        .entry(key.client_key_id.clone())
        .or_insert(i64::MIN);
    if now.saturating_sub(*last) >= 86_400 {
        *last = now;
        tracing::warn!(
            client_key = %key.client_key_id,
            aap = %key.aap_name,
            days_left,
            "ClientKey expires soon; create a new one (hkms client-key create) and delete this one"
        );
    }
}

/// The instance API's view of an hkmsd error.
fn api_error(e: KmsError) -> ApiError {
    match e.code {
        ErrorCode::Forbidden => {
            ApiError::new(403, "Forbidden.NoPermission", access::FORBIDDEN_MESSAGE)
        }
        ErrorCode::KeyNotFound => ApiError::new(
            404,
            "Forbidden.KeyNotFound",
            "The specified Key is not found.",
        ),
        ErrorCode::KeyDisabled | ErrorCode::KeyPendingDeletion | ErrorCode::KeyPendingImport => {
            ApiError::new(400, "Forbidden.KeyNotEnabled", e.message)
        }
        // The instance API documents no code of its own for a key whose usage or spec does
        // not allow the operation, nor for algorithms and specs it does not offer: they are
        // invalid parameters, told apart by the message.
        ErrorCode::InvalidParameter
        | ErrorCode::UnsupportedKeySpec
        | ErrorCode::UnsupportedAlgorithm
        | ErrorCode::IncorrectKeyUsage => ApiError::new(400, "InvalidParameter", e.message),
        ErrorCode::InvalidCiphertext => ApiError::new(400, "InvalidParameter", e.message),
        // The instance API's error table names no code for secrets. A secret that does not
        // exist gets the code the service documents for it in its secrets API
        // (`Forbidden.ResourceNotFound`, which secrets clients test for), with 404 like
        // `Forbidden.KeyNotFound`. A version or stage the secret lacks is told apart in
        // [`secrets`] (a parameter error).
        ErrorCode::ResourceNotFound => ApiError::new(
            404,
            "Forbidden.ResourceNotFound",
            "The specified resource is not found.",
        ),
        // No documented code exists for a secret scheduled for deletion (none in the
        // instance API's table, the SDKs or the Secrets Manager Client): it is refused as an
        // invalid request, and the message says when the deletion becomes final and that
        // RestoreSecret cancels it.
        ErrorCode::SecretPendingDeletion => ApiError::new(400, "InvalidParameter", e.message),
        ErrorCode::HsmUnavailable => ApiError::new(
            503,
            "ServiceUnavailableTemporary",
            "Service Unavailable Temporary.",
        ),
        _ => {
            tracing::error!("application request failed: {e}");
            ApiError::new(500, "InternalFailure", "Internal Failure")
        }
    }
}

/// One request being served: who asks, for which operation, with what.
struct Call<'a> {
    caller: &'a Caller,
    api_name: &'a str,
    headers: &'a Headers,
    body: &'a [u8],
    request_id: &'a str,
}

/// A response body and, for operations that encrypt, the key version used.
type Answer = Result<(Vec<u8>, Option<String>), ApiError>;

fn decode<M: Message + Default>(body: &[u8]) -> Result<M, ApiError> {
    M::decode(body).map_err(|_| {
        ApiError::new(
            400,
            "InvalidParameter",
            "The specified parameter is not valid.",
        )
    })
}

impl ApplicationApi {
    fn authorize(
        &self,
        caller: &Caller,
        operation: &str,
        resources: Vec<String>,
    ) -> Result<(), ApiError> {
        access::authorize(&*self.0.store, caller, operation, resources).map_err(api_error)
    }

    /// Resolves a requested key (id or `alias/<name>`) and authorises `operation` on it.
    /// A policy may grant the alias or the key. An alias that does not exist is reported
    /// as a missing key only to callers that may use that alias.
    fn authorized_key(
        &self,
        caller: &Caller,
        operation: &str,
        requested: &str,
    ) -> Result<String, ApiError> {
        if requested.is_empty() {
            return Err(ApiError::new(400, "InvalidParameter", "KeyId is required."));
        }
        match alias::resolve(&self.0, requested) {
            Ok(key_id) => {
                self.authorize(
                    caller,
                    operation,
                    operations::key_resources(requested, &key_id),
                )?;
                Ok(key_id)
            }
            Err(e) => {
                self.authorize(caller, operation, vec![requested.to_owned()])?;
                Err(api_error(e))
            }
        }
    }

    /// Finds the key version the transfer SDK names (`x-kms-migrationkeyversionid`) and
    /// authorises `operation` on its key. A KeyId sent as well must name that key. A
    /// version that does not exist is reported as a missing key only to callers that may
    /// use every key ([`operations::ANY_KEY`]); others cannot tell it from a version of a
    /// key they may not use, as with aliases in [`Self::authorized_key`].
    fn authorized_version(
        &self,
        caller: &Caller,
        operation: &str,
        requested_key: &str,
        version: &str,
    ) -> Result<keys::VersionRef, ApiError> {
        let found = keys::find_version(&self.0, version).map_err(api_error)?;
        if !requested_key.is_empty() {
            let key_id = self.authorized_key(caller, operation, requested_key)?;
            return match found {
                Some(v) if v.key_id == key_id => Ok(v),
                _ => Err(api_error(KmsError::key_not_found(version))),
            };
        }
        match found {
            Some(v) => {
                self.authorize(
                    caller,
                    operation,
                    operations::key_resources(&v.key_id, &v.key_id),
                )?;
                Ok(v)
            }
            None => {
                self.authorize(caller, operation, vec![operations::ANY_KEY.to_owned()])?;
                Err(api_error(KmsError::key_not_found(version)))
            }
        }
    }

    /// The key a request names, authorised, and the version to use: the one the transfer
    /// SDK names in `x-kms-migrationkeyversionid`, if any (then KeyId may be left out).
    fn key_and_version(
        &self,
        call: &Call<'_>,
        requested_key: &str,
    ) -> Result<(String, Option<String>), ApiError> {
        let version = call
            .headers
            .one(MIGRATION_HEADER)?
            .map(str::trim)
            .filter(|v| !v.is_empty());
        match version {
            Some(version) => {
                let v =
                    self.authorized_version(call.caller, call.api_name, requested_key, version)?;
                Ok((v.key_id, Some(v.key_version_id)))
            }
            None => Ok((
                self.authorized_key(call.caller, call.api_name, requested_key)?,
                None,
            )),
        }
    }

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
            _ => Err(unsupported()),
        }
    }
}

/// The IV inside a self-describing ciphertext's header.
pub(super) fn header_iv(blob: &[u8]) -> Vec<u8> {
    ciphertext::parse(blob)
        .map(|p| p.header.iv().to_vec())
        .unwrap_or_default()
}

fn unsupported() -> ApiError {
    ApiError::new(400, "UnsupportedOperation", "Rejected.UnsupportedOperation")
}

impl ApplicationApi {
    /// Authenticates, authorises and runs one relayed request. Every outcome that belongs
    /// to the external client is an answer (HTTP status and protobuf body); an error means
    /// the relay message itself was malformed (unknown endpoint, bad source address).
    pub async fn serve(
        &self,
        r: ApplicationCallRequest,
    ) -> Result<ApplicationCallResponse, KmsError> {
        let Some(endpoint) = EndpointKind::parse(&r.endpoint) else {
            return Err(KmsError::invalid(format!(
                "unknown endpoint {:?}",
                r.endpoint
            )));
        };
        let source: IpAddr = r.source_address.trim().parse().map_err(|_| {
            KmsError::invalid(format!(
                "source_address {:?} is not an IP address",
                r.source_address
            ))
        })?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let headers = Headers::new(r.headers.iter().map(|h| (h.name.as_str(), h.value.clone())));
        let now = crate::clock::now_unix();
        let store = self.0.store.clone();
        let lookup = move |id: &str| {
            records::get::<ClientKey>(&*store, id).map_err(|e| {
                tracing::error!("ClientKey lookup failed: {e}");
                ApiError::new(500, "InternalFailure", "Internal Failure")
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
            Some(why) => Err(ApiError::new(403, "Forbidden.InternetAccessDisabled", why)),
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
                warn_if_expiring(&v.client_key, now);
                let caller = Caller::Application {
                    aap: v.client_key.aap_name.clone(),
                    credential: v.client_key.client_key_id.clone(),
                    source,
                    endpoint,
                };
                if v.api_name != named {
                    Err(ApiError::new(
                        400,
                        "InvalidParameter",
                        "The header x-kms-apiname is not valid.",
                    ))
                } else if !operations::in_instance_api(&v.api_name) {
                    Err(ApiError::new(
                        400,
                        "InvalidApiName",
                        format!("The ApiName \"{}\" is invalid.", v.api_name),
                    ))
                } else if !SUPPORTED.contains(&v.api_name.as_str()) {
                    Err(unsupported())
                } else {
                    let call = Call {
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
        let mut headers = vec![HttpHeader {
            name: "x-kms-requestid".into(),
            value: request_id.clone(),
        }];
        headers.push(HttpHeader {
            name: "content-type".into(),
            value: "application/x-protobuf".into(),
        });
        if let Some(v) = version_header {
            headers.push(HttpHeader {
                name: MIGRATION_HEADER.into(),
                value: v,
            });
        }
        Ok(match outcome {
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
        })
    }
}
