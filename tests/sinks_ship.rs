//! The top-level `syslog` and `nats` config sections run by the binary, under `auditlog
//! serve` and then under `auditlog ship` beside a writer, into the real rsyslogd and
//! nats-server; and `auditlog ship` SIGKILLed mid-delivery and restarted: JetStream and an
//! Elasticsearch receiver (which refuses a second `create` of an `_id` with 409, as
//! Elasticsearch does) hold every event exactly once. A missing daemon fails the test unless
//! AUDITLOG_SKIP_RSYSLOG=1 / AUDITLOG_SKIP_NATS=1.
#![cfg(all(feature = "sinks", feature = "server"))]

mod common;
#[path = "common/daemons.rs"]
mod daemons;
#[path = "common/http_rx.rs"]
mod http_rx;
#[path = "common/server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditlog::sink::NatsAuth;
use auditlog::{Durability, HmacKey, Log, Options};
use daemons::{free_tcp_port, nats_server, rsyslogd, stream_messages, Nats, Rsyslog};
use http_rx::{HttpRequest, HttpRx};
use serde_json::{json, Value};
use server::{auditlog, config_json, seed_event, Server, INGESTER, SERVER_KEY};

fn with_sections(sections: Value) -> String {
    let mut v: Value = serde_json::from_str(&config_json("", "")).unwrap();
    for (k, x) in sections.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

fn writer(data: &Path) -> Log {
    Log::open(
        data,
        Options::new(HmacKey::from_bytes(SERVER_KEY.as_bytes()).unwrap())
            .durability(Durability::Sync),
    )
    .unwrap()
}

fn wait(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `auditlog ship --once`, which must succeed; its stdout.
fn ship_once(data: &Path, config: &Path, env: &[(&str, &str)]) -> String {
    let mut c = auditlog(data, config);
    c.args(["ship", "--once", "--poll-ms", "50"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "ship --once: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn status_of(data: &Path, config: &Path, env: &[(&str, &str)]) -> Value {
    let mut c = auditlog(data, config);
    c.args(["sinks", "status", "--json"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Seqs of the log's `authentication` events.
fn auth_seqs(log: &Log) -> BTreeSet<u64> {
    log.iter()
        .map(|r| r.unwrap())
        .filter(|r| r.event.event_type == "authentication")
        .map(|r| r.seq)
        .collect()
}

#[test]
fn syslog_section_delivers_under_serve_then_ship() {
    let Some(bin) = rsyslogd() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let rs = Rsyslog::listening(&bin, &tmp.path().join("rs"), port, None, None);
    let cfg = with_sections(json!({"syslog": {
        "address": format!("127.0.0.1:{port}"),
        "protocol": "tcp",
        "hostname": "node-7",
        "timeout": "10s",
        "batch_size": 10,
        "flush_interval": "50ms",
        "filters": {"event_types": ["authentication"]},
        "retry": {"max_attempts": 0, "backoff": "exponential"}
    }}));
    let s = Server::start(tmp.path(), &cfg, &[]);
    let evs: Vec<Value> = (0..40).map(|i| seed_event(&format!("sl-{i}"), i)).collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(evs));
    assert!(r.status < 300, "ingest: {}", r.status);
    wait("serve's syslog sink", Duration::from_secs(60), || {
        rs.messages().len() >= 40
    });
    let (data, config) = (s.data.clone(), s.config.clone());
    assert!(s.terminate().success());

    // Beside a writer process (this one), `ship` picks up where `serve` stopped.
    let log = writer(&data);
    log.append_batch(&common::events(5, 200)).unwrap();
    let out = ship_once(&data, &config, &[]);
    assert!(out.contains("syslog"), "{out}");
    let want = auth_seqs(&log);
    assert!(
        want.len() > 40,
        "the appended events include authentication ones"
    );
    let got = rs.wait_for(&want.iter().copied().collect::<Vec<_>>());
    // Only authentication events (the filter), each once (the cursor carried over), from
    // the configured HOSTNAME.
    assert_eq!(got.keys().copied().collect::<BTreeSet<_>>(), want);
    for (seq, (n, line)) in &got {
        assert_eq!(*n, 1, "seq {seq} arrived {n} times");
        assert!(line.contains(" node-7 "), "{line}");
    }
    let st = status_of(&data, &config, &[]);
    assert_eq!(st[0]["name"], "syslog");
    assert_eq!(st[0]["lag"], 0, "{st}");
    assert_eq!(st[0]["delivered"], want.len(), "{st}");
}

#[test]
fn nats_section_delivers_under_serve_then_ship() {
    let Some(bin) = nats_server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ns = Nats::start(&bin, &tmp.path().join("js"), &["--auth", "section-token-1"]);
    let cfg = with_sections(json!({"nats": {
        "url": format!("nats://127.0.0.1:{}", ns.port),
        "stream": "FLEET",
        "subject": "fleet.{event_type}",
        "create_stream": true,
        "duplicate_window": "2m",
        "token": "env.NATS_TOKEN",
        "timeout": "10s",
        "window": 32,
        "batch_size": 25,
        "flush_interval": "20ms"
    }}));
    let env = [("NATS_TOKEN", "section-token-1")];
    let s = Server::start(tmp.path(), &cfg, &env);
    let evs: Vec<Value> = (0..60).map(|i| seed_event(&format!("ns-{i}"), i)).collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(evs));
    assert!(r.status < 300, "ingest: {}", r.status);
    let auth = NatsAuth {
        token: Some("section-token-1".into()),
        ..Default::default()
    };
    wait("serve's nats sink", Duration::from_secs(60), || {
        let mut c = ns.client(&auth);
        c.js_api("$JS.API.STREAM.INFO.FLEET", &json!({}))
            .ok()
            .and_then(|v| v["state"]["messages"].as_u64())
            .is_some_and(|n| n >= 60)
    });
    let (data, config) = (s.data.clone(), s.config.clone());
    assert!(s.terminate().success());

    // Without the variable, ship refuses to start, naming it.
    let o = auditlog(&data, &config)
        .args(["ship", "--once"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("NATS_TOKEN"), "{err}");

    let log = writer(&data);
    log.append_batch(&common::events(6, 300)).unwrap();
    ship_once(&data, &config, &env);
    // The stream holds every record of the log exactly once (serve's then ship's).
    let n = log.next_seq();
    let msgs = stream_messages(&mut ns.client(&auth), "FLEET");
    let ids: BTreeSet<&str> = msgs.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(ids.len(), msgs.len(), "an event is held twice");
    assert_eq!(
        msgs.iter().map(|m| m.2).collect::<BTreeSet<u64>>(),
        (0..n).collect::<BTreeSet<u64>>()
    );
    for (id, subject, seq) in &msgs {
        assert_eq!(id, &format!("{}-{seq}", log.log_id()));
        let e = log.event_at(*seq).unwrap().unwrap();
        assert_eq!(subject, &format!("fleet.{}", e.event.event_type));
    }
    let st = status_of(&data, &config, &env);
    assert_eq!(st[0]["name"], "nats");
    assert_eq!(st[0]["lag"], 0, "{st}");
}

/// An Elasticsearch `_bulk` receiver: `create` of a new `_id` stores the document (201), of
/// an `_id` it holds answers the item with 409 `version_conflict_engine_exception`; each
/// request waits `delay` (so that a delivery is in flight when `ship` is killed).
struct Elastic {
    rx: HttpRx,
    docs: Arc<Mutex<HashMap<String, Value>>>,
    /// Every `_id` of every create received, in order (duplicates included).
    creates: Arc<Mutex<Vec<String>>>,
}

impl Elastic {
    fn start(delay: Duration) -> Elastic {
        let docs: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let creates: Arc<Mutex<Vec<String>>> = Arc::default();
        let (d, c) = (docs.clone(), creates.clone());
        let rx = HttpRx::start(Arc::new(move |req: &HttpRequest| {
            assert_eq!(req.method, "POST");
            assert!(req.path.starts_with("/_bulk"), "{}", req.path);
            assert_eq!(req.header("content-type"), Some("application/x-ndjson"));
            std::thread::sleep(delay);
            let text = std::str::from_utf8(&req.body).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len() % 2, 0, "action and document lines in pairs");
            let mut items = Vec::new();
            let mut errors = false;
            let mut docs = d.lock().unwrap();
            for pair in lines.chunks(2) {
                let a: Value = serde_json::from_str(pair[0]).unwrap();
                let id = a["create"]["_id"]
                    .as_str()
                    .expect("create with _id")
                    .to_string();
                c.lock().unwrap().push(id.clone());
                if docs.contains_key(&id) {
                    errors = true;
                    items.push(json!({"create": {"_id": id, "status": 409,
                        "error": {"type": "version_conflict_engine_exception",
                                  "reason": "document already exists"}}}));
                } else {
                    docs.insert(id.clone(), serde_json::from_str(pair[1]).unwrap());
                    items.push(json!({"create": {"_id": id, "status": 201, "result": "created"}}));
                }
            }
            (
                200,
                json!({"took": 1, "errors": errors, "items": items}).to_string(),
            )
        }));
        Elastic { rx, docs, creates }
    }

    fn count(&self) -> usize {
        self.docs.lock().unwrap().len()
    }
}

fn ship(data: &Path, config: &Path) -> Child {
    auditlog(data, config)
        .args(["ship", "--poll-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ship_sigkilled_mid_delivery_jetstream_and_elastic_hold_each_event_once() {
    let Some(bin) = nats_server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ns = Nats::start(&bin, &tmp.path().join("js"), &[]);
    let es = Elastic::start(Duration::from_millis(15));
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.json");
    let sinks = json!([
        {"name": "es", "destination": {"type": "elastic", "url": es.rx.base, "index": "audit"},
         "batch": {"max_events": 20, "flush_interval_ms": 20},
         "retry": {"initial_ms": 10, "max_ms": 100}},
        {"name": "js", "destination": {"type": "nats", "url": format!("nats://127.0.0.1:{}", ns.port),
            "stream": "AUDIT", "subject": "audit.{event_type}", "create_stream": true, "window": 8},
         "batch": {"max_events": 20, "flush_interval_ms": 20},
         "retry": {"initial_ms": 10, "max_ms": 100}}
    ]);
    let mut v: Value = serde_json::from_str(&config_json("", "")).unwrap();
    v["sinks"] = sinks;
    std::fs::write(&config, v.to_string()).unwrap();
    let log = writer(&data);
    let evs = common::events(12, 1200);
    log.append_batch(&evs[..800]).unwrap();

    let mut child = ship(&data, &config);
    wait("some deliveries", Duration::from_secs(60), || {
        es.count() >= 200
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = es.count();
    assert!(at_kill < 800, "ship finished before it was killed");
    // The kill landed mid-delivery: the cursor is behind what the receiver holds.
    let cursor: Value =
        serde_json::from_slice(&std::fs::read(data.join("sinks").join("es.cursor")).unwrap())
            .unwrap();
    let acked = cursor["acked_seq"].as_u64().map_or(0, |a| a + 1) as usize;
    assert!(
        acked <= at_kill,
        "cursor {acked} ahead of the receiver {at_kill}"
    );

    log.append_batch(&evs[800..]).unwrap();
    let mut child = ship(&data, &config);
    wait(
        "all 1200 events in Elasticsearch",
        Duration::from_secs(120),
        || es.count() == 1200,
    );
    let auth = NatsAuth::default();
    wait(
        "all 1200 events in JetStream",
        Duration::from_secs(120),
        || {
            let mut c = ns.client(&auth);
            c.js_api("$JS.API.STREAM.INFO.AUDIT", &json!({}))
                .ok()
                .and_then(|v| v["state"]["messages"].as_u64())
                == Some(1200)
        },
    );
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let st = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(st.success(), "ship: {st}: {err}");

    // Elasticsearch: each `_id` stored once, the document the event's; creates sent twice
    // only for the batch in flight at the kill (answered 409, counted as delivered).
    let docs = es.docs.lock().unwrap();
    for seq in 0..1200u64 {
        let d = &docs[&format!("{}-{seq}", log.log_id())];
        assert_eq!(d["seq"], json!(seq));
        assert_eq!(d["action"], json!(evs[seq as usize].action));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let creates = es.creates.lock().unwrap();
    for id in creates.iter() {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let dups: usize = seen.values().map(|n| n - 1).sum();
    assert!(dups <= 20, "{dups} creates resent, more than one batch");
    // JetStream: one message per `Nats-Msg-Id`, every seq.
    let msgs = stream_messages(&mut ns.client(&auth), "AUDIT");
    let ids: BTreeSet<&str> = msgs.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(ids.len(), 1200, "an event is held twice");
    assert_eq!(
        msgs.iter().map(|m| m.2).collect::<BTreeSet<u64>>(),
        (0..1200).collect::<BTreeSet<u64>>()
    );
    assert!(es.rx.requests() > 0);
}
