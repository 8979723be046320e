//! Scraping the metrics and health endpoints of hkmsd and the gateway, and parsing
//! `/metrics` with the Prometheus Python client's own text-format parser
//! (`prometheus_client.parser.text_string_to_metric_families`), installed into a virtual
//! environment by `scripts/install-metrics-test-deps.sh` when missing.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "../sdk/venv.rs"]
mod venv;

/// The Prometheus Python client, for its text-format parser.
const METRICS: venv::Venv = venv::Venv {
    env_var: "HKMS_METRICS_VENV",
    cache_name: "metrics-venv",
    imports: "import prometheus_client.parser",
    installer: "install-metrics-test-deps.sh",
    what: "prometheus_client",
};

/// The Python of the virtual environment holding `prometheus_client`, installed first when
/// needed. `None` only when this host cannot create a virtual environment (never on CI).
pub fn python() -> Option<PathBuf> {
    METRICS.python()
}

/// Turns the text format into JSON samples with the official parser.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, families = [], {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = family.type
    for s in family.samples:
        samples.append({"family": family.name, "type": family.type, "name": s.name,
                        "labels": s.labels, "value": s.value})
print(json.dumps({"samples": samples, "families": families}))
"#;

/// Every sample of a scrape, as parsed by `prometheus_client`, and the type of every
/// family (those without samples too).
#[derive(Debug, Clone)]
pub struct Samples(pub Vec<Value>, pub serde_json::Map<String, Value>);

impl Samples {
    pub fn parse(python: &PathBuf, text: &str) -> Samples {
        let mut child = Command::new(python)
            .args(["-c", PARSE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "prometheus_client could not parse the metrics:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let samples = parsed["samples"].as_array().unwrap().clone();
        let families = parsed["families"].take();
        Samples(samples, families.as_object().unwrap().clone())
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|s| s["name"] == name)
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .collect()
    }

    /// The sum of the values of [`Samples::matching`] (0 when there are none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels)
            .iter()
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    }

    /// The single value of a sample, which must exist.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let m = self.matching(name, labels);
        assert_eq!(m.len(), 1, "one sample {name} {labels:?} in {:#?}", self.0);
        m[0]["value"].as_f64().unwrap()
    }

    /// The type the parser gave the family `family`.
    pub fn family_type(&self, family: &str) -> Option<String> {
        self.1.get(family).map(|t| t.as_str().unwrap().to_owned())
    }
}

/// An HTTP answer: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// One plain-HTTP request to `127.0.0.1:port`.
pub fn request(port: u16, method: &str, path: &str) -> Http {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Http {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn get(port: u16, path: &str) -> Http {
    request(port, "GET", path)
}

/// Scrapes and parses `/metrics`, checking its Content-Type.
pub fn scrape(python: &PathBuf, port: u16) -> Samples {
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Samples::parse(python, &r.body)
}

/// Lines to append to an hkmsd or gateway configuration: the endpoint on `port`.
pub fn observability(port: u16, extra: &str) -> String {
    format!("\n[observability]\nlisten = \"127.0.0.1:{port}\"\n{extra}")
}
