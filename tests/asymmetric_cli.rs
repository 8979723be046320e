//! `hkms sign`, `verify`, `get-public-key`, `asymmetric-encrypt/-decrypt`,
//! `generate-data-key-pair`, `generate-mac`, `verify-mac`, and the new specs of `key create`,
//! against a real hkmsd on SoftHSM2, with the `openssl` CLI on the other side: what hkms
//! signs OpenSSL verifies, what OpenSSL encrypts hkms decrypts, data key pairs work in
//! OpenSSL. One daemon serves every check.

mod common;

use common::Daemon;
use serde_json::Value;
use std::process::{Command, Output};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A command line split at blanks (the paths of these tests have none).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `hkms LINE` with `stdin`, expected to succeed; its stdout.
fn ok(d: &Daemon, line: &str, stdin: &[u8]) -> Vec<u8> {
    let out = d.cli_stdin(&words(line), stdin);
    assert!(out.status.success(), "hkms {line}: {}", stderr(&out));
    out.stdout
}

fn text(d: &Daemon, line: &str) -> String {
    String::from_utf8(ok(d, line, b"")).unwrap()
}

fn json(d: &Daemon, line: &str) -> Value {
    d.cli_json(&words(line))
}

/// The error code of `hkms --json LINE`.
fn error(d: &Daemon, line: &str) -> String {
    d.cli_error(&words(line))
}

