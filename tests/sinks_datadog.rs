//! The Datadog logs v2 sink against a loopback receiver that enforces the intake's rules:
//! `POST /api/v2/logs`, `DD-API-KEY`, a gzip-compressed JSON array, at most 1,000 logs and
//! 5 MB (uncompressed) per request and 1 MB per log (413 otherwise). Requests are split at
//! those limits, a failed request resends only the logs not yet accepted, 400 and 413 park
//! the sink, every other status is retried, and an oversized event loses its details.
#![cfg(feature = "sinks")]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditlog::sink::{self, SinkConfig};
use auditlog::{Details, Durability, Event, Log, Options};
use common::{events, key};
use serde_json::{json, Value};

const KEY: &str = "dd-test-api-key-0123456789abcdef";

/// What the receiver accepted: each request's logs.
#[derive(Clone, Default)]
struct Seen {
    requests: Vec<Vec<Value>>,
    statuses: Vec<u16>,
}

struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    /// Answers the scripted statuses first (recording nothing for them), then enforces the
    /// intake's rules and answers 202.
    fn start(script: Vec<u16>) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v2/logs", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let mut headers: BTreeMap<String, String> = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                let len: usize = headers
                    .get("content-length")
                    .map_or(0, |v| v.parse().unwrap());
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let (status, text) = match script.lock().unwrap().pop_front() {
                    Some(st) => (st, "{\"errors\":[\"scripted\"]}".to_string()),
                    None => check(method, path, &headers, &body, &s2),
                };
                s2.lock().unwrap().statuses.push(status);
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Receiver { url, seen }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    fn seqs(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .seen()
            .requests
            .iter()
            .flatten()
            .map(|l| l["auditlog"]["seq"].as_u64().unwrap())
            .collect();
        v.sort_unstable();
        v
    }
}

/// The intake's rules; records the logs of an accepted request.
fn check(
    method: &str,
    path: &str,
    h: &BTreeMap<String, String>,
    body: &[u8],
    seen: &Mutex<Seen>,
) -> (u16, String) {
    let bad = |st: u16, m: &str| (st, json!({"errors": [m]}).to_string());
    if method != "POST" || path != "/api/v2/logs" {
        return bad(404, "not the logs intake");
    }
    if h.get("dd-api-key").map(String::as_str) != Some(KEY) {
        return bad(403, "bad DD-API-KEY");
    }
    if h.get("content-encoding").map(String::as_str) != Some("gzip") {
        return bad(400, "expected gzip");
    }
    if !h
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return bad(400, "expected application/json");
    }
    let mut raw = Vec::new();
    if flate2::read::GzDecoder::new(body)
        .read_to_end(&mut raw)
        .is_err()
    {
        return bad(400, "body is not gzip");
    }
    if raw.len() > 5_000_000 {
        return bad(413, "payload over 5 MB");
    }
    let Ok(Value::Array(logs)) = serde_json::from_slice::<Value>(&raw) else {
        return bad(400, "body is not a JSON array");
    };
    if logs.len() > 1000 {
        return bad(413, "over 1000 logs");
    }
    for l in &logs {
        if serde_json::to_vec(l).unwrap().len() > 1_000_000 {
            return bad(413, "a log over 1 MB");
        }
    }
    seen.lock().unwrap().requests.push(logs);
    (202, "{}".into())
}

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, Options::new(key()).durability(Durability::Sync)).unwrap()
}

