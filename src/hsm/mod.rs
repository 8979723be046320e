//! The HSM layer: PKCS#11 libraries, members, sessions, the pool, and the mechanisms used.
//!
//! Nothing outside this module makes PKCS#11 calls.

pub mod crypto;
pub mod domain;
pub mod error;
mod ffi;
pub mod member;
pub mod module;
pub mod pool;

pub use error::{Action, HsmError};
pub use member::{Health, Member, ModeKeys};
pub use pool::Pool;
