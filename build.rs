//! Generates the gRPC API (`proto/hkms/v1`) with tonic and prost.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // A protoc shipped in a crate, so building needs no system package.
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let protos = [
        "proto/hkms/v1/keys.proto",
        "proto/hkms/v1/crypto.proto",
        "proto/hkms/v1/asymmetric.proto",
        "proto/hkms/v1/admin.proto",
        "proto/hkms/v1/store.proto",
        "proto/hkms/v1/access.proto",
        "proto/hkms/v1/application.proto",
        "proto/hkms/v1/secrets.proto",
        "proto/hkms/v1/audit.proto",
        "proto/kms_instance/api.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
