//! Changing an AAP's ClientKey before it expires (`hkms client-key rotate`), end to end: a
//! real hkmsd on SoftHSM2 tokens with the test clock, the CLI, and signed requests through a
//! real gateway. The earlier key works during the overlap and is refused after it; the new
//! key works throughout.

#[path = "support/clock.rs"]
mod clock;
mod common;
#[path = "support/gateway.rs"]
mod support;

use clock::TestClock;
use hkms::instance_api as api;
use prost::Message;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{connect, post, ClientKeyFiles, GatewayProc, Instance};

const DAY: i64 = 86_400;

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// A signed Encrypt of `key` with `ck`, dated by hkmsd's (moved) clock, through the gateway.
fn encrypt(
    inst: &Instance,
    gw: &GatewayProc,
    clock: &TestClock,
    ck: &ClientKeyFiles,
    key: &str,
) -> Result<(), (u16, String)> {
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: b"invoice".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let headers = ck.signed_at("Encrypt", &body, clock.now());
    let mut conn = connect(gw.port, &inst.bundle);
    let a = post(&mut conn, "/", &headers, &body);
    if a.status == 200 {
        Ok(())
    } else {
        Err(a.failure())
    }
}

/// `hkms client-key list --aap AAP` as JSON, by ClientKey id.
fn listed(inst: &Instance, aap: &str, id: &str) -> Value {
    let list = inst.d.cli_json(&["client-key", "list", "--aap", aap]);
    list["ClientKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["ClientKeyId"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
        .clone()
}

fn count(inst: &Instance, aap: &str) -> usize {
    inst.d.cli_json(&["client-key", "list", "--aap", aap])["ClientKeys"]
        .as_array()
        .unwrap()
        .len()
}

fn days_left(k: &Value) -> i64 {
    k["DaysLeft"].as_i64().unwrap()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A failed `hkms --json ARGS`: its code and message.
fn failure(inst: &Instance, args: &[&str]) -> (String, String) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = inst.d.cli(&all);
    assert!(!out.status.success(), "hkms {args:?} should fail");
    let e: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (s(&e["Code"]), s(&e["Message"]))
}

fn rotate_args<'a>(dir: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["client-key", "rotate", "--aap", "pay", "--output-dir", dir];
    args.extend_from_slice(more);
    args
}

