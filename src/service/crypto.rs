//! `hkms.v1.CryptoService`.

use super::access::{authorize, authorize_blob, authorize_key};
use super::{reply, Reply};
use crate::appliance::Appliance;
use crate::crypto;
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
        let key_id = authorize_key(&self.0, &req, "Encrypt", &req.get_ref().key_id)?;
        let mut r = req.into_inner();
        let plaintext = Zeroizing::new(std::mem::take(&mut r.plaintext));
        reply(
            crypto::encrypt(&self.0, &key_id, plaintext, &r.aad)
                .await
                .map(|s| EncryptResponse {
                    key_id: s.key_id,
                    key_version_id: s.key_version_id,
                    ciphertext_blob: s.blob,
                }),
        )
    }

    async fn decrypt(&self, req: Request<DecryptRequest>) -> Reply<DecryptResponse> {
        authorize_blob(&self.0, &req, "Decrypt", &req.get_ref().ciphertext_blob)?;
        let r = req.into_inner();
        reply(
            crypto::decrypt(&self.0, &r.ciphertext_blob, &r.aad)
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
        let key_id = authorize_key(&self.0, &req, "GenerateDataKey", &req.get_ref().key_id)?;
        let r = req.into_inner();
        let result = async {
            let len = crypto::data_key_len(&r.key_spec, r.number_of_bytes)?;
            crypto::generate_data_key(&self.0, &key_id, len, &r.aad).await
        }
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
        let key_ref = &req.get_ref().key_id;
        let key_id = authorize_key(&self.0, &req, "GenerateDataKeyWithoutPlaintext", key_ref)?;
        let r = req.into_inner();
        let result = async {
            let len = crypto::data_key_len(&r.key_spec, r.number_of_bytes)?;
            crypto::generate_data_key(&self.0, &key_id, len, &r.aad).await
        }
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
        let r = req.get_ref();
        authorize_blob(&self.0, &req, "ReEncrypt", &r.source_ciphertext_blob)?;
        let destination = authorize_key(&self.0, &req, "ReEncrypt", &r.destination_key_id)?;
        let r = req.into_inner();
        reply(
            crypto::re_encrypt(
                &self.0,
                &r.source_ciphertext_blob,
                &r.source_aad,
                &destination,
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
        authorize(&self.0, &req, "GenerateRandom", Vec::new())?;
        let len = req.into_inner().length as usize;
        reply(
            crypto::random(&self.0, len)
                .await
                .map(|mut r| GenerateRandomResponse {
                    random: std::mem::take(&mut *r),
                }),
        )
    }
}
