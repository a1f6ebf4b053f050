//! Sinks end to end against an in-test HTTP receiver on loopback that records every
//! request and answers with scripted statuses: exact delivery, cursor persistence across
//! restarts, retries, parking, Elasticsearch per-item results and HEC invalid-event-number.
#![cfg(feature = "sinks")]

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditlog::sink::{self, SinkConfig};
use auditlog::{Durability, Log, Options};
use common::{events, key, SMALL_SEGMENT};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
    fn lines(&self) -> Vec<Value> {
        std::str::from_utf8(&self.body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.into(),
    }
}

type Responder = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A loopback HTTP/1.1 server: records requests, answers each with the next scripted reply,
/// then with `fallback`.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(script: Vec<Reply>, fallback: Box<Responder>) -> Receiver {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), script, fallback)
    }

    fn start_on(l: TcpListener, script: Vec<Reply>, fallback: Box<Responder>) -> Receiver {
        let url = format!("http://{}", l.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let req = Request {
                    path,
                    headers,
                    body,
                };
                let n = {
                    let mut g = reqs.lock().unwrap();
                    g.push(req.clone());
                    g.len() - 1
                };
                let rep = script
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| fallback(&req, n));
                let mut out = format!(
                    "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    rep.status,
                    rep.body.len()
                );
                for (k, v) in &rep.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&rep.body);
                let _ = s.write_all(out.as_bytes());
            }
        });
        Receiver { url, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn ok_always() -> Box<Responder> {
    Box::new(|_, _| reply(200, r#"{"text":"Success","code":0}"#))
}

fn open(dir: &std::path::Path) -> Log {
    Log::open(
        dir,
        Options::new(key())
            .durability(Durability::Sync)
            .segment_bytes(SMALL_SEGMENT),
    )
    .unwrap()
}

fn cfg(v: Value) -> SinkConfig {
    let c: SinkConfig = serde_json::from_value(v).expect("sink config parses");
    c.validate().unwrap();
    c
}

fn start(log: &Log, c: SinkConfig) -> sink::SinkHandle {
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    sink::spawn(log, c, t).unwrap()
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn webhook_cfg(url: &str, extra: Value) -> SinkConfig {
    let mut v = json!({
        "name": "hook",
        "destination": {"type": "webhook", "url": format!("{url}/hook"), "secret": SECRET},
        "batch": {"max_events": 7, "flush_interval_ms": 30},
        "retry": {"initial_ms": 10, "max_ms": 50}
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    cfg(v)
}

/// What a Standard Webhooks receiver checks, written here from the specification (not
/// with the sink's code): the secret is the base64 after `whsec_`; the signed content is
/// `<webhook-id>.<webhook-timestamp>.<body>`; `webhook-signature` is a space-separated list
/// of `v1,<base64 HMAC-SHA256>`, any of which may match.
fn verify_standard_webhook(secret: &str, id: &str, ts: i64, body: &[u8], header: &str) -> bool {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let want = b64.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == want)
}

#[test]
fn webhook_signatures_match_the_standard_webhooks_example() {
    // The example of the Standard Webhooks specification and its reference libraries.
    let (id, ts, body) = (
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    );
    let sig = sink::webhook_signature(SECRET, id, ts, body).unwrap();
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert!(verify_standard_webhook(SECRET, id, ts, body, &sig));
    // A changed body, id or timestamp does not verify.
    assert!(!verify_standard_webhook(
        SECRET,
        id,
        ts,
        br#"{"test": 2432232315}"#,
        &sig
    ));
    assert!(!verify_standard_webhook(
        SECRET,
        "msg_other",
        ts,
        body,
        &sig
    ));
    assert!(!verify_standard_webhook(SECRET, id, ts + 1, body, &sig));
}

#[test]
fn a_receiver_down_then_up_gets_everything_after_backing_off() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: connections are refused until the receiver comes up.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let log = open(dir.path());
    log.append_batch(&events(4, 30)).unwrap();
    let mut c = webhook_cfg(&url, json!({}));
    c.retry.initial_ms = 20;
    c.retry.max_ms = 200;
    let h = start(&log, c);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(60);
    while h.status().retried < 8 {
        assert!(Instant::now() < deadline, "{:?}", h.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Down for at least 1.5 s (more on a slow machine).
    while t.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = h.status();
    assert!(
        st.parked.is_none(),
        "a refused connection is retried: {st:?}"
    );
    assert_eq!(st.acked_seq, None);
    assert_eq!(st.lag, 30);
    assert!(
        st.last_error.as_deref().unwrap_or("").contains(&url),
        "the error names the receiver: {st:?}"
    );
    // Backoff: connecting to a closed port fails in microseconds, so retrying at once
    // would make tens of thousands of attempts in that time; backing off exponentially
    // from 20 ms to a 200 ms cap (full jitter) makes a few dozen at most. A slower machine
    // only makes fewer.
    assert!(st.retried < 150, "no backoff: {} attempts", st.retried);
    let retried_down = st.retried;

    // The receiver comes up on that port: everything arrives, once, in order.
    let rx = Receiver::start_on(
        TcpListener::bind(("127.0.0.1", port)).expect("the port is still free"),
        Vec::new(),
        ok_always(),
    );
    assert!(
        h.wait_acked(29, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    let st = h.status();
    h.stop();
    assert_eq!(st.delivered, 30);
    assert!(st.last_error.is_none(), "{st:?}");
    assert!(st.retried >= retried_down);
    let got = webhook_events(&rx.requests());
    let seqs: Vec<u64> = got.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..30).collect::<Vec<u64>>());
}

/// Every event the webhook received, in order, after checking each request's signature.
fn webhook_events(reqs: &[Request]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in reqs {
        let id = r.header("webhook-id").expect("webhook-id");
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 120);
        let sig = r.header("webhook-signature").expect("webhook-signature");
        assert!(
            verify_standard_webhook(SECRET, id, ts, &r.body, sig),
            "signature {sig} does not verify"
        );
        let v = r.json();
        assert_eq!(v["type"], "auditlog.events");
        let evs = v["data"]["events"].as_array().unwrap().clone();
        assert_eq!(
            id,
            format!(
                "{}-{}-{}",
                v["data"]["log_id"].as_str().unwrap(),
                evs[0]["seq"],
                evs[evs.len() - 1]["seq"]
            )
        );
        out.extend(evs);
    }
    out
}

#[test]
fn webhook_delivers_exactly_the_filtered_events_and_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Vec::new(), ok_always());
    let log = open(dir.path());
    let evs = events(11, 400);
    log.append_batch(&evs[..250]).unwrap();
    let c = webhook_cfg(
        &rx.url,
        json!({"filter": {"event_types": ["authentication", "security_event"]}}),
    );
    let h = start(&log, c.clone());
    assert!(
        h.wait_acked(249, Duration::from_secs(20)),
        "{:?}",
        h.status()
    );
    let st = h.status();
    h.stop();
    let want = |range: std::ops::Range<usize>| -> Vec<u64> {
        range
            .filter(|&i| ["authentication", "security_event"].contains(&evs[i].event_type.as_str()))
            .map(|i| i as u64)
            .collect()
    };
    let got: Vec<u64> = webhook_events(&rx.requests())
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        want(0..250),
        "exactly the matching events, once, in order"
    );
    assert_eq!(st.delivered, got.len() as u64);
    assert_eq!(st.filtered, 250 - got.len() as u64);
    assert_eq!(st.lag, 0);
    assert!(rx.requests().iter().all(|r| r.path == "/hook"));
    let cur = sink::read_cursor(dir.path(), "hook").unwrap().unwrap();
    assert_eq!(cur.acked_seq, Some(249));

    // Stopped: events appended now wait in the log; a restarted sink resumes after its
    // cursor, with nothing lost and nothing sent twice.
    log.append_batch(&evs[250..]).unwrap();
    drop(log);
    let log = open(dir.path());
    let before = rx.requests().len();
    let h = start(&log, c);
    assert!(
        h.wait_acked(399, Duration::from_secs(20)),
        "{:?}",
        h.status()
    );
    h.stop();
    let got: Vec<u64> = webhook_events(&rx.requests()[before..])
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want(250..400));
    let cur = sink::read_cursor(dir.path(), "hook").unwrap().unwrap();
    assert_eq!(cur.acked_seq, Some(399));
    assert_eq!(cur.delivered as usize, want(0..400).len());
}

#[test]
fn webhook_follows_appends_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Vec::new(), ok_always());
    let log = open(dir.path());
    let h = start(&log, webhook_cfg(&rx.url, json!({})));
    let evs = events(4, 60);
    for e in &evs {
        log.append(e).unwrap();
    }
    assert!(
        h.wait_acked(59, Duration::from_secs(20)),
        "{:?}",
        h.status()
    );
    h.stop();
    let got: Vec<u64> = webhook_events(&rx.requests())
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    assert!(rx
        .requests()
        .iter()
        .all(|r| r.json()["data"]["events"].as_array().unwrap().len() <= 7));
}

