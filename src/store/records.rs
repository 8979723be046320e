//! Records as persisted (prost messages, see `proto/hkms/v1/store.proto`).
#![allow(missing_docs, missing_debug_implementations)]

include!(concat!(env!("OUT_DIR"), "/hkms.v1.store.rs"));
