//! `hkms ca`: the instance CA that certifies the gateway's endpoints.
//!
//! Two levels: a root CA and an intermediate CA that issues the gateway's certificates.
//! Clients trust `PrivateKmsCA_<instance>.pem` (the root, then the intermediate), which
//! `hkms ca export` writes.
//!
//! Where the CA private keys live:
//! - the **root key** is generated here, signs the intermediate once, and is written only to
//!   the file the operator names (`--root-key-out`, created with mode 0400, optionally
//!   passphrase-encrypted). It is meant to go offline: it is needed again only to issue a
//!   new intermediate, years later. It never enters the CA directory nor hkmsd.
//! - the **intermediate key** is kept in the CA directory only encrypted by hkmsd
//!   (AES-256-GCM inside an HSM) under a customer master key made for it, with the
//!   instance id as AAD. Issuing a gateway certificate asks hkmsd to decrypt it, which only
//!   an operator may; the plaintext key lives in this process's memory for the signature
//!   and is wiped. A copy of the CA directory, or a compromised gateway host, therefore
//!   yields no CA key.
//! - the **gateway's key** is the only CA-issued private key on the gateway host (mode
//!   0600); it is renewed by issuing a new pair over the old files (the gateway reloads
//!   them without a restart). A gateway on another host than hkmsd also holds a **gateway
//!   client key** (`issue-gateway-client`): its certificate is for TLS client use only and
//!   carries the gateway marker that hkmsd's TCP listener requires
//!   ([`crate::authn::tls::GATEWAY_CLIENT_OU`]); endpoint certificates never do, so a
//!   stolen endpoint key cannot relay requests to hkmsd.

use super::access::Printed;
use crate::client::Client;
use crate::error::KmsError;
use crate::proto::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Subcommand;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use serde_json::json;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tonic::Status;
use zeroize::Zeroizing;

/// File names inside the CA directory.
pub const ROOT_CERT: &str = "root.pem";
pub const INTERMEDIATE_CERT: &str = "intermediate.pem";
pub const INTERMEDIATE_KEY: &str = "intermediate-key.json";

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the instance CA: a root and an intermediate CA.
    ///
    /// The root key is written only to --root-key-out (keep it offline); the intermediate
    /// key is stored in DIR encrypted by hkmsd under a new customer master key.
    ///
    /// Example: hkms ca init --dir /etc/hkms/ca --root-key-out /media/usb/hkms-root.key
    Init {
        /// CA directory (certificates and the encrypted intermediate key).
        #[arg(long, default_value = "/etc/hkms/ca")]
        dir: PathBuf,
        /// Where to write the root private key (PEM, mode 0400; must not exist yet).
        #[arg(long)]
        root_key_out: PathBuf,
        /// Encrypt the root key file (AES-256) with the passphrase in this file.
        #[arg(long)]
        root_key_passphrase_file: Option<PathBuf>,
        /// Validity of the root certificate, in days.
        #[arg(long, default_value_t = 3650)]
        root_days: u32,
        /// Validity of the intermediate certificate, in days.
        #[arg(long, default_value_t = 1825)]
        intermediate_days: u32,
    },
    /// Issue (or renew) the gateway's certificate for the endpoint's DNS names and IPs.
    ///
    /// The same command issues hkmsd's own server certificate for its TCP listener
    /// (`[listen] tls_cert` / `tls_key`), with hkmsd's host names.
    ///
    /// Writes the key (mode 0600) and the certificate chain (gateway, then intermediate)
    /// by atomic replacement; a running gateway picks them up on SIGHUP or within its
    /// reload interval, without dropping connections.
    ///
    /// Example: hkms ca issue-gateway --dns kms.example.internal --ip 10.0.0.5
    ///   --cert-out /etc/hkms/gateway/gateway.pem --key-out /etc/hkms/gateway/gateway.key
    IssueGateway {
        #[arg(long, default_value = "/etc/hkms/ca")]
        dir: PathBuf,
        /// DNS names of the endpoint (subjectAltName), comma separated.
        #[arg(long, value_delimiter = ',')]
        dns: Vec<String>,
        /// IP addresses of the endpoint (subjectAltName), comma separated.
        #[arg(long, value_delimiter = ',')]
        ip: Vec<IpAddr>,
        /// Certificate chain output (PEM).
        #[arg(long)]
        cert_out: PathBuf,
        /// Private key output (PEM, mode 0600).
        #[arg(long)]
        key_out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 397)]
        days: u32,
    },
    /// Issue (or renew) a gateway *client* certificate, for a gateway that reaches hkmsd
    /// over TCP from another host (hkms-gateway `[hkmsd] client_cert` / `client_key`).
    ///
    /// The certificate is for TLS client use only (extended key usage clientAuth) and is
    /// marked as a gateway's (subject OU "hkms gateway client"); hkmsd accepts it when it
    /// chains to its `[listen] gateway_ca` bundle, and then lets the peer relay signed
    /// application requests, nothing else. It is kept apart from the endpoint (server)
    /// certificate so that an endpoint certificate never works as a relay credential and
    /// each can be renewed or withdrawn on its own.
    ///
    /// Example: hkms ca issue-gateway-client --name gw-1
    ///   --cert-out /etc/hkms/gateway/hkmsd-client.pem --key-out /etc/hkms/gateway/hkmsd-client.key
    IssueGatewayClient {
        #[arg(long, default_value = "/etc/hkms/ca")]
        dir: PathBuf,
        /// Name of the gateway (the certificate's common name, shown in hkmsd's logs).
        #[arg(long)]
        name: String,
        /// Certificate chain output (PEM: certificate, then intermediate).
        #[arg(long)]
        cert_out: PathBuf,
        /// Private key output (PEM, mode 0600).
        #[arg(long)]
        key_out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 397)]
        days: u32,
    },
    /// Write the CA bundle for clients: PrivateKmsCA_<instance>.pem (root, then
    /// intermediate). Give it to the SDKs as ca_file_path / caFilePath / CaFilePath.
    Export {
        #[arg(long, default_value = "/etc/hkms/ca")]
        dir: PathBuf,
        /// Directory to write the bundle to.
        #[arg(long, default_value = ".")]
        output_dir: PathBuf,
    },
}

