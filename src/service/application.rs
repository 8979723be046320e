//! `hkms.v1.ApplicationService`: KMS instance API requests relayed by hkms-gateway.
//!
//! Each call is authenticated here ([`crate::authn::signed`]), authorised against the
//! caller's AAP ([`crate::access::authorize`]), then run. Every outcome that belongs to the
//! external client is a successful gRPC reply carrying the HTTP status and the protobuf body
//! (the operation's response or the protocol's `Error`); gRPC errors mean the relay itself
//! was refused (not a gateway, malformed source address).
//!
//! Requests that arrive on the gateway's Internet endpoint are refused before
//! authentication while Internet access is off ([`crate::access::endpoint`]); the endpoint
//! also decides which of the AAP's network rules may admit a request. Keys may be named by
//! alias; aliases resolve before authorisation. Encrypt, Decrypt and GenerateDataKey follow
//! the instance API's plain conventions (bare ciphertext and Iv, the key's initial version:
//! [`crate::crypto::instance`]); the Advance operations use hkmsd's self-describing
//! ciphertext ([`crate::crypto::ciphertext`], AES-GCM or AES-CBC), and AdvanceDecrypt (like
//! Decrypt) takes either form.
//!
//! The transfer SDK (classic KMS code moved onto an instance) keeps the key version that
//! Encrypt reports in the `x-kms-migrationkeyversionid` response header inside its own
//! ciphertext, and its Decrypt sends that version in the same request header instead of a
//! KeyId: the version then names both the key (authorised like any other) and the version
//! to decrypt with.

use crate::access::endpoint::{self, EndpointKind};
use crate::access::{self, clientkey, operations};
use crate::appliance::Appliance;
use crate::authn::signed::{self, ApiError, Headers};
use crate::authn::Caller;
use crate::crypto::instance::{self, Algorithm};
use crate::crypto::{self, ciphertext};
use crate::error::{ErrorCode, KmsError};
use crate::instance_api as api;
use crate::keys::{self, alias};
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse, ClientKey, HttpHeader};
use crate::store::access as records;
use prost::Message;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use zeroize::{Zeroize, Zeroizing};

/// Operations this build runs for applications. The other operations of the instance API
/// are answered with `UnsupportedOperation`; names the instance API does not define
/// ([`operations::in_instance_api`]) with `InvalidApiName`.
pub const SUPPORTED: [&str; 7] = [
    "Encrypt",
    "Decrypt",
    "AdvanceEncrypt",
    "AdvanceDecrypt",
    "GenerateDataKey",
    "AdvanceGenerateDataKey",
    "GenerateRandom",
];