fn dd_cfg(url: &str, extra: Value) -> SinkConfig {
    let mut v = json!({
        "name": "dd",
        "destination": {"type": "datadog", "api_key": "env.DD_TEST_KEY", "url": url,
                        "service": "billing", "tags": ["env:test", "team:sec"]},
        "batch": {"max_events": 2500, "max_bytes": 50_000_000, "flush_interval_ms": 50},
        "retry": {"initial_ms": 5, "max_ms": 20}
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let c: SinkConfig = serde_json::from_value(v).expect("datadog sink config parses");
    c.validate().unwrap();
    c
}

fn start(log: &Log, c: SinkConfig) -> sink::SinkHandle {
    std::env::set_var("DD_TEST_KEY", KEY);
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    sink::spawn(log, c, t).unwrap()
}

#[test]
fn batches_are_split_at_1000_logs_gzip_and_carry_datadog_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let evs = events(21, 2500);
    log.append_batch(&evs).unwrap();
    let rx = Receiver::start(Vec::new());
    let h = start(&log, dd_cfg(&rx.url, json!({})));
    assert!(
        h.wait_acked(2499, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    let seen = rx.seen();
    let sizes: Vec<usize> = seen.requests.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    assert_eq!(rx.seqs(), (0..2500).collect::<Vec<u64>>());
    let first = &seen.requests[0][0];
    assert_eq!(first["ddsource"], "auditlog");
    assert_eq!(first["service"], "billing");
    assert_eq!(first["ddtags"], "env:test,team:sec");
    assert_eq!(first["id"], format!("{}-0", log.log_id()));
    assert_eq!(first["auditlog"]["action"], evs[0].action.as_str());
    assert!(first["hostname"].as_str().is_some_and(|h| !h.is_empty()));
    let want_status = match evs[0].severity {
        auditlog::Severity::Info => "info",
        auditlog::Severity::Low => "notice",
        auditlog::Severity::Medium => "warning",
        auditlog::Severity::High => "error",
        auditlog::Severity::Critical => "critical",
    };
    assert_eq!(first["status"], want_status);
    if let Some(ts) = evs[0].timestamp {
        assert_eq!(first["timestamp"], ts.timestamp_millis());
    }
    let st = h.status();
    assert_eq!((st.delivered, st.retried, st.lag), (2500, 0, 0));
    h.stop();
}

#[test]
fn every_status_but_400_and_413_is_retried_and_only_unaccepted_logs_are_resent() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_batch(&events(22, 1500)).unwrap();
    // 403, 429 and 500 are retried like any status but 400/413 (the first request then
    // succeeds); the second request (logs 1000..1500) meets a 503 and is resent alone.
    let rx = Receiver::start(vec![403, 429, 500]);
    let h = start(&log, dd_cfg(&rx.url, json!({})));
    assert!(
        h.wait_acked(1499, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    assert_eq!(
        rx.seqs(),
        (0..1500).collect::<Vec<u64>>(),
        "each log exactly once"
    );
    assert_eq!(h.status().retried, 3);
    h.stop();

    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_batch(&events(23, 1500)).unwrap();
    // The first request (logs 0..1000) is accepted, the second (1000..1500) meets a 503:
    // only those 500 logs are sent again.
    let rx = Receiver::start(Vec::new());
    let rx2 = FailSecond::start(&rx.url);
    let h = start(&log, dd_cfg(&rx2, json!({})));
    assert!(
        h.wait_acked(1499, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    assert_eq!(
        rx.seqs(),
        (0..1500).collect::<Vec<u64>>(),
        "each log exactly once"
    );
    let sizes: Vec<usize> = rx.seen().requests.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1000, 500]);
    assert_eq!(h.status().retried, 1);
    h.stop();
}

/// Forwards every request to `upstream` except the second, answered 503.
struct FailSecond;

impl FailSecond {
    fn start(upstream: &str) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v2/logs", l.local_addr().unwrap());
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches("/api/v2/logs")
            .to_string();
        std::thread::spawn(move || {
            for (n, conn) in l.incoming().enumerate() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let end = h.trim_end().is_empty();
                    head.push_str(&h);
                    if end {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                if n == 1 {
                    let _ = s.write_all(
                        b"HTTP/1.1 503 X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                let mut u = std::net::TcpStream::connect(&up).unwrap();
                u.write_all(head.as_bytes()).unwrap();
                u.write_all(&body).unwrap();
                let mut resp = Vec::new();
                let _ = u.read_to_end(&mut resp);
                let _ = s.write_all(&resp);
            }
        });
        url
    }
}

#[test]
fn statuses_400_and_413_park_the_sink() {
    for status in [400u16, 413] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        log.append_batch(&events(24, 10)).unwrap();
        let rx = Receiver::start(vec![status]);
        let h = start(&log, dd_cfg(&rx.url, json!({})));
        assert!(!h.wait_acked(9, Duration::from_secs(30)));
        let st = h.status();
        let why = st.parked.expect("parked");
        assert!(why.contains(&status.to_string()), "{why}");
        assert_eq!((st.delivered, st.acked_seq), (0, None));
        h.stop();
    }
}

#[test]
fn an_event_over_1_mb_is_sent_without_its_details() {
    let dir = tempfile::tempdir().unwrap();
    // Events over 1 MB need a larger limit than the default 64 KiB.
    let log = Log::open(
        dir.path(),
        Options::new(key())
            .durability(Durability::Sync)
            .max_event_bytes(4 << 20),
    )
    .unwrap();
    let mut e = Event::new("data_access", "bulk_export");
    e.details = Details::from_json(&json!({"blob": "x".repeat(1_200_000)}).to_string()).unwrap();
    log.append(&e).unwrap();
    log.append(&Event::new("data_access", "small")).unwrap();
    let rx = Receiver::start(Vec::new());
    let h = start(&log, dd_cfg(&rx.url, json!({})));
    assert!(h.wait_acked(1, Duration::from_secs(60)), "{:?}", h.status());
    let logs: Vec<Value> = rx.seen().requests.into_iter().flatten().collect();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["auditlog"]["action"], "bulk_export");
    let note = logs[0]["auditlog"]["details"]["_truncated"]
        .as_str()
        .unwrap();
    assert!(note.contains("1 MB"), "{note}");
    assert!(logs[1]["auditlog"].get("details").is_none());
    h.stop();
}

#[test]
fn requests_stay_under_5_mb() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        Options::new(key())
            .durability(Durability::Sync)
            .max_event_bytes(1 << 20),
    )
    .unwrap();
    for i in 0..12 {
        let mut e = Event::new("data_access", format!("export_{i}"));
        e.details = Details::from_json(&json!({"blob": "y".repeat(600_000)}).to_string()).unwrap();
        log.append(&e).unwrap();
    }
    let rx = Receiver::start(Vec::new());
    let h = start(&log, dd_cfg(&rx.url, json!({})));
    assert!(
        h.wait_acked(11, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    // 12 logs of 600 kB: 7.2 MB, so at least two requests, each accepted under 5 MB.
    let sizes: Vec<usize> = rx.seen().requests.iter().map(Vec::len).collect();
    assert!(sizes.len() >= 2, "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 12);
    assert_eq!(rx.seqs(), (0..12).collect::<Vec<u64>>());
    assert!(rx.seen().statuses.iter().all(|&s| s == 202));
    h.stop();
}

#[test]
fn sites_and_bad_configs() {
    assert_eq!(
        sink::datadog_intake_url(Some("datadoghq.eu"), None).unwrap(),
        "https://http-intake.logs.datadoghq.eu/api/v2/logs"
    );
    let c: SinkConfig = serde_json::from_value(json!({
        "name": "dd", "destination": {"type": "datadog", "api_key": "k", "site": "not a site"}
    }))
    .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("sinks[\"dd\"]") && e.contains("site"), "{e}");
    let c: SinkConfig = serde_json::from_value(json!({
        "name": "dd", "destination": {"type": "datadog", "api_key": "env.DD_UNSET_FOR_TEST"}
    }))
    .unwrap();
    c.validate().unwrap();
    let e = sink::transport_for(&c, "00").err().unwrap().to_string();
    assert!(
        e.contains("DD_UNSET_FOR_TEST") && e.contains("api_key"),
        "{e}"
    );
}
