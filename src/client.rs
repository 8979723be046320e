//! A gRPC client for hkmsd's Unix socket (used by the CLI and the tests).

use crate::proto::access_service_client::AccessServiceClient;
use crate::proto::admin_service_client::AdminServiceClient;
use crate::proto::application_service_client::ApplicationServiceClient;
use crate::proto::crypto_service_client::CryptoServiceClient;
use crate::proto::key_service_client::KeyServiceClient;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint};

/// Clients of every hkmsd service over one connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub keys: KeyServiceClient<Channel>,
    pub crypto: CryptoServiceClient<Channel>,
    pub admin: AdminServiceClient<Channel>,
    pub access: AccessServiceClient<Channel>,
    /// Relays application requests (for hkms-gateway).
    pub application: ApplicationServiceClient<Channel>,
}

impl Client {
    /// Connects to hkmsd's Unix socket.
    pub async fn connect(socket: &Path) -> Result<Client, String> {
        let path: PathBuf = socket.to_owned();
        if !path.exists() {
            return Err(format!(
                "no hkmsd socket at {} (is hkmsd running? set --socket or HKMS_SOCKET)",
                path.display()
            ));
        }
        // The URI is required by the API but unused: the connector dials the socket.
        let channel = Endpoint::try_from("http://hkmsd.local")
            .map_err(|e| e.to_string())?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        Ok(Client {
            keys: KeyServiceClient::new(channel.clone()),
            crypto: CryptoServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel.clone()),
            access: AccessServiceClient::new(channel.clone()),
            application: ApplicationServiceClient::new(channel),
        })
    }
}
