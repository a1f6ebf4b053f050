//! The configured sinks run by the binary: `auditlog serve` delivers in-process and shows
//! each sink in `/metrics`, stopping them at shutdown; `auditlog sinks status` and
//! `stats --json` read the cursor files; `auditlog ship` delivers beside a writer process
//! (this test process appends while it runs) and, killed with SIGKILL mid-way and
//! restarted, skips nothing.
#![cfg(all(feature = "sinks", feature = "server"))]

mod common;
#[path = "common/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditlog::{Durability, HmacKey, Log, Options};
use common::SMALL_SEGMENT;
use serde_json::{json, Value};
use server::{auditlog, config_json, seed_event, Server, INGESTER, READER, SERVER_KEY};

/// A loopback webhook receiver: records the events of every request (2xx), after waiting
/// `delay_ms` per request; answers 503 to the first `fail_first` requests.
struct Receiver {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicU64>,
    /// The `Authorization` header of every request.
    auth: Arc<Mutex<Vec<Option<String>>>>,
}

impl Receiver {
    fn start(delay_ms: u64, fail_first: u64) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let auth = Arc::new(Mutex::new(Vec::new()));
        let (evs, reqs, au) = (events.clone(), requests.clone(), auth.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut len = 0usize;
                let mut authorization = None;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 {
                        break;
                    }
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.trim().eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        }
                        if k.trim().eq_ignore_ascii_case("authorization") {
                            authorization = Some(v.trim().to_string());
                        }
                    }
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    continue;
                }
                au.lock().unwrap().push(authorization);
                std::thread::sleep(Duration::from_millis(delay_ms));
                let n = reqs.fetch_add(1, Ordering::AcqRel);
                let status = if n < fail_first {
                    "503 Unavailable"
                } else {
                    let v: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
                    let batch = v["data"]["events"].as_array().expect("events").clone();
                    evs.lock().unwrap().extend(batch);
                    "200 OK"
                };
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Receiver {
            url,
            events,
            requests,
            auth,
        }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Received events by seq, with how many times each came.
    fn by_seq(&self) -> BTreeMap<u64, usize> {
        let mut m = BTreeMap::new();
        for e in self.events() {
            *m.entry(e["seq"].as_u64().expect("seq")).or_insert(0) += 1;
        }
        m
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {} events in {} requests",
                self.events().len(),
                self.requests.load(Ordering::Acquire)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The server test config plus a `sinks` list.
/// A receiver answering 401 to everything (a permanent error: the sink parks).
fn refusing_receiver() -> String {
    let refuse = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", refuse.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in refuse.incoming().flatten() {
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    url
}

/// SIGTERM (with the `kill` command), then the exit status.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let st = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "ship did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_with_sinks(sinks: Value) -> String {
    let mut v: Value = serde_json::from_str(&config_json("", "")).unwrap();
    v["sinks"] = sinks;
    v.to_string()
}

fn hook(name: &str, url: &str, max_events: usize) -> Value {
    json!({
        "name": name,
        "destination": {"type": "webhook", "url": url},
        "batch": {"max_events": max_events, "flush_interval_ms": 20},
        "retry": {"initial_ms": 10, "max_ms": 40}
    })
}

fn run_json(data: &Path, config: &Path, args: &[&str]) -> Value {
    let o = auditlog(data, config).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("prints JSON")
}

