//! gRPC calls on secrets, shared by the secret tests.
#![allow(dead_code)]

use hkms::client::Client;
use hkms::proto::*;

pub async fn create(
    c: &mut Client,
    name: &str,
    key: &str,
    data: &[u8],
) -> Result<CreateSecretResponse, tonic::Status> {
    c.secrets
        .create_secret(CreateSecretRequest {
            secret_name: name.into(),
            secret_data: data.to_vec(),
            version_id: "v1".into(),
            encryption_key_id: key.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn get(
    c: &mut Client,
    name: &str,
    stage: &str,
    version: &str,
) -> Result<GetSecretValueResponse, tonic::Status> {
    c.secrets
        .get_secret_value(GetSecretValueRequest {
            secret_name: name.into(),
            version_stage: stage.into(),
            version_id: version.into(),
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn put(
    c: &mut Client,
    name: &str,
    version: &str,
    data: &[u8],
    stages: &[&str],
) -> Result<PutSecretValueResponse, tonic::Status> {
    c.secrets
        .put_secret_value(PutSecretValueRequest {
            secret_name: name.into(),
            secret_data: data.to_vec(),
            version_id: version.into(),
            version_stages: stages.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn describe(c: &mut Client, name: &str) -> Result<SecretMetadata, tonic::Status> {
    c.secrets
        .describe_secret(DescribeSecretRequest {
            secret_name: name.into(),
        })
        .await
        .map(|r| r.into_inner().secret.unwrap())
}

/// The current value of a secret.
pub async fn value(c: &mut Client, name: &str) -> Result<Vec<u8>, tonic::Status> {
    get(c, name, "", "").await.map(|v| v.secret_data)
}
