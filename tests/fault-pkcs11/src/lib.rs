//! `hkms-fault-pkcs11`: a PKCS#11 v2.40 module for tests that forwards every
//! call to a real module (SoftHSM2 by default) and injects faults per token,
//! as commanded by control files in `$HKMS_FAULT_DIR`. See `README.md`.
//!
//! Built as a `cdylib` (`libhkms_fault_pkcs11.so`, the module itself) and
//! as an `rlib` whose safe helpers ([`control`], [`read_counters`]) let Rust
//! tests write control files, find the built module and read its counters.
//!
//! This crate is the FFI corner of the workspace: unsafe code is allowed
//! here (and only here), confined to the private `ffi` module
//! and commented at every use.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod control;
mod ffi;
pub mod mech;
pub mod rv;

pub use ffi::{read_counters, Counters};