#[derive(Debug, Clone)]
pub struct ApplicationApi(pub Arc<Appliance>, Arc<signed::PublicKeys>);

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
    let (days_left, state) = clientkey::state(key.not_before, key.not_after, now);
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
        ErrorCode::InvalidParameter | ErrorCode::UnsupportedKeySpec => {
            ApiError::new(400, "InvalidParameter", e.message)
        }
        ErrorCode::InvalidCiphertext => ApiError::new(400, "InvalidParameter", e.message),
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

    /// The self-describing ciphertext in `blob`, when the request's KeyId and Iv (if any)
    /// agree with it.
    fn self_describing<'a>(
        &self,
        blob: &'a [u8],
        requested_key: &str,
        iv: &[u8],
    ) -> Option<ciphertext::Parsed<'a>> {
        let parsed = ciphertext::parse(blob).ok()?;
        let key_ok = requested_key.is_empty()
            || alias::resolve(&self.0, requested_key)
                .is_ok_and(|k| k == parsed.header.key_id.to_string());
        let iv_ok = iv.is_empty() || iv == parsed.header.iv();
        (key_ok && iv_ok).then_some(parsed)
    }

    /// Decrypts for Decrypt and AdvanceDecrypt: a bare ciphertext of the key version named
    /// by `version` (`x-kms-migrationkeyversionid`), a self-describing ciphertext, or a bare
    /// one with KeyId and Iv (the key's initial version).
    async fn open(
        &self,
        caller: &Caller,
        api_name: &str,
        r: &api::DecryptRequest,
        version: Option<&str>,
    ) -> Result<(crypto::Opened, Algorithm), ApiError> {
        let app = &self.0;
        if let Some(version) = version {
            let v = self.authorized_version(caller, api_name, &r.key_id, version)?;
            let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
            let o = instance::decrypt(
                app,
                &v.key_id,
                Some(&v.key_version_id),
                alg,
                &r.iv,
                &r.aad,
                &r.ciphertext_blob,
            )
            .await
            .map_err(api_error)?;
            return Ok((o, alg));
        }
        if let Some(parsed) = self.self_describing(&r.ciphertext_blob, &r.key_id, &r.iv) {
            let key_id = parsed.header.key_id.to_string();
            let requested = if r.key_id.is_empty() {
                key_id.as_str()
            } else {
                r.key_id.as_str()
            };
            self.authorize(
                caller,
                api_name,
                operations::key_resources(requested, &key_id),
            )?;
            // Algorithm and PaddingMode are optional; given, they must be the blob's.
            let alg = parsed.header.cipher.algorithm();
            let other_algorithm = !r.algorithm.is_empty() && r.algorithm != alg.name();
            let other_padding = matches!(alg, Algorithm::Cbc { .. })
                && !r.padding_mode.is_empty()
                && r.padding_mode != alg.padding_name();
            if other_algorithm || other_padding {
                return Err(api_error(KmsError::invalid_ciphertext()));
            }
            let o = crypto::decrypt(app, &r.ciphertext_blob, &r.aad)
                .await
                .map_err(api_error)?;
            return Ok((o, alg));
        }
        if r.key_id.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidParameter",
                "KeyId is required (with Iv) for this ciphertext.",
            ));
        }
        let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
        let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
        let o = instance::decrypt(app, &key_id, None, alg, &r.iv, &r.aad, &r.ciphertext_blob)
            .await
            .map_err(api_error)?;
        Ok((o, alg))
    }

    fn data_key_len(n: i32) -> Result<usize, ApiError> {
        let n = u32::try_from(n).map_err(|_| {
            ApiError::new(400, "InvalidParameter", "NumberOfBytes must be 1..1024.")
        })?;
        crypto::data_key_len("", n).map_err(api_error)
    }

    /// Runs one operation; returns the response body and, for operations that encrypt,
    /// the key version used (sent as `x-kms-migrationkeyversionid`).
    async fn dispatch(
        &self,
        caller: &Caller,
        api_name: &str,
        headers: &Headers,
        body: &[u8],
        request_id: &str,
    ) -> Result<(Vec<u8>, Option<String>), ApiError> {
        let app = &self.0;
        match api_name {
            // Bare ciphertext and Iv, initial key version (the instance API's conventions).
            "Encrypt" => {
                let mut r: api::EncryptRequest = decode(body)?;
                let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
                let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
                let plaintext = Arc::new(Zeroizing::new(std::mem::take(&mut r.plaintext)));
                let b = instance::encrypt(app, &key_id, alg, &r.iv, &r.aad, plaintext)
                    .await
                    .map_err(api_error)?;
                let body = api::EncryptResponse {
                    key_id: b.key_id,
                    ciphertext_blob: b.ciphertext,
                    iv: b.iv,
                    request_id: request_id.into(),
                    algorithm: alg.name().into(),
                    padding_mode: alg.padding_name().into(),
                }
                .encode_to_vec();
                Ok((body, Some(b.key_version_id)))
            }
            "Decrypt" | "AdvanceDecrypt" => {
                let r: api::DecryptRequest = decode(body)?;
                let version = headers
                    .one(MIGRATION_HEADER)?
                    .map(str::trim)
                    .filter(|v| !v.is_empty());
                let (mut o, alg) = self.open(caller, api_name, &r, version).await?;
                let plaintext = std::mem::take(&mut *o.plaintext);
                let body = if api_name == "Decrypt" {
                    let mut resp = api::DecryptResponse {
                        key_id: o.key_id,
                        plaintext,
                        request_id: request_id.into(),
                        algorithm: alg.name().into(),
                        padding_mode: alg.padding_name().into(),
                    };
                    let body = resp.encode_to_vec();
                    resp.plaintext.zeroize();
                    body
                } else {
                    let mut resp = api::AdvanceDecryptResponse {
                        key_id: o.key_id,
                        plaintext,
                        request_id: request_id.into(),
                        algorithm: alg.name().into(),
                        padding_mode: alg.padding_name().into(),
                        key_version_id: o.key_version_id,
                    };
                    let body = resp.encode_to_vec();
                    resp.plaintext.zeroize();
                    body
                };
                Ok((body, None))
            }
            // The self-describing ciphertext (src/crypto/ciphertext.rs), primary version;
            // AES_GCM, or AES_CBC with PKCS7_PADDING or NO_PADDING.
            "AdvanceEncrypt" => {
                let mut r: api::AdvanceEncryptRequest = decode(body)?;
                let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
                let alg = Algorithm::parse(&r.algorithm, &r.padding_mode).map_err(api_error)?;
                if !r.iv.is_empty() {
                    return Err(ApiError::new(
                        400,
                        "InvalidParameter",
                        "AdvanceEncrypt chooses the Iv itself; do not send one.",
                    ));
                }
                let plaintext = Zeroizing::new(std::mem::take(&mut r.plaintext));
                let s = crypto::encrypt_with(app, &key_id, alg, plaintext, &r.aad)
                    .await
                    .map_err(api_error)?;
                let body = api::AdvanceEncryptResponse {
                    key_id: s.key_id,
                    iv: header_iv(&s.blob),
                    ciphertext_blob: s.blob,
                    request_id: request_id.into(),
                    algorithm: alg.name().into(),
                    padding_mode: alg.padding_name().into(),
                    key_version_id: s.key_version_id.clone(),
                }
                .encode_to_vec();
                Ok((body, Some(s.key_version_id)))
            }
            "GenerateDataKey" => {
                let r: api::GenerateDataKeyRequest = decode(body)?;
                let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
                if !matches!(r.algorithm.as_str(), "" | "AES_GCM") {
                    return Err(ApiError::new(
                        400,
                        "InvalidParameter",
                        "GenerateDataKey encrypts with AES_GCM only.",
                    ));
                }
                let len = Self::data_key_len(r.number_of_bytes)?;
                let (b, mut plaintext) = instance::generate_data_key(app, &key_id, len, &r.aad)
                    .await
                    .map_err(api_error)?;
                let mut resp = api::GenerateDataKeyResponse {
                    key_id: b.key_id,
                    iv: b.iv,
                    plaintext: std::mem::take(&mut *plaintext),
                    ciphertext_blob: b.ciphertext,
                    request_id: request_id.into(),
                    algorithm: "AES_GCM".into(),
                };
                let body = resp.encode_to_vec();
                resp.plaintext.zeroize();
                Ok((body, Some(b.key_version_id)))
            }
            "AdvanceGenerateDataKey" => {
                let r: api::AdvanceGenerateDataKeyRequest = decode(body)?;
                let key_id = self.authorized_key(caller, api_name, &r.key_id)?;
                let len = Self::data_key_len(r.number_of_bytes)?;
                let (s, mut plaintext) = crypto::generate_data_key(app, &key_id, len, &r.aad)
                    .await
                    .map_err(api_error)?;
                let mut resp = api::AdvanceGenerateDataKeyResponse {
                    key_id: s.key_id,
                    iv: header_iv(&s.blob),
                    plaintext: std::mem::take(&mut *plaintext),
                    ciphertext_blob: s.blob,
                    request_id: request_id.into(),
                    algorithm: "AES_GCM".into(),
                    key_version_id: s.key_version_id.clone(),
                };
                let body = resp.encode_to_vec();
                resp.plaintext.zeroize();
                Ok((body, Some(s.key_version_id)))
            }
            "GenerateRandom" => {
                let r: api::GenerateRandomRequest = decode(body)?;
                self.authorize(caller, api_name, Vec::new())?;
                let len = usize::try_from(r.length).unwrap_or(0);
                let mut random = crypto::random(app, len).await.map_err(api_error)?;
                let mut resp = api::GenerateRandomResponse {
                    random: std::mem::take(&mut *random),
                    request_id: request_id.into(),
                };
                let body = resp.encode_to_vec();
                resp.random.zeroize();
                Ok((body, None))
            }
            _ => Err(unsupported()),
        }
    }
}

