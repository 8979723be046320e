//! `hkms.v1.CryptoService`: each call is one call of [`crate::ops::crypto`] for the
//! request's caller.

use super::{caller_of, reply, Reply};
use crate::appliance::Appliance;
use crate::ops::{crypto, Ctx};
use crate::proto::crypto_service_server::CryptoService;
use crate::proto::*;
use std::sync::Arc;
use tonic::Request;
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, Clone)]
pub struct CryptoApi(pub Arc<Appliance>);

#[tonic::async_trait]
impl CryptoService for CryptoApi {
    async fn encrypt(&self, req: Request<EncryptRequest>) -> Reply<EncryptResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let mut r = req.into_inner();
        let plaintext = Zeroizing::new(std::mem::take(&mut r.plaintext));
        reply(
            crypto::encrypt(ctx, &r.key_id, plaintext, &r.aad)
                .await
                .map(|s| EncryptResponse {
                    key_id: s.key_id,
                    key_version_id: s.key_version_id,
                    ciphertext_blob: s.blob,
                }),
        )
    }

    async fn decrypt(&self, req: Request<DecryptRequest>) -> Reply<DecryptResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.into_inner();
        reply(
            crypto::decrypt(ctx, &r.ciphertext_blob, &r.aad)
                .await
                .map(|mut o| DecryptResponse {
                    key_id: o.key_id,
                    key_version_id: o.key_version_id,
                    // The response buffer is handed to the transport; the copy we held is wiped.
                    plaintext: std::mem::take(&mut *o.plaintext),
                }),
        )
    }

    async fn generate_data_key(
        &self,
        req: Request<GenerateDataKeyRequest>,
    ) -> Reply<GenerateDataKeyResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.into_inner();
        let result = crypto::generate_data_key(
            ctx,
            "GenerateDataKey",
            &r.key_id,
            &r.key_spec,
            r.number_of_bytes,
            &r.aad,
        )
        .await;
        reply(result.map(|(s, mut plaintext)| GenerateDataKeyResponse {
            key_id: s.key_id,
            key_version_id: s.key_version_id,
            plaintext: std::mem::take(&mut *plaintext),
            ciphertext_blob: s.blob,
        }))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        req: Request<GenerateDataKeyRequest>,
    ) -> Reply<GenerateDataKeyWithoutPlaintextResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.into_inner();
        let result = crypto::generate_data_key(
            ctx,
            "GenerateDataKeyWithoutPlaintext",
            &r.key_id,
            &r.key_spec,
            r.number_of_bytes,
            &r.aad,
        )
        .await;
        reply(result.map(|(s, mut plaintext)| {
            plaintext.zeroize();
            GenerateDataKeyWithoutPlaintextResponse {
                key_id: s.key_id,
                key_version_id: s.key_version_id,
                ciphertext_blob: s.blob,
            }
        }))
    }

    async fn re_encrypt(&self, req: Request<ReEncryptRequest>) -> Reply<ReEncryptResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let r = req.into_inner();
        reply(
            crypto::re_encrypt(
                ctx,
                &r.source_ciphertext_blob,
                &r.source_aad,
                &r.destination_key_id,
                &r.destination_aad,
            )
            .await
            .map(|(opened, sealed)| ReEncryptResponse {
                source_key_id: opened.key_id,
                source_key_version_id: opened.key_version_id,
                key_id: sealed.key_id,
                key_version_id: sealed.key_version_id,
                ciphertext_blob: sealed.blob,
            }),
        )
    }

    async fn generate_random(
        &self,
        req: Request<GenerateRandomRequest>,
    ) -> Reply<GenerateRandomResponse> {
        let caller = caller_of(&req)?;
        let ctx = Ctx::new(&self.0, &caller);
        let len = req.into_inner().length as usize;
        reply(
            crypto::random(ctx, len)
                .await
                .map(|mut r| GenerateRandomResponse {
                    random: std::mem::take(&mut *r),
                }),
        )
    }
}