/// `hkms LINE` for a check that must come out false: exit status 1, "NOT valid" on stdout,
/// nothing on stderr.
fn not_valid(d: &Daemon, line: &str, stdin: &[u8]) {
    let out = d.cli_stdin(&words(line), stdin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "hkms {line}: {stdout}");
    assert!(stdout.contains("NOT valid"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// `openssl LINE`, expected to succeed; its stdout.
fn openssl(line: &str) -> String {
    let out = Command::new("openssl").args(words(line)).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {line}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn create(d: &Daemon, spec: &str, usage: Option<&str>) -> String {
    let usage_arg = usage
        .map(|u| format!("--key-usage {u}"))
        .unwrap_or_default();
    let m = json(d, &format!("key create --key-spec {spec} {usage_arg}"))["KeyMetadata"].clone();
    assert_eq!(s(&m["KeySpec"]), spec, "{m}");
    let default_usage = match spec {
        s if s.starts_with("EC_") => "SIGN/VERIFY",
        s if s.starts_with("HMAC_") => "GENERATE/VERIFY_MAC",
        _ => "ENCRYPT/DECRYPT",
    };
    assert_eq!(s(&m["KeyUsage"]), usage.unwrap_or(default_usage), "{m}");
    s(&m["KeyId"])
}

/// The key's public key, written by `hkms get-public-key --out`; printed, it is the same.
fn public_pem(d: &Daemon, key: &str) -> String {
    let pem = d.path(&format!("{key}.pem")).display().to_string();
    let said = text(d, &format!("get-public-key --key-id {key} --out {pem}"));
    assert!(said.contains("written to"), "{said}");
    let printed = text(d, &format!("get-public-key --key-id {key}"));
    assert_eq!(printed, std::fs::read_to_string(&pem).unwrap());
    pem
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[test]
fn help_explains_algorithms_exit_status_and_new_specs() {
    let help = common::hkms_help;
    let sign = help(&["sign", "--help"]);
    for word in [
        "RSA_PSS_SHA_256",
        "secp256k1",
        "DIGEST",
        "openssl dgst",
        "Examples:",
    ] {
        assert!(sign.contains(word), "sign --help lacks {word}: {sign}");
    }
    for cmd in ["verify", "verify-mac"] {
        let h = help(&[cmd, "--help"]);
        assert!(h.contains("exits 1 when it is not valid"), "{h}");
    }
    let decrypt = help(&["asymmetric-decrypt", "--help"]);
    assert!(decrypt.contains("UnsupportedAlgorithm") && decrypt.contains("rsa_oaep_md:sha1"));
    let create = help(&["key", "create", "--help"]);
    for word in [
        "RSA_2048",
        "EC_P256K",
        "HMAC_SHA_512",
        "SIGN/VERIFY",
        "GENERATE/VERIFY_MAC",
    ] {
        assert!(create.contains(word), "key create --help lacks {word}");
    }
    for cmd in [
        "get-public-key",
        "asymmetric-encrypt",
        "generate-data-key-pair",
        "generate-mac",
    ] {
        assert!(help(&[cmd, "--help"]).contains("Examples:"), "{cmd}");
    }
}

#[test]
fn the_cli_signs_encrypts_and_macs_with_openssl_on_the_other_side() {
    let d = Daemon::initialised(1);
    let dir = d.dir.path().display().to_string();
    let rsa = create(&d, "RSA_2048", Some("SIGN/VERIFY"));
    let p256 = create(&d, "EC_P256", None);
    let k256 = create(&d, "EC_P256K", Some("SIGN/VERIFY"));
    let rsa_enc = create(&d, "RSA_2048", Some("ENCRYPT/DECRYPT"));
    let hmac = create(&d, "HMAC_SHA_256", None);
    let aes = create(&d, "Aliyun_AES_256", None);

    // What the member can do.
    let status = text(&d, "hsm status");
    for word in [
        "key specs:",
        "EC_P256K",
        "algorithms:",
        "RSA_PSS_SHA_256",
        "HMAC_SHA_256",
    ] {
        assert!(status.contains(word), "hsm status lacks {word}: {status}");
    }
    let algorithms = json(&d, "hsm status")["Members"][0]["Algorithms"].clone();
    assert!(
        algorithms
            .as_array()
            .unwrap()
            .contains(&"RSAES_OAEP_SHA_1".into()),
        "{algorithms}"
    );

    // hkms signs a file and OpenSSL verifies it with the public key; so does hkms.
    let msg = format!("{dir}/message.txt");
    std::fs::write(&msg, b"release 1.2.3\n").unwrap();
    let pss = "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-1";
    for (key, alg, opts) in [
        (&rsa, "RSA_PSS_SHA_256", pss),
        (&rsa, "RSA_PKCS1_SHA_256", ""),
        (&p256, "ECDSA_SHA_256", ""),
        (&k256, "ECDSA_SHA_256", ""),
    ] {
        let pem = public_pem(&d, key);
        let sig = format!("{dir}/{alg}-{key}.sig");
        let signed = json(
            &d,
            &format!("sign --key-id {key} --algorithm {alg} --message-file {msg} --out {sig}"),
        );
        assert_eq!(s(&signed["Algorithm"]), alg, "{signed}");
        let checked = openssl(&format!(
            "dgst -sha256 -verify {pem} -signature {sig} {opts} {msg}"
        ));
        assert!(checked.contains("Verified OK"), "{alg}: {checked}");
        let said = text(
            &d,
            &format!(
                "verify --key-id {key} --algorithm {alg} --message-file {msg} \
                 --signature-file {sig}"
            ),
        );
        assert!(said.contains("Signature is valid"), "{said}");
    }

    // DIGEST: OpenSSL hashes, hkms signs the digest, `openssl pkeyutl -verify` checks it;
    // the same signature verifies in hkms against the whole message.
    let digest = format!("{dir}/message.sha256");
    openssl(&format!("dgst -sha256 -binary -out {digest} {msg}"));
    let sig = format!("{dir}/digest.sig");
    ok(
        &d,
        &format!(
            "sign --key-id {rsa} --algorithm RSA_PSS_SHA_256 --message-type DIGEST \
             --message-file {digest} --out {sig}"
        ),
        b"",
    );
    let checked = openssl(&format!(
        "pkeyutl -verify -pubin -inkey {dir}/{rsa}.pem -in {digest} -sigfile {sig} \
         -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:-1"
    ));
    assert!(
        checked.contains("Signature Verified Successfully"),
        "{checked}"
    );
    ok(
        &d,
        &format!(
            "verify --key-id {rsa} --algorithm RSA_PSS_SHA_256 --message-file {msg} \
             --signature-file {sig}"
        ),
        b"",
    );

    // Messages from stdin, signatures as base64; another message is NOT valid (exit 1),
    // in text and in JSON; two inputs cannot both be stdin.
    let sig = String::from_utf8(ok(
        &d,
        &format!("sign --key-id {p256} --algorithm ECDSA_SHA_256"),
        b"from stdin",
    ))
    .unwrap();
    let verify = format!(
        "verify --key-id {p256} --algorithm ECDSA_SHA_256 --signature {}",
        sig.trim()
    );
    ok(&d, &verify, b"from stdin");
    not_valid(&d, &verify, b"from stdiN");
    let out = d.cli(&words(&format!("--json {verify} --message other")));
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["Value"].as_bool(), s(&v["KeyId"])),
        (Some(false), p256.clone())
    );
    let both = format!(
        "verify --key-id {p256} --algorithm ECDSA_SHA_256 --message-file - --signature-file -"
    );
    assert_eq!(error(&d, &both), "InvalidParameter");

    // Data key pairs: OpenSSL signs with the private key and verifies with the public key
    // (PEM files; DER from --json); the encrypted private key decrypts to the same file; a
    // master key does not take the pair's signature.
    let (public, private, sealed) = (
        format!("{dir}/pair.pub"),
        format!("{dir}/pair.key"),
        format!("{dir}/pair.enc"),
    );
    ok(
        &d,
        &format!(
            "generate-data-key-pair --key-id {aes} --key-pair-spec EC_P256 --aad app=orders \
             --public-key-out {public} --private-key-out {private} \
             --private-key-ciphertext-out {sealed}"
        ),
        b"",
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&private).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let pair_sig = format!("{dir}/pair.sig");
    openssl(&format!(
        "dgst -sha256 -sign {private} -out {pair_sig} {msg}"
    ));
    let checked = openssl(&format!(
        "dgst -sha256 -verify {public} -signature {pair_sig} {msg}"
    ));
    assert!(checked.contains("Verified OK"), "{checked}");
    let blob = b64(&std::fs::read(&sealed).unwrap());
    let back = ok(
        &d,
        &format!("decrypt --ciphertext-blob {blob} --aad app=orders"),
        b"",
    );
    assert_eq!(back, std::fs::read(&private).unwrap());
    not_valid(
        &d,
        &format!(
            "verify --key-id {p256} --algorithm ECDSA_SHA_256 --message-file {msg} \
             --signature-file {pair_sig}"
        ),
        b"",
    );
    let der = json(
        &d,
        &format!("generate-data-key-pair --key-id {aes} --key-pair-spec RSA_2048 --key-format DER"),
    );
    let (der_key, der_pub) = (format!("{dir}/rsa.key.der"), format!("{dir}/rsa.pub.der"));
    std::fs::write(&der_key, unb64(&der["PrivateKeyPlaintext"])).unwrap();
    std::fs::write(&der_pub, unb64(&der["PublicKey"])).unwrap();
    openssl(&format!(
        "dgst -sha256 -sign {der_key} -keyform DER -out {pair_sig} {msg}"
    ));
    let checked = openssl(&format!(
        "dgst -sha256 -verify {der_pub} -keyform DER -signature {pair_sig} {msg}"
    ));
    assert!(checked.contains("Verified OK"), "{checked}");
    let without = json(
        &d,
        &format!(
            "generate-data-key-pair-without-plaintext --key-id {aes} --key-pair-spec EC_P256K"
        ),
    );
    assert!(without.get("PrivateKeyPlaintext").is_none(), "{without}");
    assert!(
        !s(&without["PrivateKeyCiphertextBlob"]).is_empty(),
        "{without}"
    );

    // RSA-OAEP: what OpenSSL encrypts (SHA-1) hkms decrypts, from a file or stdin; hkms
    // encrypts and decrypts; SHA-256 is beyond SoftHSM2, so hkmsd neither decrypts nor
    // encrypts with it.
    let enc_pem = public_pem(&d, &rsa_enc);
    let (secret, ct) = (format!("{dir}/secret.txt"), format!("{dir}/secret.bin"));
    std::fs::write(&secret, b"db password: hunter2").unwrap();
    openssl(&format!(
        "pkeyutl -encrypt -pubin -inkey {enc_pem} -in {secret} -out {ct} \
         -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1"
    ));
    let decrypt = format!("asymmetric-decrypt --key-id {rsa_enc} --algorithm");
    let plain = ok(
        &d,
        &format!("{decrypt} RSAES_OAEP_SHA_1 --ciphertext-blob-file {ct}"),
        b"",
    );
    assert_eq!(plain, b"db password: hunter2");
    let ct_bytes = std::fs::read(&ct).unwrap();
    let piped = ok(
        &d,
        &format!("{decrypt} RSAES_OAEP_SHA_1 --ciphertext-blob-file -"),
        &ct_bytes,
    );
    assert_eq!(piped, plain);
    let encrypt = format!("asymmetric-encrypt --key-id {rsa_enc} --algorithm");
    let ct1 = text(&d, &format!("{encrypt} RSAES_OAEP_SHA_1 --plaintext short"));
    let short = format!("{dir}/short.txt");
    ok(
        &d,
        &format!(
            "{decrypt} RSAES_OAEP_SHA_1 --ciphertext-blob {} --out {short}",
            ct1.trim()
        ),
        b"",
    );
    assert_eq!(std::fs::read(&short).unwrap(), b"short");
    let ct256 = format!("{dir}/secret.sha256.bin");
    openssl(&format!(
        "pkeyutl -encrypt -pubin -inkey {enc_pem} -in {secret} -out {ct256} \
         -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256"
    ));
    let line = format!("{decrypt} RSAES_OAEP_SHA_256 --ciphertext-blob-file {ct256}");
    assert_eq!(error(&d, &line), "UnsupportedAlgorithm");
    let line = format!("{encrypt} RSAES_OAEP_SHA_256 --plaintext short");
    assert_eq!(error(&d, &line), "UnsupportedAlgorithm");

    // HMAC: a MAC verifies, with the message from stdin or an argument; a wrong MAC or
    // message is NOT valid.
    let mac_file = format!("{dir}/payload.mac");
    ok(
        &d,
        &format!("generate-mac --key-id {hmac} --message payload --out {mac_file}"),
        b"",
    );
    let mac_bytes = std::fs::read(&mac_file).unwrap();
    assert_eq!(mac_bytes.len(), 32);
    let mac = json(
        &d,
        &format!("generate-mac --key-id {hmac} --message payload"),
    );
    assert_eq!(s(&mac["Algorithm"]), "HMAC_SHA_256");
    assert_eq!(unb64(&mac["Mac"]), mac_bytes);
    let by_file = format!("verify-mac --key-id {hmac} --mac-file {mac_file}");
    let said = String::from_utf8(ok(&d, &by_file, b"payload")).unwrap();
    assert!(said.contains("MAC is valid"), "{said}");
    not_valid(&d, &by_file, b"payloaD");
    let by_arg = format!("verify-mac --key-id {hmac} --message payload --algorithm HMAC_SHA_256");
    ok(&d, &format!("{by_arg} --mac {}", s(&mac["Mac"])), b"");
    let mut wrong = mac_bytes.clone();
    wrong[0] ^= 1;
    not_valid(&d, &format!("{by_arg} --mac {}", b64(&wrong)), b"");

    // Names hkms does not offer reach hkmsd, which refuses them with stable codes.
    assert_eq!(
        error(&d, "key create --key-spec EC_SM2"),
        "UnsupportedKeySpec"
    );
    let line = format!("sign --key-id {p256} --algorithm SM2DSA --message m");
    assert_eq!(error(&d, &line), "UnsupportedAlgorithm");

    // Keys used for what they are not: stable codes.
    let line = format!("sign --key-id {rsa_enc} --algorithm RSA_PSS_SHA_256 --message m");
    assert_eq!(error(&d, &line), "IncorrectKeyUsage");
    let line = format!("generate-mac --key-id {rsa} --message m");
    assert_eq!(error(&d, &line), "IncorrectKeyUsage");
    let line = format!("encrypt --key-id {hmac} --plaintext m");
    assert_eq!(error(&d, &line), "IncorrectKeyUsage");
}
