//! The shape of operator-managed calls: the create, describe, list, update and delete of
//! network rules, policies, AAPs and ClientKeys, and any later resource of the same kind.
//!
//! Only operators may make these calls; the request message goes to one domain call (for
//! access records, the generic functions of [`crate::access::manage`]); its answer becomes
//! the reply and its error the gRPC status, logged once with its code. A handler then only
//! names its operation, makes the domain call and builds its reply message.

use super::{reply, Reply};
use crate::access::require_operator;
use crate::authn::caller;
use crate::error::KmsError;
use tonic::Request;

/// Refuses callers other than operators (the refusal is logged with the operation).
pub(super) fn operator<T>(req: &Request<T>, operation: &str) -> Result<(), KmsError> {
    require_operator(&caller(req)?, operation)
}

/// Serves one operator-only call: refuses other callers, hands the request message to
/// `call`, and turns its answer or error into the reply.
///
/// ```text
/// operator_call(req, "DescribePolicy", |r| {
///     let policy = manage::get(store, &r.name)?;
///     Ok(DescribePolicyResponse { policy: Some(policy) })
/// })
/// ```
pub(super) fn operator_call<Req, Resp>(
    req: Request<Req>,
    operation: &str,
    call: impl FnOnce(Req) -> Result<Resp, KmsError>,
) -> Reply<Resp> {
    reply(operator(&req, operation).and_then(|()| call(req.into_inner())))
}

/// [`operator_call`] for a domain call that waits (one that uses an HSM member).
pub(super) async fn operator_call_async<Req, Resp, Fut>(
    req: Request<Req>,
    operation: &str,
    call: impl FnOnce(Req) -> Fut,
) -> Reply<Resp>
where
    Fut: std::future::Future<Output = Result<Resp, KmsError>>,
{
    match operator(&req, operation) {
        Ok(()) => reply(call(req.into_inner()).await),
        Err(e) => reply(Err(e)),
    }
}
