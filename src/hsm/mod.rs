//! The HSM layer: PKCS#11 libraries, members, sessions, the pool, and the mechanisms used.
//!
//! Nothing outside this module makes PKCS#11 calls.

pub mod capability;
pub mod crypto;
pub mod domain;
pub mod error;
mod ffi;
pub mod member;
pub mod module;
mod objects;
pub mod pool;
pub mod profile;
pub mod session;

pub use error::{Action, HsmError};
pub use member::{Health, Member};
pub use objects::{ModeKeys, UnwrapTemplate, VersionKeys};
pub use pool::Pool;
