//! `hkms network-rule`, `hkms policy`, `hkms aap` and `hkms client-key`: set up which
//! applications may use which keys and secrets, from where.
//!
//! The usual order: a network rule (optional), a policy that grants a role on resources,
//! an application access point (AAP) with up to three policies, then a ClientKey for the
//! AAP. `client-key create` makes the key pair here, on the operator's machine: the private
//! key goes only into the files it writes; hkmsd receives only the certificate.
//! `aap create --quick` does it all in one command for every key and secret
//! ([`super::aap_quick`]); `client-key rotate` changes an AAP's ClientKey, the earlier ones
//! retiring after an overlap ([`super::client_key_rotate`]).
//!
//! Each command lives in a module of its own ([`super::network_rule`], [`super::policy`],
//! [`super::aap`], [`super::client_key`]) and prints through [`super::resource`]; this module
//! gathers them under one name.

pub use super::aap::{aap, AapCommand};
pub use super::client_key::{client_key, expiry_warnings, ClientKeyCommand};
pub use super::client_key_new::CreateClientKey;
pub use super::network_rule::{network_rule, NetworkRuleCommand};
pub use super::policy::{policy, PolicyCommand};
pub use super::resource::Printed;
pub use crate::clock::{date_to_unix, rfc3339 as unix_to_rfc3339};
