//! The audit trail: every request that reaches hkmsd, whatever its front and outcome, is
//! recorded before it is answered, in an append-only, hash-chained log with checkpoints
//! signed inside the HSMs.
//!
//! - [`record`]: the lines of the trail and of export files, byte for byte, and their hashes;
//! - [`scope`]: the record of the request being served, which the layers it passes through
//!   fill in (caller, operation, resources, result);
//! - [`trail`]: the writer: numbers, chains, writes and syncs records to segment files
//!   (group commit), rotation, retention, recovery of a torn tail after a crash;
//! - [`direct`]: direct, synchronous appends (`O_DIRECT | O_DSYNC`), durable when they
//!   return;
//! - [`config`]: the `[audit]` settings;
//! - [`segments`]: the segment files: naming, recovery, retention, reading;
//! - [`checkpoint`]: the signing key, periodic checkpoints and the keyed hashes;
//! - [`export`]: export files (header, records, checkpoints, seal);
//! - [`verify`]: offline verification of an export file, naming the first line that was
//!   altered, removed, reordered or inserted, or a cut tail;
//! - [`layer`]: the gRPC side (a tower layer that records every gRPC call).
//!
//! **Fail closed.** A request's answer waits until its record is on disk. When the trail
//! cannot be written, requests are refused with `AuditUnavailable`, readiness turns red, and
//! the writer retries every second; the first write that succeeds records the outage.

pub mod checkpoint;
pub mod config;
pub mod direct;
pub mod export;
pub mod layer;
pub mod record;
pub mod scope;
pub mod segments;
pub mod trail;
pub mod verify;
