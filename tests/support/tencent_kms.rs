//! Helpers of the Tencent KMS (`2019-01-18`) tests: signed requests of one API key on one
//! connection, an AAP that administers and uses every key, readers of answers, and key
//! material wrapped for import.
//!
//! Use with `support/gateway.rs` (as `support`) and `support/tencent.rs` (as `tencent`):
//! ```text
//! #[path = "support/gateway.rs"] mod support;
//! #[path = "support/tencent.rs"] mod tencent;
//! #[path = "support/tencent_kms.rs"] mod tencent_kms;
//! ```
#![allow(dead_code)]

use crate::support::{connect, GatewayProc, Instance};
use crate::tencent::{self, call, error_code, ApiKey, Signing, KMS_VERSION};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::pkey::PKey;
use openssl::rsa::Padding;
use openssl::ssl::SslStream;
use serde_json::{json, Value};
use std::net::TcpStream;

/// Signed KMS requests of one API key on one connection.
pub struct Tc<'a> {
    s: SslStream<TcpStream>,
    key: &'a ApiKey,
}

impl<'a> Tc<'a> {
    pub fn new(gw: &GatewayProc, inst: &Instance, key: &'a ApiKey) -> Tc<'a> {
        Tc {
            s: connect(gw.port, &inst.bundle),
            key,
        }
    }

    pub fn call(&mut self, action: &str, params: Value) -> Value {
        call(
            &mut self.s,
            &Signing::new(self.key, KMS_VERSION),
            action,
            &params,
        )
    }

    /// The answer of an action that must succeed.
    pub fn ok(&mut self, action: &str, params: Value) -> Value {
        let r = self.call(action, params);
        assert!(r.get("Error").is_none(), "{action} failed: {r}");
        r
    }

    /// The error code of an action that must fail.
    pub fn code(&mut self, action: &str, params: Value) -> String {
        let r = self.call(action, params);
        error_code(&r).unwrap_or_else(|| panic!("{action} succeeded: {r}"))
    }

    /// The error of an action that must fail, as (code, message).
    pub fn error(&mut self, action: &str, params: Value) -> (String, String) {
        let r = self.call(action, params);
        let code = error_code(&r).unwrap_or_else(|| panic!("{action} succeeded: {r}"));
        (code, r["Error"]["Message"].as_str().unwrap().to_owned())
    }

    pub fn create(&mut self, alias: &str, usage: &str) -> String {
        let r = self.ok("CreateKey", json!({"Alias": alias, "KeyUsage": usage}));
        r["KeyId"].as_str().unwrap().to_owned()
    }

    pub fn meta(&mut self, key_id: &str) -> Value {
        self.ok("DescribeKey", json!({ "KeyId": key_id }))["KeyMetadata"].clone()
    }
}

/// An AAP that administers and uses every key (its policies cover `key/*` and `alias/*`),
/// and an API key for it.
pub fn admin(inst: &Instance, aap: &str) -> ApiKey {
    tencent::key_admin(inst, aap)
}

/// The bytes of a base64 string field.
pub fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .unwrap()
}

/// The KeyIds of a listing's `field` (`Keys`, `KeyMetadatas`), in order.
pub fn ids(listing: &Value, field: &str) -> Vec<String> {
    listing[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].as_str().unwrap().to_owned())
        .collect()
}

/// `material` encrypted with the import parameters' public key (RSAES-OAEP with SHA-1).
pub fn wrap(params: &Value, material: &[u8]) -> String {
    let pk = PKey::public_key_from_der(&b64(&params["PublicKey"])).unwrap();
    let rsa = pk.rsa().unwrap();
    let mut out = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(material, &mut out, Padding::PKCS1_OAEP)
        .unwrap();
    out.truncate(n);
    B64.encode(out)
}
