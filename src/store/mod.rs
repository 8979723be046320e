//! Persistent state of an instance: the instance record, key metadata, key tokens, access
//! records and secrets.
//!
//! The store never sees key material in plaintext, only key tokens wrapped under the domain
//! key. [`Store`] is the seam where a replicated database can replace sled later.

pub mod access;
mod error;
mod interface;
pub mod lifecycle;
pub mod named;
pub mod records;
pub mod secrets;
mod sled_store;

pub use access::AccessStore;
pub use error::{StoreError, SCHEMA_VERSION};
pub use interface::Store;
pub use lifecycle::{LifecycleStore, TokenChange};
pub use named::NamedStore;
pub use secrets::{SecretChange, SecretStore};
pub use sled_store::SledStore;
