//! `hkms.v1.ApplicationService` over gRPC: the gateway relays application requests (of any
//! external API) one per `Call`, or many over one `Relay` stream per client connection. Both
//! end in [`Fronts::serve`], which picks the request's front; only peers allowed to relay
//! ([`crate::authn::may_relay`]) get that far.

use super::Reply;
use crate::appliance::Appliance;
use crate::audit::scope::Scope;
use crate::authn::Caller;
use crate::error::{ErrorCode, KmsError};
use crate::front::Fronts;
use crate::proto::application_service_server::ApplicationService;
use crate::proto::{ApplicationCallRequest, ApplicationCallResponse};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Status, Streaming};

/// The relay service: every front, behind the gateway-only check.
#[derive(Debug, Clone)]
pub struct RelayApi(pub Fronts);

/// The answers of one relay stream, in the order of its requests.
pub type Answers = Pin<Box<dyn Stream<Item = Result<ApplicationCallResponse, Status>> + Send>>;

/// Refuses (and records in the audit trail) a relay call from a peer that is not a gateway.
async fn refuse_non_gateway<T>(app: &Appliance, req: &Request<T>) -> Result<(), Status> {
    if crate::authn::may_relay(req) {
        return Ok(());
    }
    let caller = req.extensions().get::<crate::authn::Caller>();
    tracing::warn!(caller = ?caller, "refused a relayed request from a peer that is not a gateway");
    let scope = Scope::new("grpc", "/hkms.v1.ApplicationService/Relay");
    if let Some(c) = caller {
        scope.run_sync(|| crate::audit::scope::note_caller(c));
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    crate::audit::scope::finish(app, &scope, &request_id, ErrorCode::Forbidden.as_str()).await?;
    Err(KmsError::new(
        ErrorCode::Forbidden,
        "only a gateway ([access] gateway_uids, or a gateway certificate of the instance CA over TCP) may relay application requests",
    )
    .into())
}

/// The requests of a relay stream until hkmsd begins to shut down.
struct UntilStopping {
    requests: Streaming<ApplicationCallRequest>,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Stream for UntilStopping {
    type Item = Result<ApplicationCallRequest, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stopping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.requests).poll_next(cx)
    }
}

#[tonic::async_trait]
impl ApplicationService for RelayApi {
    async fn call(&self, req: Request<ApplicationCallRequest>) -> Reply<ApplicationCallResponse> {
        refuse_non_gateway(self.0.appliance(), &req).await?;
        let gateway = req.extensions().get::<Caller>().cloned();
        Ok(tonic::Response::new(
            self.0.serve(req.into_inner(), gateway.as_ref()).await?,
        ))
    }

    type RelayStream = Answers;

    async fn relay(
        &self,
        req: Request<Streaming<ApplicationCallRequest>>,
    ) -> Reply<Self::RelayStream> {
        refuse_non_gateway(self.0.appliance(), &req).await?;
        let gateway = req.extensions().get::<Caller>().cloned();
        let api = self.clone();
        // Each request is served when the stream is polled for its answer, so requests of
        // one stream run one after the other and their answers keep their order. A
        // malformed relay message ends the stream with its error. At shutdown the stream
        // ends between two requests: the one being served is answered, and the gateway
        // can tell the next was never read (the stream ends instead of answering).
        let requests = UntilStopping {
            requests: req.into_inner(),
            stopping: Box::pin(self.0.appliance().stopping()),
        };
        let answers = requests.then(move |next| {
            let api = api.clone();
            let gateway = gateway.clone();
            async move {
                match next {
                    Ok(r) => api.0.serve(r, gateway.as_ref()).await.map_err(Status::from),
                    Err(s) => Err(s),
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(answers)))
    }
}
