//! How hkms-gateway relays to hkmsd: each client connection over a relay stream of its own,
//! every request on it authenticated by hkmsd on its own, and connections that outlive an
//! hkmsd restart (a real hkmsd on SoftHSM2, the gateway on loopback, raw HTTP/1.1 over TLS).

mod common;
#[path = "support/gateway.rs"]
mod support;

use base64::Engine;
use hkms::instance_api as api;
use prost::Message;
use support::{connect, post, GatewayProc, Instance};

type Conn = openssl::ssl::SslStream<std::net::TcpStream>;

/// Encrypts `text` on `conn`; the HTTP status and the error code or the key id.
fn encrypt(
    conn: &mut Conn,
    ck: &support::ClientKeyFiles,
    key: &str,
    text: &str,
    forge: bool,
) -> (u16, String) {
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: text.as_bytes().to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut headers = ck.signed("Encrypt", &body);
    if forge {
        let forged = base64::engine::general_purpose::STANDARD.encode([0x5a; 256]);
        for (n, v) in headers.iter_mut() {
            if n == "authorization" {
                *v = format!("Bearer {forged}");
            }
        }
    }
    let a = post(conn, "/", &headers, &body);
    if a.status == 200 {
        let r = api::EncryptResponse::decode(a.body.as_slice()).unwrap();
        assert!(!r.ciphertext_blob.is_empty());
        (a.status, r.key_id)
    } else {
        (a.status, a.failure().1)
    }
}

#[test]
fn each_connection_relays_its_own_requests_and_outlives_an_hkmsd_restart() {
    let mut inst = Instance::new();
    let key = inst.create_key();
    let ck = inst.app("relay-app", "key/*", None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let mut a = connect(gw.port, &inst.bundle);
    let mut b = connect(gw.port, &inst.bundle);
    let served = (200, key.clone());

    // Interleaved on two connections. A forged signature in the middle of a connection's
    // requests is refused, and the requests after it are served: nothing of one request's
    // check carries over to the next.
    assert_eq!(encrypt(&mut a, &ck, &key, "a1", false), served);
    assert_eq!(encrypt(&mut b, &ck, &key, "b1", false), served);
    assert_eq!(
        encrypt(&mut a, &ck, &key, "a2", true),
        (401, "SignatureNotMatch".to_owned())
    );
    assert_eq!(encrypt(&mut b, &ck, &key, "b2", false), served);
    assert_eq!(encrypt(&mut a, &ck, &key, "a3", false), served);
    assert_eq!(
        encrypt(&mut b, &ck, &key, "b3", true),
        (401, "SignatureNotMatch".to_owned())
    );

    // hkmsd restarts while both connections are idle: their next requests are served on
    // new relay streams, without an error for the client.
    inst.d.restart();
    assert_eq!(encrypt(&mut a, &ck, &key, "a4", false), served);
    assert_eq!(encrypt(&mut b, &ck, &key, "b4", false), served);

    // hkmsd stops at once although both connections hold relay streams (they end between
    // requests rather than holding up shutdown for its grace period, 3 s); the request is
    // answered 503, and served again once hkmsd is back.
    let stopping = std::time::Instant::now();
    inst.d.stop(false);
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(2),
        "hkmsd took {:?} to stop",
        stopping.elapsed()
    );
    assert_eq!(
        encrypt(&mut a, &ck, &key, "a5", false),
        (503, "ServiceUnavailableTemporary".to_owned())
    );
    inst.d.spawn().unwrap();
    assert_eq!(encrypt(&mut a, &ck, &key, "a6", false), served);
    assert_eq!(encrypt(&mut b, &ck, &key, "b6", false), served);
}