fn usage(message: impl Into<String>) -> Status {
    KmsError::invalid(message).into()
}

fn ossl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> Status + '_ {
    move |e| KmsError::new(crate::error::ErrorCode::Internal, format!("{what}: {e}")).into()
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Status + '_ {
    move |e| usage(format!("{}: {e}", path.display()))
}

/// Writes `data` to a new file (never replacing one) with `mode`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Status> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(data).and_then(|_| f.sync_all()))
        .map_err(io(path))
}

/// Replaces `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Status> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path
        .file_name()
        .ok_or_else(|| usage(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, data, mode)?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn serial() -> Result<Asn1Integer, Status> {
    let mut bn = BigNum::new().map_err(ossl("serial"))?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(ossl("serial"))?;
    bn.to_asn1_integer().map_err(ossl("serial"))
}

fn rsa(bits: u32) -> Result<PKey<Private>, Status> {
    Rsa::generate(bits)
        .and_then(PKey::from_rsa)
        .map_err(ossl("key generation"))
}

/// What a certificate is for.
enum Profile<'a> {
    Ca {
        path_len: Option<u32>,
    },
    Server {
        dns: &'a [String],
        ip: &'a [IpAddr],
    },
    /// A gateway's client certificate towards hkmsd's TCP listener.
    GatewayClient,
}