#[test]
fn webhook_retries_503_and_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut after = reply(429, "slow down");
    after.headers.push(("Retry-After".into(), "1".into()));
    let rx = Receiver::start(
        vec![reply(503, "busy"), reply(503, "busy"), after],
        ok_always(),
    );
    let log = open(dir.path());
    log.append_batch(&events(1, 5)).unwrap();
    let t = Instant::now();
    let h = start(&log, webhook_cfg(&rx.url, json!({})));
    assert!(h.wait_acked(4, Duration::from_secs(20)), "{:?}", h.status());
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let st = h.status();
    h.stop();
    assert_eq!(st.retried, 3);
    assert_eq!(st.delivered, 5);
    assert!(st.parked.is_none());
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 4);
    // The same batch every time, under the same webhook-id.
    assert!(reqs
        .iter()
        .all(|r| r.header("webhook-id") == reqs[0].header("webhook-id")));
    assert_eq!(webhook_events(&reqs[3..]).len(), 5);
}

#[test]
fn permanent_errors_park_the_sink_without_advancing() {
    for (status, what) in [(400, "400"), (401, "401"), (410, "disabled")] {
        let dir = tempfile::tempdir().unwrap();
        let rx = Receiver::start(Vec::new(), Box::new(move |_, _| reply(status, "no")));
        let log = open(dir.path());
        log.append_batch(&events(2, 3)).unwrap();
        let h = start(&log, webhook_cfg(&rx.url, json!({})));
        assert!(
            !h.wait_acked(0, Duration::from_secs(10)),
            "{status}: {:?} {:?}",
            h.status(),
            rx.requests().len()
        );
        let st = h.status();
        assert!(
            st.parked.as_deref().unwrap_or("").contains(what),
            "{status}: {st:?}"
        );
        assert_eq!(st.delivered, 0);
        assert_eq!(st.lag, 3);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(h.is_finished(), "a parked sink's thread ends");
        h.stop();
        assert_eq!(rx.requests().len(), 1, "no retry of a permanent error");
        let cur = sink::read_cursor(dir.path(), "hook").unwrap().unwrap();
        assert_eq!(cur.acked_seq, None);
        assert!(cur.parked.unwrap().contains(what));
    }
}