#[test]
fn the_earlier_client_key_works_during_the_overlap_and_is_refused_after_it() {
    let clock = TestClock::default();
    let mut inst = Instance::new();
    let (k, v) = clock.env();
    inst.d.extra_env.push((k.to_owned(), v));
    inst.d.restart();
    let key = inst.create_key();
    let old = inst.app("pay", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    encrypt(&inst, &gw, &clock, &old, &key).unwrap();

    // Bad overlaps and impossible changes are refused before anything is made.
    let dir = inst.d.path("new");
    let d = dir.to_str().unwrap();
    for bad in ["91", "-1", "1000"] {
        let (code, message) = failure(&inst, &rotate_args(d, &["--overlap-days", bad]));
        assert_eq!(code, "InvalidParameter", "{bad}: {message}");
        assert!(message.contains("0 to 90"), "{bad}: {message}");
    }
    let (code, _) = failure(&inst, &rotate_args(d, &["--overlap-days", "a week"]));
    assert_eq!(code, "InvalidParameter");
    let (code, message) = failure(
        &inst,
        &rotate_args(d, &["--overlap-days", "30", "--validity-days", "20"]),
    );
    assert_eq!(code, "InvalidParameter");
    assert!(
        message.contains("when the earlier ones retire"),
        "{message}"
    );
    let (code, _) = failure(
        &inst,
        &["client-key", "rotate", "--aap", "nobody", "--output-dir", d],
    );
    assert_eq!(code, "ResourceNotFound");
    inst.d.cli_json(&[
        "aap",
        "create",
        "--name",
        "keyless",
        "--policies",
        "pay-policy",
    ]);
    let (code, message) = failure(
        &inst,
        &[
            "client-key",
            "rotate",
            "--aap",
            "keyless",
            "--output-dir",
            d,
        ],
    );
    assert_eq!(code, "InvalidParameter");
    assert!(message.contains("has no ClientKey to change"), "{message}");
    assert_eq!(count(&inst, "pay"), 1);
    assert_eq!(files_in(&dir), 0);
    assert!(listed(&inst, "pay", &old.id)["RetireTime"].is_null());

    // The change: a new key with its files, the old one retiring in 7 days.
    let out = inst.d.cli_json(&rotate_args(d, &["--overlap-days", "7"]));
    let ck = &out["ClientKey"];
    let new = ClientKeyFiles {
        id: s(&ck["ClientKeyId"]),
        file: PathBuf::from(s(&ck["ClientKeyFile"])),
        password_file: PathBuf::from(s(&ck["PasswordFile"])),
    };
    assert_eq!(new.file, dir.join(format!("clientKey_{}.json", new.id)));
    assert_eq!(
        new.password_file,
        dir.join(format!("clientKey_{}_Password.txt", new.id))
    );
    assert_eq!(out["OverlapDays"], 7);
    let earlier = out["EarlierClientKeys"].as_array().unwrap();
    assert_eq!(earlier.len(), 1, "{out}");
    assert_eq!(earlier[0]["ClientKeyId"], old.id.as_str());
    assert_eq!(earlier[0]["State"], "Retiring");
    assert_eq!(earlier[0]["RetireTime"], out["RetireTime"]);
    assert!(inst.d.log_text().contains("ClientKey retiring"));

    // Both are listed, with their days left; the old one with when it stops.
    let o = listed(&inst, "pay", &old.id);
    assert_eq!(o["State"], "Retiring", "{o}");
    assert!((6..=7).contains(&days_left(&o)), "{o}");
    assert_eq!(o["RetireTime"], out["RetireTime"]);
    let n = listed(&inst, "pay", &new.id);
    assert_eq!(n["State"], "Valid", "{n}");
    assert!((364..=366).contains(&days_left(&n)), "{n}");
    assert!(n["RetireTime"].is_null());
    let text =
        String::from_utf8(inst.d.cli(&["client-key", "list", "--aap", "pay"]).stdout).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("DAYS LEFT") && header.contains("RETIRES"),
        "{text}"
    );
    let old_line = text.lines().find(|l| l.contains(&old.id)).unwrap();
    assert!(
        old_line.contains(&s(&out["RetireTime"])) && old_line.contains("Retiring"),
        "{text}"
    );

    // During the overlap both keys work.
    encrypt(&inst, &gw, &clock, &old, &key).unwrap();
    encrypt(&inst, &gw, &clock, &new, &key).unwrap();
    clock.advance(6 * DAY);
    encrypt(&inst, &gw, &clock, &old, &key).unwrap();
    encrypt(&inst, &gw, &clock, &new, &key).unwrap();
    assert!((0..=1).contains(&days_left(&listed(&inst, "pay", &old.id))));

    // After it the old key is refused as an expired key is; the new one works on.
    clock.advance(2 * DAY);
    assert_eq!(
        encrypt(&inst, &gw, &clock, &old, &key),
        Err((401, "ClientKeyExpired".into()))
    );
    encrypt(&inst, &gw, &clock, &new, &key).unwrap();
    let o = listed(&inst, "pay", &old.id);
    assert_eq!(o["State"], "Retired", "{o}");
    assert!(days_left(&o) < 0, "{o}");
    let status = inst.d.cli_json(&["status"]);
    assert!(
        status["Warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| s(w).contains(&old.id) && s(w).contains("retired")),
        "{status}"
    );

    // A retirement hkmsd refuses after the new key was registered (its clock, 8 days ahead
    // of the CLI's, puts the retirement after the new key's expiry): the new key is deleted
    // again and its files removed.
    let later = inst.d.path("later");
    let l = later.to_str().unwrap();
    let (code, message) = failure(
        &inst,
        &[
            "client-key",
            "rotate",
            "--aap",
            "pay",
            "--output-dir",
            l,
            "--validity-days",
            "10",
            "--overlap-days",
            "5",
        ],
    );
    assert_eq!(code, "InvalidParameter", "{message}");
    assert!(
        message.contains("without a working key")
            && message.contains("deleted again and its files removed"),
        "{message}"
    );
    assert_eq!(count(&inst, "pay"), 2);
    assert_eq!(files_in(&later), 0);

    // Overlap 0: the earlier keys are refused at once.
    let now_dir = inst.d.path("now");
    let out = inst.d.cli_json(&rotate_args(
        now_dir.to_str().unwrap(),
        &["--overlap-days", "0"],
    ));
    let newest = ClientKeyFiles {
        id: s(&out["ClientKey"]["ClientKeyId"]),
        file: PathBuf::from(s(&out["ClientKey"]["ClientKeyFile"])),
        password_file: PathBuf::from(s(&out["ClientKey"]["PasswordFile"])),
    };
    assert_eq!(
        encrypt(&inst, &gw, &clock, &new, &key),
        Err((401, "ClientKeyExpired".into()))
    );
    encrypt(&inst, &gw, &clock, &newest, &key).unwrap();
    let text = String::from_utf8(
        inst.d
            .cli(&[
                "client-key",
                "rotate",
                "--aap",
                "pay",
                "--overlap-days",
                "3",
                "--output-dir",
                inst.d.path("text").to_str().unwrap(),
            ])
            .stdout,
    )
    .unwrap();
    assert!(text.contains("keep working for 3 day(s)"), "{text}");
    let newest_line = text.lines().find(|l| l.contains(&newest.id)).unwrap();
    assert!(newest_line.contains("accepted until"), "{text}");
    let old_line = text.lines().find(|l| l.contains(&old.id)).unwrap();
    assert!(old_line.contains("refused since"), "{text}");
    assert_eq!(count(&inst, "pay"), 4);
}

/// The PEM key and certificate inside a ClientKey's PKCS#12, for a mutual TLS client.
fn tls_files(inst: &Instance, ck: &ClientKeyFiles) -> hkms::client::TlsClientFiles {
    let json = std::fs::read_to_string(&ck.file).unwrap();
    let password = std::fs::read_to_string(&ck.password_file).unwrap();
    let (_, key, cert) = hkms::access::clientkey::load(&json, password.trim_end()).unwrap();
    let dir = inst.d.path("client-pem");
    std::fs::create_dir_all(&dir).unwrap();
    let files = hkms::client::TlsClientFiles {
        ca: inst.bundle.clone(),
        cert: dir.join(format!("{}.pem", ck.id)),
        key: dir.join(format!("{}.key", ck.id)),
    };
    std::fs::write(&files.cert, cert.to_pem().unwrap()).unwrap();
    std::fs::write(&files.key, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    files
}

async fn tls_encrypt(c: &mut hkms::client::Client, key: &str) -> Result<(), String> {
    c.crypto
        .encrypt(hkms::proto::EncryptRequest {
            key_id: key.into(),
            plaintext: b"direct".to_vec(),
            aad: Vec::new(),
        })
        .await
        .map(drop)
        .map_err(common::code)
}

/// hkmsd's own TCP listener, where ClientKey certificates are mutual TLS client
/// certificates: the earlier key's connection works during the overlap, and its calls are
/// refused after it, as an expired key's are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_key_after_its_retirement() {
    let clock = TestClock::default();
    let mut inst = Instance::new();
    let (cert, tls_key) = (inst.d.path("tls/hkmsd.pem"), inst.d.path("tls/hkmsd.key"));
    inst.d.cli_json(&[
        "ca",
        "issue-gateway",
        "--dir",
        inst.ca_dir.to_str().unwrap(),
        "--dns",
        "localhost",
        "--cert-out",
        cert.to_str().unwrap(),
        "--key-out",
        tls_key.to_str().unwrap(),
    ]);
    let port = support::free_port();
    inst.d.listen =
        format!("tcp = \"127.0.0.1:{port}\"\ntls_cert = {cert:?}\ntls_key = {tls_key:?}\n");
    inst.d
        .write_config(&[common::MemberSpec::softhsm("hsm-0", "m0")]);
    let (k, v) = clock.env();
    inst.d.extra_env.push((k.to_owned(), v));
    inst.d.restart();
    let key = inst.create_key();
    let old = inst.app("pay", "key/*", None);
    let endpoint = format!("https://localhost:{port}");
    let mut old_conn =
        hkms::client::Client::connect_tls(&endpoint, &tls_files(&inst, &old)).unwrap();
    tls_encrypt(&mut old_conn, &key).await.unwrap();

    let dir = inst.d.path("new");
    let out = inst.d.cli_json(&rotate_args(
        dir.to_str().unwrap(),
        &["--overlap-days", "2"],
    ));
    let new = ClientKeyFiles {
        id: s(&out["ClientKey"]["ClientKeyId"]),
        file: PathBuf::from(s(&out["ClientKey"]["ClientKeyFile"])),
        password_file: PathBuf::from(s(&out["ClientKey"]["PasswordFile"])),
    };
    let mut new_conn =
        hkms::client::Client::connect_tls(&endpoint, &tls_files(&inst, &new)).unwrap();
    clock.advance(DAY);
    tls_encrypt(&mut old_conn, &key).await.unwrap();
    tls_encrypt(&mut new_conn, &key).await.unwrap();
    clock.advance(DAY + 60);
    assert_eq!(
        tls_encrypt(&mut old_conn, &key).await,
        Err("Unauthenticated".to_owned())
    );
    let mut again = hkms::client::Client::connect_tls(&endpoint, &tls_files(&inst, &old)).unwrap();
    assert_eq!(
        tls_encrypt(&mut again, &key).await,
        Err("Unauthenticated".to_owned())
    );
    tls_encrypt(&mut new_conn, &key).await.unwrap();
    let log = inst.d.log_text();
    assert!(
        log.contains("refused a TCP request: the ClientKey has expired"),
        "{log}"
    );
}

#[test]
fn help_teaches_rotation() {
    let out = Command::new(env!("CARGO_BIN_EXE_hkms"))
        .args(["client-key", "rotate", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--overlap-days",
        "0 to 90",
        "--password-file",
        "--validity-days",
        "ClientKeyExpired",
        "Examples:",
        "hkms client-key rotate --aap billing --output-dir ./billing-new",
        "hkms client-key list --aap billing",
    ] {
        assert!(
            help.contains(word),
            "client-key rotate --help lacks {word}: {help}"
        );
    }
}