fn certificate(
    subject_cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    days: u32,
    profile: Profile<'_>,
) -> Result<X509, Status> {
    let e = ossl("certificate");
    let mut name = X509NameBuilder::new().map_err(&e)?;
    name.append_entry_by_text("O", "hkms").map_err(&e)?;
    if let Profile::GatewayClient = profile {
        name.append_entry_by_text("OU", crate::authn::tls::GATEWAY_CLIENT_OU)
            .map_err(&e)?;
    }
    name.append_entry_by_text("CN", subject_cn).map_err(&e)?;
    let name = name.build();
    let mut b = X509Builder::new().map_err(&e)?;
    b.set_version(2).map_err(&e)?;
    let serial = serial()?;
    b.set_serial_number(&serial).map_err(&e)?;
    b.set_subject_name(&name).map_err(&e)?;
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .map_err(&e)?;
    b.set_pubkey(key).map_err(&e)?;
    // A little backdating absorbs clock differences between hosts.
    let not_before =
        Asn1Time::from_unix(crate::access::clientkey::now_unix() - 3600).map_err(&e)?;
    b.set_not_before(&not_before).map_err(&e)?;
    let not_after = Asn1Time::days_from_now(days).map_err(&e)?;
    b.set_not_after(&not_after).map_err(&e)?;
    match &profile {
        Profile::Ca { path_len } => {
            let mut bc = BasicConstraints::new();
            bc.critical().ca();
            if let Some(n) = path_len {
                bc.pathlen(*n);
            }
            b.append_extension(bc.build().map_err(&e)?).map_err(&e)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .map_err(&e)?,
            )
            .map_err(&e)?;
        }
        Profile::Server { dns, ip } => {
            b.append_extension(BasicConstraints::new().critical().build().map_err(&e)?)
                .map_err(&e)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()
                    .map_err(&e)?,
            )
            .map_err(&e)?;
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().map_err(&e)?)
                .map_err(&e)?;
            let mut san = SubjectAlternativeName::new();
            for d in dns.iter() {
                san.dns(d);
            }
            for i in ip.iter() {
                san.ip(&i.to_string());
            }
            let ctx = b.x509v3_context(issuer.map(|(c, _)| &**c), None);
            let san = san.build(&ctx).map_err(&e)?;
            b.append_extension(san).map_err(&e)?;
        }
        Profile::GatewayClient => {
            b.append_extension(BasicConstraints::new().critical().build().map_err(&e)?)
                .map_err(&e)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .build()
                    .map_err(&e)?,
            )
            .map_err(&e)?;
            b.append_extension(ExtendedKeyUsage::new().client_auth().build().map_err(&e)?)
                .map_err(&e)?;
        }
    }
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
        .map_err(&e)?;
    b.append_extension(ski).map_err(&e)?;
    if let Some((issuer_cert, _)) = issuer {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(issuer_cert), None))
            .map_err(&e)?;
        b.append_extension(aki).map_err(&e)?;
    }
    let signer = issuer.map_or(key, |(_, k)| k);
    b.sign(signer, MessageDigest::sha256()).map_err(&e)?;
    Ok(b.build())
}

async fn instance_id(c: &mut Client) -> Result<String, Status> {
    let s = c.admin.get_status(GetStatusRequest {}).await?.into_inner();
    if !s.initialized {
        return Err(usage(
            "the instance is not initialised; run `hkms init` first",
        ));
    }
    Ok(s.instance_id)
}

fn aad(instance: &str) -> Vec<u8> {
    format!("hkms instance CA intermediate key\0{instance}").into_bytes()
}