#[test]
fn elastic_per_item_409_is_delivered_and_429_is_resent() {
    let dir = tempfile::tempdir().unwrap();
    // First bulk: item 0 already there (409), item 1 throttled (429), the rest created.
    let rx = Receiver::start(
        Vec::new(),
        Box::new(|req: &Request, n| {
            let actions = req.lines().len() / 2;
            let items: Vec<Value> = (0..actions)
                .map(|i| {
                    let status = match (n, i) {
                        (0, 0) => 409,
                        (0, 1) => 429,
                        _ => 201,
                    };
                    json!({"create": {"status": status}})
                })
                .collect();
            reply(200, &json!({"errors": n == 0, "items": items}).to_string())
        }),
    );
    let log = open(dir.path());
    log.append_batch(&events(3, 5)).unwrap();
    let c = cfg(json!({
        "name": "es",
        "destination": {"type": "elastic", "url": rx.url, "index": "audit-x", "api_key": "a2V5", "pipeline": "geo ip"},
        "batch": {"max_events": 10, "flush_interval_ms": 30},
        "retry": {"initial_ms": 10, "max_ms": 20}
    }));
    let h = start(&log, c);
    assert!(h.wait_acked(4, Duration::from_secs(20)), "{:?}", h.status());
    let st = h.status();
    h.stop();
    assert_eq!(st.delivered, 5);
    assert_eq!(st.retried, 1);
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/_bulk?pipeline=geo%20ip");
    assert_eq!(reqs[0].header("authorization"), Some("ApiKey a2V5"));
    let first = reqs[0].lines();
    assert_eq!(first.len(), 10);
    assert_eq!(first[0]["create"]["_index"], "audit-x");
    assert_eq!(first[0]["create"]["_id"], format!("{}-0", log.log_id()));
    let second = reqs[1].lines();
    assert_eq!(second.len(), 2, "only the throttled item is resent");
    assert_eq!(second[0]["create"]["_id"], format!("{}-1", log.log_id()));
    assert_eq!(second[1]["seq"], 1);
}

#[test]
fn elastic_item_mapping_error_parks() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(
        Vec::new(),
        Box::new(|_, _| {
            reply(
                200,
                r#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#,
            )
        }),
    );
    let log = open(dir.path());
    log.append_batch(&events(3, 2)).unwrap();
    let c = cfg(json!({
        "name": "es",
        "destination": {"type": "elastic", "url": rx.url},
        "batch": {"flush_interval_ms": 30}
    }));
    let h = start(&log, c);
    assert!(!h.wait_acked(1, Duration::from_secs(10)));
    let st = h.status();
    h.stop();
    let p = st.parked.unwrap();
    assert!(
        p.contains("seq 1") && p.contains("mapper_parsing_exception"),
        "{p}"
    );
}

