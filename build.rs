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
    grpc_methods(&protos)?;
    Ok(())
}

/// Writes `grpc_methods.rs`: every method of hkms's gRPC services as its path
/// (`/hkms.v1.<Service>/<Method>`), the label values metrics accept for gRPC operations.
fn grpc_methods(protos: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let mut methods = Vec::new();
    for p in protos.iter().filter(|p| p.starts_with("proto/hkms/v1/")) {
        let text = std::fs::read_to_string(p)?;
        let mut package = String::new();
        let mut service = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("package ") {
                package = rest.trim_end_matches(';').trim().to_owned();
            } else if let Some(rest) = line.strip_prefix("service ") {
                service = rest.trim_end_matches('{').trim().to_owned();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !service.is_empty() && !name.is_empty() {
                    methods.push(format!("/{package}.{service}/{name}"));
                }
            }
        }
    }
    methods.sort();
    methods.dedup();
    let mut out = String::from(
        "/// Every gRPC method of hkms's services, as `/package.Service/Method`.\n\
         pub const GRPC_METHODS: &[&str] = &[\n",
    );
    for m in &methods {
        out.push_str(&format!("    {m:?},\n"));
    }
    out.push_str("];\n");
    let dir = std::env::var("OUT_DIR")?;
    std::fs::write(std::path::Path::new(&dir).join("grpc_methods.rs"), out)?;
    Ok(())
}
