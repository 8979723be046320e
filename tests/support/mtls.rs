//! hkmsd's TCP listener with mutual TLS for tests: an instance that listens on it, and the
//! PEM files an application makes from its ClientKey to call the gRPC API directly.
#![allow(dead_code)]

use crate::common::MemberSpec;
use crate::support::{free_port, ClientKeyFiles, Instance};
use hkms::access::clientkey;
use hkms::client::TlsClientFiles;

/// An instance whose hkmsd also listens on TCP with a certificate of the instance CA, and
/// accepts gateway certificates of that CA.
pub fn instance_on_tcp() -> (Instance, u16) {
    let mut inst = Instance::new();
    let cert = inst.d.path("hkmsd-tls/hkmsd.pem");
    let key = inst.d.path("hkmsd-tls/hkmsd.key");
    inst.d.cli_json(&[
        "ca",
        "issue-gateway",
        "--dir",
        inst.ca_dir.to_str().unwrap(),
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--cert-out",
        cert.to_str().unwrap(),
        "--key-out",
        key.to_str().unwrap(),
    ]);
    let port = free_port();
    inst.d.listen = format!(
        "tcp = \"127.0.0.1:{port}\"\ntls_cert = {cert:?}\ntls_key = {key:?}\ngateway_ca = {:?}\n",
        inst.bundle
    );
    inst.d.write_config(&[MemberSpec::softhsm("hsm-0", "m0")]);
    inst.d.restart();
    (inst, port)
}

pub fn endpoint(port: u16) -> String {
    format!("https://localhost:{port}")
}

/// The PEM key and certificate inside a ClientKey's PKCS#12, as an application extracts
/// them with its password.
pub fn client_key_pem(inst: &Instance, ck: &ClientKeyFiles) -> TlsClientFiles {
    let json = std::fs::read_to_string(&ck.file).unwrap();
    let password = std::fs::read_to_string(&ck.password_file).unwrap();
    let (id, key, cert) = clientkey::load(&json, password.trim_end()).unwrap();
    assert_eq!(id, ck.id);
    pem_files(inst, &id, &key, &cert)
}

pub fn pem_files(
    inst: &Instance,
    name: &str,
    key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
    cert: &openssl::x509::X509Ref,
) -> TlsClientFiles {
    let dir = inst.d.path("client-pem");
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsClientFiles {
        ca: inst.bundle.clone(),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&files.key, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    files
}
