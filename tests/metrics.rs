//! Metrics and health endpoints end to end: a real hkmsd on SoftHSM2 tokens and a real
//! gateway, each with `[observability]` on a free loopback port; requests over gRPC and
//! through the gateway; `/metrics` parsed with the Prometheus Python client's own parser;
//! readiness with and without a serving HSM member; the periodic credential expiry scan.

mod common;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/gateway.rs"]
mod support;

use common::{Daemon, MemberSpec};
use hkms::instance_api as api;
use prometheus::{get, observability, request, scrape, Samples};
use prost::Message;
use std::time::{Duration, Instant};
use support::{connect, free_port, post, ClientKeyFiles, GatewayProc, Instance};

/// Appends `[observability]` on a free port to hkmsd's configuration and restarts it.
fn observe_daemon(d: &mut Daemon, extra: &str) -> u16 {
    let port = free_port();
    let mut text = std::fs::read_to_string(&d.config).unwrap();
    text.push_str(&observability(port, extra));
    std::fs::write(&d.config, text).unwrap();
    d.restart();
    port
}

fn encrypt(inst: &Instance, port: u16, ck: &ClientKeyFiles, key: &str) -> support::Answer {
    let body = api::EncryptRequest {
        key_id: key.to_owned(),
        plaintext: b"x".to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut conn = connect(port, &inst.bundle);
    post(&mut conn, "/", &ck.signed("Encrypt", &body), &body)
}

/// Waits until `f` holds, re-scraping.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hkmsd_and_gateway_metrics_count_requests_and_hsm_operations() {
    let Some(python) = prometheus::python() else {
        return;
    };
    let mut inst = Instance::new();
    let port = observe_daemon(&mut inst.d, "");
    let key = inst.create_key();
    let other = inst.create_key();
    let ck = inst.app("metrics-app", &format!("key/{key}"), None);
    let gw_port = free_port();
    let gw = GatewayProc::start(
        &inst,
        "gw",
        false,
        &format!(
            "[throttle]\nunsigned_qps_per_source = 1\n{}",
            observability(gw_port, "")
        ),
    );

    // Health of both processes.
    for p in [port, gw_port] {
        let live = get(p, "/health/live");
        assert_eq!(live.status, 200, "{}", live.body);
        let ready = get(p, "/health/ready");
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_eq!(ready.json()["status"], "ready", "{}", ready.body);
        assert_eq!(ready.header("content-type"), Some("application/json"));
        assert_eq!(get(p, "/nothing").status, 404);
        assert_eq!(request(p, "POST", "/metrics").status, 405);
        let head = request(p, "HEAD", "/metrics");
        assert_eq!((head.status, head.body.as_str()), (200, ""));
    }
    let ready = get(port, "/health/ready").json();
    assert_eq!(ready["checks"]["hsm"]["ok"], true, "{ready}");
    assert_eq!(ready["checks"]["store"]["ok"], true, "{ready}");
    assert_eq!(ready["checks"]["audit"]["ok"], true, "{ready}");
    assert_eq!(
        get(gw_port, "/health/ready").json()["checks"]["hkmsd"]["ok"],
        true
    );

    let before = scrape(&python, port);
    let gw_before = scrape(&python, gw_port);
    assert_eq!(
        before.family_type("hkms_hsm_operations").as_deref(),
        Some("counter")
    );
    assert_eq!(
        before
            .family_type("hkms_hsm_operation_duration_seconds")
            .as_deref(),
        Some("histogram")
    );
    assert_eq!(
        before.family_type("hkms_hsm_member_up").as_deref(),
        Some("gauge")
    );
    assert_eq!(
        before.value("hkms_hsm_member_up", &[("member", "hsm-0")]),
        1.0
    );
    assert_eq!(
        before.value(
            "hkms_hsm_member_state",
            &[("member", "hsm-0"), ("state", "Up")]
        ),
        1.0
    );
    assert_eq!(
        before.value(
            "hkms_hsm_member_state",
            &[("member", "hsm-0"), ("state", "Down")]
        ),
        0.0
    );
    assert!(before.value("hkms_hsm_sessions_max", &[("member", "hsm-0")]) >= 1.0);
    assert_eq!(before.value("hkms_audit_writable", &[]), 1.0);
    assert_eq!(before.value("hkms_audit_backlog_records", &[]), 0.0);
    let seq_before = before.value("hkms_audit_last_sequence", &[]);
    assert!(seq_before >= 1.0, "the start record at least");
    assert!(before.value("hkms_audit_bytes", &[]) > 0.0);
    let ops_before = before.value("hkms_hsm_operations_total", &[("member", "hsm-0")]);
    let hist_before = before.value(
        "hkms_hsm_operation_duration_seconds_count",
        &[("member", "hsm-0")],
    );
    assert_eq!(
        before.value(
            "hkms_hsm_operation_duration_seconds_bucket",
            &[("member", "hsm-0"), ("le", "+Inf")]
        ),
        hist_before
    );

    // Over gRPC: three encryptions.
    for _ in 0..3 {
        inst.d
            .cli_json(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    }
    // Through the gateway: two allowed, one denied (a key the policy does not name), and
    // unsigned requests over the source's budget.
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for k in [&key, &key, &other] {
        let a = encrypt(&inst, gw.port, &ck, k);
        *statuses.entry(a.status).or_default() += 1;
    }
    assert_eq!(statuses.get(&200), Some(&2), "{statuses:?}");
    let denied = encrypt(&inst, gw.port, &ck, &other);
    let (denied_status, denied_code) = denied.failure();
    *statuses.entry(denied_status).or_default() += 1;
    assert_eq!(denied_code, "Forbidden.NoPermission");
    // A Tencent Cloud API request (unsigned: refused in Tencent's envelope, HTTP 200).
    let tencent_before = gw_before.sum("hkms_gateway_requests_total", &[("api", "tencent")]);
    let mut conn = connect(gw.port, &inst.bundle);
    let a = post(
        &mut conn,
        "/",
        &[
            ("x-tc-action".to_owned(), "Encrypt".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        b"{}",
    );
    let tencent_status = a.status.to_string();
    drop(conn);
    let mut throttled = 0;
    for _ in 0..4 {
        let mut conn = connect(gw.port, &inst.bundle);
        let a = post(
            &mut conn,
            "/",
            &[("x-kms-apiname".to_owned(), "Encrypt".to_owned())],
            b"",
        );
        *statuses.entry(a.status).or_default() += 1;
        if a.status == 429 {
            throttled += 1;
        }
    }
    assert!(throttled >= 1, "{statuses:?}");

    let after = scrape(&python, port);
    // Every request that reached hkmsd has its record: 3 over gRPC, 4 relayed by the gateway
    // and at least the Tencent one and the unsigned ones the gateway let through.
    let seq_after = after.value("hkms_audit_last_sequence", &[]);
    assert!(
        seq_after >= seq_before + 8.0,
        "records: {seq_before} -> {seq_after}"
    );
    // Each of those requests waited for its record to be durable. A group of records
    // shares one sync; a checkpoint (at most one in this window) may take one of its own.
    let waited = |m: &Samples| m.value("hkms_audit_record_wait_seconds_count", &[]);
    let syncs = |m: &Samples| m.value("hkms_audit_sync_seconds_count", &[]);
    assert!(
        waited(&after) >= waited(&before) + 8.0,
        "record waits: {} -> {}",
        waited(&before),
        waited(&after)
    );
    assert!(syncs(&after) > syncs(&before));
    assert!(syncs(&after) - syncs(&before) <= seq_after - seq_before + 1.0);
    assert!(
        after.value("hkms_audit_sync_seconds_sum", &[])
            > before.value("hkms_audit_sync_seconds_sum", &[])
    );
    let ops_after = after.value("hkms_hsm_operations_total", &[("member", "hsm-0")]);
    assert!(
        ops_after >= ops_before + 5.0,
        "five encryptions ran on hsm-0: {ops_before} -> {ops_after}"
    );
    let hist_after = after.value(
        "hkms_hsm_operation_duration_seconds_count",
        &[("member", "hsm-0")],
    );
    assert_eq!(hist_after - hist_before, ops_after - ops_before);
    assert!(
        after.value(
            "hkms_hsm_operation_duration_seconds_sum",
            &[("member", "hsm-0")]
        ) > 0.0
    );

    let gw_after = scrape(&python, gw_port);
    for (status, n) in &statuses {
        let s = status.to_string();
        let labels = [
            ("api", "instance"),
            ("endpoint", "private"),
            ("status", s.as_str()),
        ];
        let moved = gw_after.sum("hkms_gateway_requests_total", &labels)
            - gw_before.sum("hkms_gateway_requests_total", &labels);
        assert_eq!(moved, f64::from(*n), "status {status}: {statuses:?}");
    }
    let tencent = [
        ("api", "tencent"),
        ("endpoint", "private"),
        ("status", tencent_status.as_str()),
    ];
    assert_eq!(
        gw_after.sum("hkms_gateway_requests_total", &tencent) - tencent_before,
        1.0
    );
    let total: u32 = statuses.values().sum();
    let counted = gw_after.sum(
        "hkms_gateway_request_duration_seconds_count",
        &[("api", "instance")],
    ) - gw_before.sum(
        "hkms_gateway_request_duration_seconds_count",
        &[("api", "instance")],
    );
    assert_eq!(counted, f64::from(total));
    let refused = gw_after.sum("hkms_gateway_throttled_total", &[("endpoint", "private")])
        - gw_before.sum("hkms_gateway_throttled_total", &[("endpoint", "private")]);
    assert_eq!(refused, f64::from(throttled));
    assert_eq!(
        gw_after.family_type("hkms_gateway_throttled").as_deref(),
        Some("counter")
    );
    assert_eq!(
        gw_after.value(
            "hkms_gateway_upstream_errors_total",
            &[("kind", "unavailable")]
        ),
        0.0
    );
    assert!(
        gw_after.sum("hkms_gateway_connections_total", &[("endpoint", "private")])
            >= f64::from(total)
    );
    // The test's connections are closed by now (each answer was read).
    eventually("connections closed", || {
        scrape(&python, gw_port).sum("hkms_gateway_connections_open", &[("endpoint", "private")])
            == 0.0
    });

    // With hkmsd stopped the gateway is not ready, and says why.
    inst.d.stop(false);
    let r = get(gw_port, "/health/ready");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.json()["failed"],
        serde_json::json!(["hkmsd"]),
        "{}",
        r.body
    );
    assert_eq!(get(gw_port, "/health/live").status, 200);
    let a = encrypt(&inst, gw.port, &ck, &key);
    assert_eq!(a.status, 503);
    let gw_down = scrape(&python, gw_port);
    assert_eq!(
        gw_down.value(
            "hkms_gateway_upstream_errors_total",
            &[("kind", "unavailable")]
        ),
        1.0
    );
}

/// Requests hkmsd answers are counted by front, operation and result through
/// `hkms::metrics::observe_request`, which the audit trail's per-request layer calls.
#[test]
fn hkmsd_counts_requests_by_operation_and_result() {
    counts_requests_by_operation_and_result("");
}

/// The same counts with the trail off: the layer still runs every call in a scope.
#[test]
fn hkmsd_counts_requests_with_the_audit_trail_off() {
    counts_requests_by_operation_and_result("[audit]\nenabled = false\n");
}

fn counts_requests_by_operation_and_result(audit: &str) {
    let Some(python) = prometheus::python() else {
        return;
    };
    let mut inst = Instance::new();
    let mut config = std::fs::read_to_string(&inst.d.config).unwrap();
    config.push_str(audit);
    std::fs::write(&inst.d.config, config).unwrap();
    let port = observe_daemon(&mut inst.d, "");
    let enabled = if audit.is_empty() { 1.0 } else { 0.0 };
    assert_eq!(
        scrape(&python, port).value("hkms_audit_enabled", &[]),
        enabled
    );
    let key = inst.create_key();
    let other = inst.create_key();
    let ck = inst.app("count-app", &format!("key/{key}"), None);
    let gw = GatewayProc::start(&inst, "gw", false, "");
    let before = scrape(&python, port);
    for _ in 0..3 {
        inst.d
            .cli_json(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    }
    for _ in 0..2 {
        assert_eq!(encrypt(&inst, gw.port, &ck, &key).status, 200);
    }
    assert_eq!(
        encrypt(&inst, gw.port, &ck, &other).failure().1,
        "Forbidden.NoPermission"
    );
    let after = scrape(&python, port);
    let moved = |labels: &[(&str, &str)]| {
        after.sum("hkms_requests_total", labels) - before.sum("hkms_requests_total", labels)
    };
    assert_eq!(
        moved(&[
            ("front", "grpc"),
            ("operation", "/hkms.v1.CryptoService/Encrypt"),
            ("result", "OK")
        ]) + moved(&[
            ("front", "grpc"),
            ("operation", "Encrypt"),
            ("result", "OK")
        ]),
        3.0
    );
    assert_eq!(
        moved(&[
            ("front", "instance"),
            ("operation", "Encrypt"),
            ("result", "OK")
        ]),
        2.0
    );
    assert_eq!(
        moved(&[
            ("front", "instance"),
            ("operation", "Encrypt"),
            ("result", "Forbidden.NoPermission")
        ]),
        1.0
    );
}

#[test]
fn readiness_fails_while_no_hsm_member_is_up() {
    let Some(python) = prometheus::python() else {
        return;
    };
    let module = hkms_fault_pkcs11::control::locate_module()
        .expect("the fault module is built as a dev-dependency");
    let faults = tempfile::tempdir().unwrap();
    let dir = faults.path().display().to_string();
    let member = MemberSpec {
        module: module.display().to_string(),
        ..MemberSpec::softhsm("hsm-0", "m0")
    };
    let mut d = Daemon::start_custom(
        &[member],
        &[
            ("HKMS_FAULT_DIR", dir.as_str()),
            ("HKMS_FAULT_REAL_MODULE", common::SOFTHSM_MODULE),
        ],
        "hsm_call_timeout_ms = 800\nprobe_interval_ms = 200\n",
    );
    d.init_ok();
    let port = observe_daemon(&mut d, "");
    assert_eq!(get(port, "/health/ready").status, 200);
    let key = d.cli_json(&["key", "create", "--description", "ready"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The token is gone: the next operation fails and the member is marked down.
    hkms_fault_pkcs11::control::write_fault_text(faults.path(), "m0", "mode = dead\n").unwrap();
    let failed = d.cli(&["encrypt", "--key-id", &key, "--plaintext", "x"]);
    assert!(!failed.status.success());
    let r = get(port, "/health/ready");
    assert_eq!(r.status, 503, "{}", r.body);
    let body = r.json();
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["failed"], serde_json::json!(["hsm"]), "{body}");
    let why = body["checks"]["hsm"]["detail"].as_str().unwrap();
    assert!(
        why.contains("no HSM member is up") && why.contains("hsm-0 Down"),
        "{why}"
    );
    assert_eq!(get(port, "/health/live").status, 200);
    let m = scrape(&python, port);
    assert_eq!(m.value("hkms_hsm_member_up", &[("member", "hsm-0")]), 0.0);
    assert_eq!(
        m.value(
            "hkms_hsm_member_state",
            &[("member", "hsm-0"), ("state", "Down")]
        ),
        1.0
    );
    assert!(m.sum("hkms_hsm_errors_total", &[("member", "hsm-0")]) >= 1.0);

    // The token is back: the prober brings the member back, and hkmsd is ready again.
    hkms_fault_pkcs11::control::clear_fault(faults.path(), "m0").unwrap();
    eventually("ready again", || get(port, "/health/ready").status == 200);
    assert_eq!(
        scrape(&python, port).value("hkms_hsm_member_up", &[("member", "hsm-0")]),
        1.0
    );
}

#[test]
fn the_expiry_scan_reports_client_keys_nobody_uses() {
    let Some(python) = prometheus::python() else {
        return;
    };
    let mut inst = Instance::new();
    let port = observe_daemon(&mut inst.d, "expiry_scan_interval_secs = 1\n");
    inst.aap_as("expiring-app", "CryptoServiceKeyUser", "key/*", None);
    let dir = inst.d.path("expiring-keys");
    let out = inst.d.cli_json(&[
        "client-key",
        "create",
        "--aap",
        "expiring-app",
        "--validity-days",
        "3",
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    let soon = out["ClientKey"]["ClientKeyId"].as_str().unwrap().to_owned();
    let lasting = inst.client_key("expiring-app").id;
    let api_key = inst.d.cli_json(&[
        "api-key",
        "create",
        "--aap",
        "expiring-app",
        "--validity-days",
        "2",
        "--output-file",
        inst.d.path("expiring-api-key.json").to_str().unwrap(),
    ])["ApiKey"]["SecretId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Never used: the scan finds it anyway.
    let mut days = None;
    eventually("the gauge shows the ClientKey and the API key", || {
        let m: Samples = scrape(&python, port);
        let found = m.matching(
            "hkms_client_key_expiry_days",
            &[("aap", "expiring-app"), ("credential", soon.as_str())],
        );
        days = found.first().map(|s| s["value"].as_f64().unwrap());
        let api = m.matching(
            "hkms_client_key_expiry_days",
            &[("credential", api_key.as_str())],
        );
        days.is_some() && !api.is_empty()
    });
    let days = days.unwrap();
    assert!((1.0..=3.0).contains(&days), "{days}");
    let m = scrape(&python, port);
    let lasting_days = m.value(
        "hkms_client_key_expiry_days",
        &[("aap", "expiring-app"), ("credential", lasting.as_str())],
    );
    assert!(lasting_days >= 360.0, "{lasting_days}");
    assert_eq!(
        m.family_type("hkms_client_key_expiry_days").as_deref(),
        Some("gauge")
    );
    let api_days = m.value(
        "hkms_client_key_expiry_days",
        &[("aap", "expiring-app"), ("credential", api_key.as_str())],
    );
    assert!((0.0..=2.0).contains(&api_days), "{api_days}");
    eventually("the scan's warnings are logged", || {
        let log = inst.d.log_text();
        log.contains(&soon) && log.contains(&api_key)
    });
    let log = inst.d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(&soon) && l.contains("expires soon"));
    assert!(line.is_some_and(|l| l.contains("WARN")), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains(&lasting) && l.contains("expires soon")),
        "{log}"
    );

    // `hkms status` lists it, and not the key valid for a year.
    let status = inst.d.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("ClientKey {soon} of AAP expiring-app expires in")),
        "{text}"
    );
    assert!(!text.contains(&lasting), "{text}");
    assert!(
        text.contains(&format!("API key {api_key} of AAP expiring-app expires in")),
        "{text}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&api_key) && l.contains("expires soon")),
        "{log}"
    );

    // A deleted ClientKey leaves the gauge at the next scan.
    inst.d.cli_json(&["client-key", "delete", &soon]);
    eventually("the deleted ClientKey leaves the gauge", || {
        scrape(&python, port)
            .matching(
                "hkms_client_key_expiry_days",
                &[("credential", soon.as_str())],
            )
            .is_empty()
    });
}
