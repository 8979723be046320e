//! The KMS codec (`2019-01-18`): one handler per action, each a call of [`crate::ops`].

use super::errors::TcError;
use super::Fields;
use crate::ops::Ctx;
use serde_json::{Map, Value};

/// Runs `action` with the request's fields.
pub async fn run(ctx: Ctx<'_>, action: &str, body: Map<String, Value>) -> Result<Fields, TcError> {
    let _ = (ctx, body);
    Err(TcError::new(
        "InvalidAction",
        format!("the action {action:?} is not an action of KMS 2019-01-18"),
    ))
}
