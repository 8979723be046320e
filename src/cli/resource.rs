//! How the CLI prints the records it creates, describes, lists, updates and deletes, so that
//! every resource looks the same: one record as `Field: value` lines or as
//! `{"<Kind>": {...}}`, a list as a table or as `{"<Kinds>": [...]}`, a deletion as
//! `<kind> <name> deleted` or as `{"Deleted": "<name>"}`.
//!
//! A resource implements [`View`] (one record) and [`Row`] (a line of a list) for its
//! messages; its commands then make the gRPC call and hand it to [`one`], [`list`] or
//! [`deleted`].

use serde_json::{json, Value};
use std::future::Future;
use tonic::{Response, Status};

/// What a command prints: text, and the same as JSON for --json.
pub type Printed = (String, Value);

/// How one record is shown on its own (create, describe, update).
pub trait View: Default {
    /// The key the record goes under in JSON output, e.g. `NetworkRule`.
    const KEY: &'static str;
    /// The record as a JSON object.
    fn json(&self) -> Value;
    /// The record as `Field: value` lines.
    fn text(&self) -> String;
}

/// How a record is shown as one entry of a list.
pub trait Row {
    /// The key the list goes under in JSON output, e.g. `NetworkRules`.
    const LIST_KEY: &'static str;
    /// The table's header line.
    fn header() -> String;
    /// The record's line in the table.
    fn row(&self) -> String;
    /// The record's object in the JSON list.
    fn entry(&self) -> Value;
}

/// One record (an empty one when the answer has none).
pub fn record<R: View>(r: Option<R>) -> Printed {
    let r = r.unwrap_or_default();
    let key = R::KEY;
    (r.text(), json!({ key: r.json() }))
}

/// Records as a table: the header, then a line each.
pub fn table<R: Row>(items: &[R]) -> String {
    let mut t = R::header();
    for r in items {
        t.push('\n');
        t.push_str(&r.row());
    }
    t
}

/// Awaits `call` and prints the record `pick` takes from its answer.
pub async fn one<T, R: View>(
    call: impl Future<Output = Result<Response<T>, Status>>,
    pick: impl FnOnce(T) -> Option<R>,
) -> Result<Printed, Status> {
    Ok(record(pick(call.await?.into_inner())))
}

/// Awaits `call` and prints the records `pick` takes from its answer.
pub async fn list<T, R: Row>(
    call: impl Future<Output = Result<Response<T>, Status>>,
    pick: impl FnOnce(T) -> Vec<R>,
) -> Result<Printed, Status> {
    let items = pick(call.await?.into_inner());
    let key = R::LIST_KEY;
    let entries: Vec<Value> = items.iter().map(Row::entry).collect();
    Ok((table(&items), json!({ key: entries })))
}

/// Awaits the deleting `call` and says that the `kind` (e.g. `network rule`) named `name`
/// is gone.
pub async fn deleted<T>(
    call: impl Future<Output = Result<Response<T>, Status>>,
    kind: &str,
    name: &str,
) -> Result<Printed, Status> {
    call.await?;
    Ok((format!("{kind} {name} deleted"), json!({ "Deleted": name })))
}

/// `status` with `note` added to its message, its code kept (what a command that stopped
/// halfway did about its earlier steps).
pub fn noted(status: Status, note: &str) -> Status {
    let mut s = Status::new(status.code(), format!("{}; {note}", status.message()));
    *s.metadata_mut() = status.metadata().clone();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{error_code, ErrorCode, KmsError};

    #[test]
    fn notes_keep_the_error_code() {
        let s: Status = KmsError::new(ErrorCode::ResourceExists, "policy p already exists").into();
        let n = noted(s, "nothing was created");
        assert_eq!(error_code(&n).as_deref(), Some("ResourceExists"));
        assert!(n.message().ends_with("already exists; nothing was created"));
    }
}