#[test]
fn serve_runs_the_sinks_reports_them_in_metrics_and_stops_them_at_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let rx = Receiver::start(0, 2);
    let refuse_url = refusing_receiver();
    let mut only_auth = hook("auth", &rx.url, 5);
    only_auth["filter"] = json!({"event_types": ["authentication"]});
    only_auth["destination"]["bearer_token"] = json!("env.HOOK_TOKEN");
    let cfg = config_with_sinks(json!([only_auth, hook("denied", &refuse_url, 5)]));
    let s = Server::start(tmp.path(), &cfg, &[("HOOK_TOKEN", "tok-123")]);
    let evs: Vec<Value> = (0..12).map(|i| seed_event(&format!("ev-{i}"), i)).collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(evs));
    assert!(r.status < 300, "ingest: {}", r.status);
    rx.wait_for("the 12 ingested events", Duration::from_secs(30), |r| {
        let ids: Vec<String> = r
            .events()
            .iter()
            .filter_map(|e| e["event_id"].as_str().map(str::to_string))
            .collect();
        (0..12).all(|i| ids.contains(&format!("ev-{i}")))
    });
    // Bearer auth from the environment on every request.
    assert!(rx
        .auth
        .lock()
        .unwrap()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer tok-123")));
    // Only authentication events: the server's own data_access events are filtered out.
    assert!(rx
        .events()
        .iter()
        .all(|e| e["event_type"] == "authentication"));

    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = String::from_utf8(s.get("/metrics", Some(READER)).body).unwrap();
        if m.contains("auditlog_sink_parked{sink=\"denied\"} 1")
            && m.contains("auditlog_sink_delivered_events_total{sink=\"auth\"} 12")
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed both sinks:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(m.contains("# TYPE auditlog_sink_lag_events gauge"), "{m}");
    assert!(
        m.contains("# TYPE auditlog_sink_retries_total counter"),
        "{m}"
    );
    assert!(
        m.contains("auditlog_sink_retries_total{sink=\"auth\"} 2"),
        "{m}"
    );
    assert!(m.contains("auditlog_sink_parked{sink=\"auth\"} 0"), "{m}");
    assert!(
        m.contains("auditlog_sink_lag_events{sink=\"denied\"}"),
        "{m}"
    );

    let (data, config) = (s.data.clone(), s.config.clone());
    assert!(s.terminate().success());
    // After shutdown the cursor files say the same, and lag counts every record after the
    // acknowledged one.
    let st = run_json(&data, &config, &["sinks", "status", "--json"]);
    let st = st.as_array().unwrap();
    assert_eq!(st.len(), 2);
    let auth = &st[0];
    assert_eq!(auth["name"], "auth");
    assert_eq!(auth["delivered"], 12);
    assert_eq!(auth["retried"], 2);
    assert!(auth["parked"].is_null());
    let denied = &st[1];
    assert_eq!(denied["name"], "denied");
    assert!(
        denied["parked"].as_str().unwrap().contains("401"),
        "{denied}"
    );
    assert_eq!(denied["delivered"], 0);
    let stats = run_json(&data, &config, &["stats", "--json"]);
    let next = stats["last_seq"].as_u64().unwrap() + 1;
    assert_eq!(stats["sinks"][1]["lag"], next, "{stats}");
    assert_eq!(stats["sinks"][0]["delivered"], 12, "{stats}");
}

fn writer(data: &Path) -> Log {
    Log::open(
        data,
        Options::new(HmacKey::from_bytes(SERVER_KEY.as_bytes()).unwrap())
            .durability(Durability::Sync)
            .segment_bytes(SMALL_SEGMENT),
    )
    .unwrap()
}

