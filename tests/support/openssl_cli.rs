//! The `openssl` command line, as the other side of hkms's signatures and ciphertexts.

use std::path::Path;
use std::process::Command;

/// Runs `openssl` with `args`: whether it succeeded, and what it printed.
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The hash of an algorithm name ending in 256, 384 or 512, as openssl names it.
pub fn hash_name(alg: &str) -> &'static str {
    match &alg[alg.len() - 3..] {
        "256" => "sha256",
        "384" => "sha384",
        _ => "sha512",
    }
}

/// Checks a signature with the openssl CLI: `dgst` over the message, or `pkeyutl` over the
/// digest.
pub fn openssl_verifies(
    dir: &Path,
    pem: &Path,
    alg: &str,
    message: &[u8],
    digest: bool,
    sig: &[u8],
) {
    let (msg, sig_file) = (dir.join("msg"), dir.join("sig"));
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&sig_file, sig).unwrap();
    let (pem, msg, sig_file) = (
        pem.to_str().unwrap(),
        msg.to_str().unwrap(),
        sig_file.to_str().unwrap(),
    );
    let md = hash_name(alg);
    let pss = alg.starts_with("RSA_PSS");
    let (ok, out) = if digest {
        let mut args = vec!["pkeyutl", "-verify", "-pubin", "-inkey", pem, "-in", msg];
        args.extend(["-sigfile", sig_file]);
        let md_opt = format!("digest:{md}");
        args.extend(["-pkeyopt", &md_opt]);
        if pss {
            args.extend([
                "-pkeyopt",
                "rsa_padding_mode:pss",
                "-pkeyopt",
                "rsa_pss_saltlen:digest",
            ]);
        }
        openssl(&args)
    } else {
        let md_flag = format!("-{md}");
        let mut args = vec!["dgst", &md_flag, "-verify", pem, "-signature", sig_file];
        if pss {
            args.extend([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:-1",
            ]);
        }
        args.push(msg);
        openssl(&args)
    };
    assert!(
        ok && (out.contains("Verified") || out.contains("Success")),
        "{alg} digest={digest}: {out}"
    );
}
