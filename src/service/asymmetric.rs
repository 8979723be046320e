//! `hkms.v1.AsymmetricService`: signatures, public-key encryption, data key pairs and MACs,
//! each one call of [`crate::ops::asymmetric`] or [`crate::ops::key_pair`] for the
//! request's caller.

use super::{caller_of, reply, Reply};
use crate::appliance::Appliance;
use crate::ops::key_pair::{self, Sealing};
use crate::ops::{asymmetric, Ctx, VersionChoice};
use crate::proto::asymmetric_service_server::AsymmetricService;
use crate::proto::*;
use std::sync::Arc;
use tonic::Request;
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, Clone)]
pub struct AsymmetricApi(pub Arc<Appliance>);

/// The version a request names; empty means the primary version.
fn version(key_version_id: &str) -> VersionChoice<'_> {
    if key_version_id.is_empty() {
        VersionChoice::Primary
    } else {
        VersionChoice::Id(key_version_id)
    }
}

impl AsymmetricApi {
    async fn data_key_pair(
        &self,
        req: Request<GenerateDataKeyPairRequest>,
        operation: &str,
        with_plaintext: bool,
    ) -> Reply<GenerateDataKeyPairResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.into_inner();
        let pair = key_pair::generate(
            ctx,
            operation,
            &r.key_id,
            &r.key_pair_spec,
            &r.key_format,
            &r.aad,
            Sealing::Hkms,
        )
        .await;
        reply(pair.map(|mut p| GenerateDataKeyPairResponse {
            key_id: p.key_id,
            key_version_id: p.key_version_id,
            key_pair_spec: p.key_pair_spec.into(),
            key_format: p.key_format.into(),
            public_key: p.public_key,
            private_key_plaintext: if with_plaintext {
                std::mem::take(&mut *p.private_key)
            } else {
                Vec::new()
            },
            private_key_ciphertext_blob: p.ciphertext,
        }))
    }
}

#[tonic::async_trait]
impl AsymmetricService for AsymmetricApi {
    async fn sign(&self, req: Request<SignRequest>) -> Reply<SignResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.get_ref();
        let v = version(&r.key_version_id);
        let s =
            asymmetric::sign(ctx, &r.key_id, v, &r.algorithm, &r.message_type, &r.message).await;
        reply(s.map(|s| SignResponse {
            key_id: s.key_id,
            key_version_id: s.key_version_id,
            signature: s.signature,
            algorithm: s.algorithm.into(),
        }))
    }

    async fn verify(&self, req: Request<VerifyRequest>) -> Reply<VerifyResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.get_ref();
        let v = version(&r.key_version_id);
        let checked = asymmetric::verify(
            ctx,
            &r.key_id,
            v,
            &r.algorithm,
            &r.message_type,
            &r.message,
            &r.signature,
        )
        .await;
        reply(checked.map(|c| VerifyResponse {
            key_id: c.key_id,
            key_version_id: c.key_version_id,
            value: c.value,
        }))
    }

    async fn asymmetric_encrypt(
        &self,
        req: Request<AsymmetricEncryptRequest>,
    ) -> Reply<AsymmetricEncryptResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let mut r = req.into_inner();
        let plaintext = Zeroizing::new(std::mem::take(&mut r.plaintext));
        let v = version(&r.key_version_id);
        let sealed = asymmetric::encrypt(ctx, &r.key_id, v, &r.algorithm, &plaintext).await;
        reply(sealed.map(|s| AsymmetricEncryptResponse {
            key_id: s.key_id,
            key_version_id: s.key_version_id,
            ciphertext_blob: s.ciphertext,
            algorithm: s.algorithm.into(),
        }))
    }

    async fn asymmetric_decrypt(
        &self,
        req: Request<AsymmetricDecryptRequest>,
    ) -> Reply<AsymmetricDecryptResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.get_ref();
        let v = version(&r.key_version_id);
        let opened = asymmetric::decrypt(ctx, &r.key_id, v, &r.algorithm, &r.ciphertext_blob).await;
        reply(opened.map(|mut o| AsymmetricDecryptResponse {
            key_id: o.key_id,
            key_version_id: o.key_version_id,
            plaintext: std::mem::take(&mut *o.plaintext),
        }))
    }

    async fn get_public_key(
        &self,
        req: Request<GetPublicKeyRequest>,
    ) -> Reply<GetPublicKeyResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.get_ref();
        let public = asymmetric::public_key(ctx, &r.key_id, version(&r.key_version_id)).await;
        reply(public.map(|p| GetPublicKeyResponse {
            public_key_pem: p.pem,
            key_id: p.key_id,
            key_version_id: p.key_version_id,
            key_spec: p.key_spec,
            key_usage: p.key_usage,
            public_key_der: p.der,
        }))
    }

    async fn generate_data_key_pair(
        &self,
        req: Request<GenerateDataKeyPairRequest>,
    ) -> Reply<GenerateDataKeyPairResponse> {
        self.data_key_pair(req, "GenerateDataKeyPair", true).await
    }

    async fn generate_data_key_pair_without_plaintext(
        &self,
        req: Request<GenerateDataKeyPairRequest>,
    ) -> Reply<GenerateDataKeyPairResponse> {
        self.data_key_pair(req, "GenerateDataKeyPairWithoutPlaintext", false)
            .await
    }

    async fn generate_mac(&self, req: Request<GenerateMacRequest>) -> Reply<GenerateMacResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let mut r = req.into_inner();
        let message = Zeroizing::new(std::mem::take(&mut r.message));
        let v = version(&r.key_version_id);
        let made = asymmetric::mac(ctx, "GenerateMac", &r.key_id, v, &r.algorithm, &message).await;
        reply(made.map(|m| GenerateMacResponse {
            key_id: m.key_id,
            key_version_id: m.key_version_id,
            mac: m.mac,
            algorithm: m.algorithm.into(),
        }))
    }

    async fn verify_mac(&self, req: Request<VerifyMacRequest>) -> Reply<VerifyMacResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let mut r = req.into_inner();
        let v = version(&r.key_version_id);
        let checked =
            asymmetric::verify_mac(ctx, &r.key_id, v, &r.algorithm, &r.message, &r.mac).await;
        r.message.zeroize();
        reply(checked.map(|c| VerifyMacResponse {
            key_id: c.key_id,
            key_version_id: c.key_version_id,
            value: c.value,
        }))
    }
}