#[test]
fn hec_resends_from_the_invalid_event_number() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(
        vec![reply(
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#,
        )],
        ok_always(),
    );
    let log = open(dir.path());
    log.append_batch(&events(6, 8)).unwrap();
    let c = cfg(json!({
        "name": "splunk",
        "destination": {"type": "splunk_hec", "url": format!("{}/services/collector/event", rx.url),
                        "token": "env.SINKS_TEST_HEC_TOKEN", "index": "audit", "sourcetype": "auditlog:json"},
        "batch": {"max_events": 100, "flush_interval_ms": 30},
        "retry": {"initial_ms": 10, "max_ms": 20}
    }));
    std::env::set_var("SINKS_TEST_HEC_TOKEN", "tok-123");
    let h = start(&log, c);
    assert!(h.wait_acked(7, Duration::from_secs(20)), "{:?}", h.status());
    let st = h.status();
    h.stop();
    assert_eq!(st.delivered, 8);
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("authorization"), Some("Splunk tok-123"));
    let a = reqs[0].lines();
    let b = reqs[1].lines();
    assert_eq!(a.len(), 8);
    assert_eq!(a[0]["index"], "audit");
    assert_eq!(a[0]["sourcetype"], "auditlog:json");
    assert_eq!(
        b.iter()
            .map(|e| e["event"]["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![3, 4, 5, 6, 7]
    );
}

#[test]
fn hec_retryable_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![reply(500, "x"), reply(408, "x")], ok_always());
    let log = open(dir.path());
    log.append_batch(&events(7, 2)).unwrap();
    let c = cfg(json!({
        "name": "splunk",
        "destination": {"type": "splunk_hec", "url": rx.url, "token": "t"},
        "batch": {"flush_interval_ms": 30},
        "retry": {"initial_ms": 10, "max_ms": 20}
    }));
    let h = start(&log, c);
    assert!(h.wait_acked(1, Duration::from_secs(20)));
    assert_eq!(h.status().retried, 2);
    h.stop();
    // 501 is not retried.
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(Vec::new(), Box::new(|_, _| reply(501, "no")));
    let log = open(dir.path());
    log.append_batch(&events(7, 2)).unwrap();
    let c = cfg(json!({
        "name": "splunk",
        "destination": {"type": "splunk_hec", "url": rx.url, "token": "t"},
        "batch": {"flush_interval_ms": 30}
    }));
    let h = start(&log, c);
    assert!(!h.wait_acked(1, Duration::from_secs(10)));
    assert!(h.status().parked.unwrap().contains("501"));
    h.stop();
}

#[test]
fn bad_sink_configs_are_named() {
    for (v, what) in [
        (
            json!({"name": "a b", "destination": {"type": "webhook", "url": "http://x"}}),
            "name",
        ),
        (
            json!({"name": "a", "destination": {"type": "webhook", "url": "ftp://x"}}),
            "destination.url",
        ),
        (
            json!({"name": "a", "destination": {"type": "webhook", "url": "http://x"}, "batch": {"max_events": 0}}),
            "max_events",
        ),
    ] {
        let c: SinkConfig = serde_json::from_value(v).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }
    let e = auditlog::Config::from_json(
        r#"{"sinks": [{"name": "a", "destination": {"type": "webhook", "url": "http://x"}},
                      {"name": "a", "destination": {"type": "webhook", "url": "http://y"}}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("used twice"), "{e}");
    let e = auditlog::Config::from_json(
        r#"{"sinks": [{"name": "a", "destination": {"type": "kafka"}}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("kafka"), "{e}");
}

#[test]
fn a_record_failing_its_mac_check_parks_the_sink_and_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.append_batch(&events(6, 40)).unwrap();
    }
    common::forge_timestamp(dir.path(), 25);
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let rx = Receiver::start(Vec::new(), ok_always());
    let h = start(
        &log,
        webhook_cfg(
            &rx.url,
            json!({"batch": {"max_events": 5, "flush_interval_ms": 20}}),
        ),
    );
    assert!(!h.wait_acked(39, Duration::from_secs(20)));
    let st = h.status();
    h.stop();
    let why = st.parked.expect("parked");
    assert!(why.contains("record 25 fails its MAC check"), "{why}");
    // Everything before it was delivered, nothing from it on.
    let seqs: Vec<u64> = webhook_events(&rx.requests())
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..25).collect::<Vec<u64>>());
    assert_eq!(st.acked_seq, Some(24));
}
