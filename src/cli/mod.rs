//! Command-line logic shared by the `hkms` binary: commands that have grown beyond a few
//! lines live here, as clap subcommands with their handlers.

pub mod aap;
pub mod access;
pub mod alias;
pub mod ca;
pub mod client_key;
pub mod filename;
pub mod hsm;
pub mod instance;
pub mod jobs;
pub mod key;
pub mod key_args;
pub mod key_import;
pub mod key_show;
pub mod network_rule;
pub mod policy;
pub mod resource;
