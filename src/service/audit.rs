//! `hkms.v1.AuditService` over gRPC: export, tail, keyed hashes and the trail's status, for
//! operators only. Every call to it is itself recorded (by [`crate::audit::layer`]).

use super::resource::{operator, operator_call, operator_call_async};
use super::{refused, Reply};
use crate::appliance::Appliance;
use crate::audit::export::{self, Batch};
use crate::proto::audit_service_server::AuditService;
use crate::proto::{
    AuditLines, ExportAuditRequest, GetAuditStatusRequest, GetAuditStatusResponse,
    HashAuditValueRequest, HashAuditValueResponse, TailAuditRequest,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct AuditApi(pub Arc<Appliance>);

/// Batches of lines, as the client reads them.
pub type Lines = Pin<Box<dyn Stream<Item = Result<AuditLines, Status>> + Send>>;

fn lines(rx: tokio::sync::mpsc::Receiver<Batch>) -> Lines {
    Box::pin(ReceiverStream::new(rx).map(|batch| {
        batch
            .map(|lines| AuditLines { lines })
            .map_err(Status::from)
    }))
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ExportStream = Lines;

    async fn export(&self, req: Request<ExportAuditRequest>) -> Reply<Lines> {
        operator(&req, "ExportAudit").map_err(refused)?;
        let r = req.into_inner();
        let rx = export::export(self.0.clone(), r.since, r.until).map_err(refused)?;
        Ok(Response::new(lines(rx)))
    }

    type TailStream = Lines;

    async fn tail(&self, req: Request<TailAuditRequest>) -> Reply<Lines> {
        operator(&req, "TailAudit").map_err(refused)?;
        let rx = export::tail(self.0.clone(), req.into_inner().last).map_err(refused)?;
        Ok(Response::new(lines(rx)))
    }

    async fn hash_value(
        &self,
        req: Request<HashAuditValueRequest>,
    ) -> Reply<HashAuditValueResponse> {
        let app = self.0.clone();
        operator_call_async(req, "HashAuditValue", |r| async move {
            let hash = crate::audit::checkpoint::keyed_hash(&app, &r.value).await?;
            Ok(HashAuditValueResponse { hash })
        })
        .await
    }

    async fn get_audit_status(
        &self,
        req: Request<GetAuditStatusRequest>,
    ) -> Reply<GetAuditStatusResponse> {
        operator_call(req, "GetAuditStatus", |_| {
            let s = self.0.audit.status();
            Ok(GetAuditStatusResponse {
                enabled: s.enabled,
                writable: s.writable,
                error: s.error.unwrap_or_default(),
                backlog: s.backlog,
                last_seq: s.last_seq,
                last_checkpoint: s.last_checkpoint.unwrap_or_default(),
                segments: s.segments,
                bytes: s.bytes,
                dir: s.dir.display().to_string(),
                appends: s.appends.to_owned(),
            })
        })
    }
}