fn read_cert(path: &Path) -> Result<X509, Status> {
    let pem = std::fs::read(path).map_err(io(path))?;
    X509::from_pem(&pem).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Makes sure the key sealing the intermediate key is internal (no application can use it).
/// A CA made by an earlier release sealed it under an ordinary key: that key is marked
/// internal now, once.
async fn ensure_internal(c: &mut Client, key_id: &str) -> Result<(), Status> {
    let meta = c
        .keys
        .describe_key(DescribeKeyRequest {
            key_id: key_id.to_owned(),
        })
        .await?
        .into_inner()
        .key_metadata
        .unwrap_or_default();
    if !meta.internal {
        c.keys
            .mark_key_internal(MarkKeyInternalRequest {
                key_id: key_id.to_owned(),
            })
            .await?;
        super::err(&format!("note: key {key_id}, which seals the CA's intermediate key, is now internal: no application can use it"));
    }
    Ok(())
}

/// The intermediate key, decrypted by hkmsd (operators only).
async fn intermediate_key(
    c: &mut Client,
    dir: &Path,
    instance: &str,
) -> Result<PKey<Private>, Status> {
    let path = dir.join(INTERMEDIATE_KEY);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let blob = v["CiphertextBlob"]
        .as_str()
        .and_then(|b| B64.decode(b).ok())
        .ok_or_else(|| usage(format!("{} has no CiphertextBlob", path.display())))?;
    if let Some(key_id) = v["KeyId"].as_str() {
        ensure_internal(c, key_id).await?;
    }
    let der = Zeroizing::new(
        c.crypto
            .decrypt(DecryptRequest {
                ciphertext_blob: blob,
                aad: aad(instance),
            })
            .await?
            .into_inner()
            .plaintext,
    );
    PKey::private_key_from_der(&der).map_err(ossl("intermediate key"))
}

pub async fn ca(c: &mut Client, cmd: &CaCommand) -> Result<Printed, Status> {
    match cmd {
        CaCommand::Init {
            dir,
            root_key_out,
            root_key_passphrase_file,
            root_days,
            intermediate_days,
        } => {
            if dir.join(ROOT_CERT).exists() {
                return Err(usage(format!(
                    "{} exists: this directory holds a CA already",
                    dir.join(ROOT_CERT).display()
                )));
            }
            if root_key_out.exists() {
                return Err(usage(format!("{} exists", root_key_out.display())));
            }
            if root_key_out.parent().map(|p| p.canonicalize().ok()) == Some(dir.canonicalize().ok())
                && dir.exists()
            {
                return Err(usage(
                    "keep the root key out of the CA directory (--root-key-out)",
                ));
            }
            let passphrase = match root_key_passphrase_file {
                Some(p) => Some(Zeroizing::new(
                    std::fs::read_to_string(p)
                        .map_err(io(p))?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                )),
                None => None,
            };
            let instance = instance_id(c).await?;
            let root_key = rsa(3072)?;
            let root = certificate(
                &format!("hkms {instance} Root CA"),
                &root_key,
                None,
                *root_days,
                Profile::Ca { path_len: None },
            )?;
            let int_key = rsa(3072)?;
            let int = certificate(
                &format!("hkms {instance} Intermediate CA"),
                &int_key,
                Some((&root, &root_key)),
                *intermediate_days,
                Profile::Ca { path_len: Some(0) },
            )?;
            // The intermediate key, encrypted by hkmsd under a key of its own.
            let cmk = c
                .keys
                .create_key(CreateKeyRequest {
                    key_spec: String::new(),
                    key_usage: String::new(),
                    description: format!("hkms instance CA: intermediate key of {instance}"),
                    internal: true,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .key_metadata
                .unwrap_or_default()
                .key_id;
            let der = Zeroizing::new(
                int_key
                    .private_key_to_pkcs8()
                    .map_err(ossl("intermediate key"))?,
            );
            let sealed = c
                .crypto
                .encrypt(EncryptRequest {
                    key_id: cmk.clone(),
                    plaintext: der.to_vec(),
                    aad: aad(&instance),
                })
                .await?
                .into_inner();
            let root_pem = Zeroizing::new(match &passphrase {
                Some(p) => root_key
                    .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), p.as_bytes())
                    .map_err(ossl("root key"))?,
                None => root_key
                    .private_key_to_pem_pkcs8()
                    .map_err(ossl("root key"))?,
            });
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            write_new(root_key_out, &root_pem, 0o400)?;
            let key_record = json!({
                "KeyId": cmk,
                "CiphertextBlob": B64.encode(&sealed.ciphertext_blob),
                "Instance": instance,
            });
            write_atomic(
                &dir.join(INTERMEDIATE_KEY),
                serde_json::to_string_pretty(&key_record)
                    .unwrap_or_default()
                    .as_bytes(),
                0o600,
            )?;
            write_atomic(
                &dir.join(INTERMEDIATE_CERT),
                &int.to_pem().map_err(ossl("pem"))?,
                0o644,
            )?;
            write_atomic(
                &dir.join(ROOT_CERT),
                &root.to_pem().map_err(ossl("pem"))?,
                0o644,
            )?;
            Ok((
                format!(
                    "Instance CA created in {}.\nRoot key written to {} only: move it offline \
                     (it is needed only to issue a new intermediate).\nIntermediate key stored \
                     encrypted under key {cmk}.",
                    dir.display(),
                    root_key_out.display()
                ),
                json!({
                    "Dir": dir, "RootKeyFile": root_key_out, "IntermediateKeyId": cmk,
                    "Instance": instance,
                }),
            ))
        }
        CaCommand::IssueGateway {
            dir,
            dns,
            ip,
            cert_out,
            key_out,
            days,
        } => {
            if dns.is_empty() && ip.is_empty() {
                return Err(usage("give the endpoint's names: --dns and/or --ip"));
            }
            let instance = instance_id(c).await?;
            let int = read_cert(&dir.join(INTERMEDIATE_CERT))?;
            let int_key = intermediate_key(c, dir, &instance).await?;
            let key = rsa(2048)?;
            let cn = dns.first().cloned().unwrap_or_else(|| ip[0].to_string());
            let cert = certificate(
                &cn,
                &key,
                Some((&int, &int_key)),
                *days,
                Profile::Server { dns, ip },
            )?;
            let mut chain = cert.to_pem().map_err(ossl("pem"))?;
            chain.extend_from_slice(&int.to_pem().map_err(ossl("pem"))?);
            let key_pem = Zeroizing::new(key.private_key_to_pem_pkcs8().map_err(ossl("pem"))?);
            // Key first: a gateway that sees the new certificate finds its key in place.
            write_atomic(key_out, &key_pem, 0o600)?;
            write_atomic(cert_out, &chain, 0o644)?;
            let serial = cert
                .serial_number()
                .to_bn()
                .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
                .unwrap_or_default();
            let mut names = dns.clone();
            names.extend(ip.iter().map(IpAddr::to_string));
            Ok((
                format!(
                    "Gateway certificate {serial} for {} written to {} (key {}).\nA running \
                     gateway uses it after SIGHUP or its reload interval.",
                    names.join(", "),
                    cert_out.display(),
                    key_out.display()
                ),
                json!({
                    "CertificateFile": cert_out, "KeyFile": key_out, "Serial": serial,
                    "DnsNames": dns, "IpAddresses": ip,
                }),
            ))
        }
        CaCommand::IssueGatewayClient {
            dir,
            name,
            cert_out,
            key_out,
            days,
        } => {
            if name.trim().is_empty() || name.len() > 64 {
                return Err(usage("--name must be 1..64 characters"));
            }
            let instance = instance_id(c).await?;
            let int = read_cert(&dir.join(INTERMEDIATE_CERT))?;
            let int_key = intermediate_key(c, dir, &instance).await?;
            let key = rsa(2048)?;
            let cert = certificate(
                name,
                &key,
                Some((&int, &int_key)),
                *days,
                Profile::GatewayClient,
            )?;
            let mut chain = cert.to_pem().map_err(ossl("pem"))?;
            chain.extend_from_slice(&int.to_pem().map_err(ossl("pem"))?);
            let key_pem = Zeroizing::new(key.private_key_to_pem_pkcs8().map_err(ossl("pem"))?);
            write_atomic(key_out, &key_pem, 0o600)?;
            write_atomic(cert_out, &chain, 0o644)?;
            let serial = cert
                .serial_number()
                .to_bn()
                .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
                .unwrap_or_default();
            Ok((
                format!(
                    "Gateway client certificate {serial} for {name} written to {} (key {}).\n\
                     hkmsd accepts it on its TCP listener when [listen] gateway_ca holds this \
                     instance CA's bundle.",
                    cert_out.display(),
                    key_out.display()
                ),
                json!({
                    "CertificateFile": cert_out, "KeyFile": key_out, "Serial": serial,
                    "Name": name,
                }),
            ))
        }
        CaCommand::Export { dir, output_dir } => {
            let instance = instance_id(c).await?;
            let root = read_cert(&dir.join(ROOT_CERT))?;
            let int = read_cert(&dir.join(INTERMEDIATE_CERT))?;
            let mut bundle = root.to_pem().map_err(ossl("pem"))?;
            bundle.extend_from_slice(&int.to_pem().map_err(ossl("pem"))?);
            let name = crate::cli::filename::id_component("instance id", &instance)?;
            let path = output_dir.join(format!("PrivateKmsCA_{name}.pem"));
            write_atomic(&path, &bundle, 0o644)?;
            Ok((
                format!("CA bundle written to {}", path.display()),
                json!({ "CaBundleFile": path, "Instance": instance }),
            ))
        }
    }
}