fn ship(data: &Path, config: &Path, extra: &[&str]) -> Child {
    auditlog(data, config)
        .args(["ship", "--poll-ms", "50"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ship_follows_a_writer_process_and_skips_nothing_after_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.json");
    // A slow receiver, so that `ship` is mid-way when it is killed.
    let rx = Receiver::start(15, 0);
    std::fs::write(
        &config,
        config_with_sinks(json!([hook("ship", &rx.url, 10)])),
    )
    .unwrap();
    let log = writer(&data);
    let evs = common::events(7, 900);
    log.append_batch(&evs[..100]).unwrap();

    let mut child = ship(&data, &config, &[]);
    // The writer (this process) keeps appending, across several segment rolls.
    for chunk in evs[100..600].chunks(25) {
        log.append_batch(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        common::segment_paths(&data).len() > 2,
        "the test should roll segments"
    );
    rx.wait_for("some deliveries", Duration::from_secs(60), |r| {
        r.events().len() >= 150
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before_kill = rx.events().len();
    assert!(before_kill < 600, "ship finished before it was killed");

    // More appended while nothing ships, then a restart that runs until stopped.
    log.append_batch(&evs[600..800]).unwrap();
    let mut child = ship(&data, &config, &[]);
    log.append_batch(&evs[800..]).unwrap();
    rx.wait_for("all 900 events", Duration::from_secs(120), |r| {
        r.by_seq().len() == 900
    });
    let status = terminate(&mut child);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "ship: {status}: {err}");

    let got = rx.by_seq();
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..900).collect::<Vec<u64>>()
    );
    // At-least-once: a duplicate only from the batch in flight at the kill.
    let dups: usize = got.values().map(|n| n - 1).sum();
    assert!(dups <= 10, "{dups} duplicates, more than one batch");
    // Every event arrived as appended.
    for e in rx.events() {
        let seq = e["seq"].as_u64().unwrap() as usize;
        assert_eq!(e["action"], evs[seq].action.as_str(), "seq {seq}");
        assert_eq!(e["event_type"], evs[seq].event_type.as_str(), "seq {seq}");
    }
    drop(log);
    let st = run_json(&data, &config, &["sinks", "status", "--json"]);
    assert_eq!(st[0]["acked_seq"], 899, "{st}");
    assert_eq!(st[0]["lag"], 0, "{st}");
}

#[test]
fn ship_once_delivers_what_is_there_and_fails_when_every_sink_parks() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.json");
    let rx = Receiver::start(0, 0);
    std::fs::write(
        &config,
        config_with_sinks(json!([hook("once", &rx.url, 50)])),
    )
    .unwrap();
    let log = writer(&data);
    log.append_batch(&common::events(3, 120)).unwrap();
    let o = auditlog(&data, &config)
        .args(["ship", "--once"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rx.by_seq().len(), 120);
    assert!(String::from_utf8_lossy(&o.stdout).contains("once"));

    // Every sink parked: `ship` says why and fails.
    let refuse = refusing_receiver();
    std::fs::write(
        &config,
        config_with_sinks(json!([hook("nope", &refuse, 50)])),
    )
    .unwrap();
    let o = auditlog(&data, &config).args(["ship"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("every sink parked") && err.contains("401"),
        "{err}"
    );

    // No sinks configured: a clear error.
    std::fs::write(&config, config_with_sinks(json!([]))).unwrap();
    let o = auditlog(&data, &config).args(["ship"]).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no enabled sink"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn serve_killed_mid_delivery_resumes_from_the_cursor_and_skips_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // A slow receiver, so that deliveries are in flight when the server is killed.
    let rx = Receiver::start(20, 0);
    let mut h = hook("ingested", &rx.url, 10);
    h["filter"] = json!({"event_types": ["authentication"]});
    let cfg = config_with_sinks(json!([h]));
    let s = Server::start(tmp.path(), &cfg, &[]);
    let evs: Vec<Value> = (0..300).map(|i| seed_event(&format!("k-{i}"), i)).collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(evs));
    assert!(r.status < 300, "ingest: {}", r.status);
    rx.wait_for("some deliveries", Duration::from_secs(60), |r| {
        r.events().len() >= 50
    });
    s.kill();
    let before = rx.events().len();
    assert!(before < 300, "everything arrived before the kill");

    let s = Server::start(tmp.path(), &cfg, &[]);
    let ids = |r: &Receiver| -> std::collections::BTreeSet<String> {
        r.events()
            .iter()
            .filter_map(|e| e["event_id"].as_str().map(str::to_string))
            .collect()
    };
    rx.wait_for(
        "all 300 events after the restart",
        Duration::from_secs(60),
        |r| ids(r).len() == 300,
    );
    assert!(s.terminate().success());
    // At-least-once: only the batch in flight at the kill may come twice.
    let got = rx.by_seq();
    let dups: usize = got.values().map(|n| n - 1).sum();
    assert!(dups <= 10, "{dups} duplicates, more than one batch");
}

#[test]
fn one_process_at_a_time_runs_the_sinks_of_a_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.json");
    let rx = Receiver::start(0, 0);
    let cfg = config_with_sinks(json!([hook("one", &rx.url, 20)]));
    std::fs::write(&config, &cfg).unwrap();
    let log = writer(&data);
    log.append_batch(&common::events(8, 50)).unwrap();
    let mut first = ship(&data, &config, &[]);
    rx.wait_for(
        "the first ship's deliveries",
        Duration::from_secs(60),
        |r| r.by_seq().len() == 50,
    );

    // A second `ship`: refused, naming the lock file and who holds it.
    let o = auditlog(&data, &config)
        .args(["ship", "--once"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let lock = data.join("sinks").join("LOCK");
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert!(
        err.contains(&format!("auditlog ship (pid {})", first.id())),
        "{err}"
    );
    // A `serve` with sinks on the same directory: refused as well (once the writer is gone,
    // so that the log's own lock is free).
    drop(log);
    let e = Server::try_start(tmp.path(), &cfg, &[], &[])
        .err()
        .expect("serve must not start its sinks beside a running ship");
    assert!(e.contains(&lock.display().to_string()), "{e}");
    // The lock dies with its holder, even by SIGKILL: the next `ship` runs.
    first.kill().unwrap();
    first.wait().unwrap();
    let log = writer(&data);
    log.append_batch(&common::events(9, 30)).unwrap();
    let o = auditlog(&data, &config)
        .args(["ship", "--once"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rx.by_seq().len(), 80);
}

fn failed_login(user: &str) -> auditlog::Event {
    let mut e = auditlog::Event::new("authentication", "user_login");
    e.status = "failed".into();
    e.actor.user_id = Some(user.into());
    e
}

#[test]
fn ship_runs_the_alert_rules_and_its_sinks_deliver_the_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.json");
    let rx = Receiver::start(0, 0);
    let mut h = hook("sec", &rx.url, 20);
    h["filter"] = json!({"event_types": ["security"]});
    let mut v: Value = serde_json::from_str(&config_with_sinks(json!([h]))).unwrap();
    v["alerts"] = json!({"rules": [
        {"name": "brute", "kind": "failed_logins", "threshold": 3, "window": "5m", "by": "user"}
    ]});
    std::fs::write(&config, v.to_string()).unwrap();
    let log = writer(&data);
    let mut evs: Vec<auditlog::Event> = (0..20)
        .map(|_| auditlog::Event::new("data_access", "record_read"))
        .collect();
    for u in ["mallory", "mallory", "mallory"] {
        evs.push(failed_login(u));
    }
    log.append_batch(&evs).unwrap();
    let trigger: Vec<u64> = (20..23).collect();

    let o = auditlog(&data, &config)
        .args(["ship", "--once", "--poll-ms", "50"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("sec@alerts"), "{out}");
    let alerts = |rx: &Receiver| -> Vec<Value> {
        rx.events()
            .into_iter()
            .filter(|e| e["action"] == "alert_triggered")
            .collect()
    };
    let got = alerts(&rx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(rx.events().len(), 1, "only security events pass the filter");
    let a = &got[0];
    assert_eq!(a["event_type"], "security");
    assert_eq!(a["details"]["rule"], "brute");
    assert_eq!(a["details"]["key"], "mallory");
    assert_eq!(a["details"]["trigger_seqs"], json!(trigger));
    // The alert is in the alert log, hash-chained under the same key.
    let key = HmacKey::from_bytes(SERVER_KEY.as_bytes()).unwrap();
    let al = Log::open_read_only(data.join("sinks").join("alerts-log"), key.clone()).unwrap();
    assert_eq!(al.next_seq(), 1);
    assert!(al.verify().unwrap().ok);
    drop(al);

    // Again: nothing new is raised or delivered (the cursors moved).
    let o = auditlog(&data, &config)
        .args(["ship", "--once", "--poll-ms", "50"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(alerts(&rx).len(), 1);

    // A burst of another user raises one more alert; mallory's next failure is within the
    // cooldown.
    let more: Vec<auditlog::Event> = ["eve", "mallory", "eve", "eve"]
        .iter()
        .map(|u| failed_login(u))
        .collect();
    log.append_batch(&more).unwrap();
    let o = auditlog(&data, &config)
        .args(["ship", "--once", "--poll-ms", "50"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = alerts(&rx);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["details"]["key"], "eve");
    assert_eq!(got[1]["details"]["trigger_seqs"], json!([23, 25, 26]));
}