/// The IV inside a self-describing ciphertext's header.
fn header_iv(blob: &[u8]) -> Vec<u8> {
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
        let now = clientkey::now_unix();
        let store = self.0.store.clone();
        let lookup = move |id: &str| {
            records::get::<ClientKey>(&*store, id).map_err(|e| {
                tracing::error!("ClientKey lookup failed: {e}");
                ApiError::new(500, "InternalFailure", "Internal Failure")
            })
        };
        let internet_closed = endpoint == EndpointKind::Internet
            && !endpoint::internet_enabled(&*self.0.store).unwrap_or(false);
        let verified = if internet_closed {
            Err(ApiError::new(
                403,
                "Forbidden.InternetAccessDisabled",
                "Internet access to this instance is not enabled.",
            ))
        } else {
            signed::verify(&r.method, &headers, &r.body, now, &lookup, &self.1)
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
                    client_key_id: v.client_key.client_key_id.clone(),
                    source,
                    endpoint,
                };
                if !operations::in_instance_api(&v.api_name) {
                    Err(ApiError::new(
                        400,
                        "InvalidApiName",
                        format!("The ApiName \"{}\" is invalid.", v.api_name),
                    ))
                } else if !SUPPORTED.contains(&v.api_name.as_str()) {
                    Err(unsupported())
                } else {
                    let result = self
                        .dispatch(&caller, &v.api_name, &headers, &r.body, &request_id)
                        .await
                        .map(|(body, version)| {
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
