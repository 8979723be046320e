//! Command-line logic shared by the `hkms` binary: commands that have grown beyond a few
//! lines live here, as clap subcommands with their handlers.

pub mod aap;
pub mod aap_quick;
pub mod access;
pub mod alias;
pub mod api_key;
pub mod asymmetric_cipher;
pub mod audit;
pub mod ca;
pub mod certify;
pub mod client_key;
pub mod client_key_new;
pub mod client_key_rotate;
pub mod data_io;
pub mod data_key_pair;
pub mod filename;
pub mod hsm;
pub mod instance;
pub mod jobs;
pub mod key;
pub mod key_args;
pub mod key_import;
pub mod key_show;
pub mod mac;
pub mod network_rule;
pub mod policy;
pub mod public_key;
pub mod resource;
pub mod secret;
pub mod secret_manage;
pub mod secret_policy;
pub mod signature;
