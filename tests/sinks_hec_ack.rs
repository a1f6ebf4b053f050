//! Splunk HEC indexer acknowledgement against a loopback receiver that enforces it: every
//! event request must carry `X-Splunk-Request-Channel`, gets an `ackId`, and the ack
//! endpoint (`/services/collector/ack?channel=…`, `{"acks":[id]}`) answers whether it was
//! indexed. The cursor moves only once the id is acknowledged; an id never acknowledged
//! makes the sink resend the batch; a 200 without an `ackId` parks it.
#![cfg(feature = "sinks")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditlog::sink::{self, SinkConfig};
use auditlog::{Durability, Log, Options};
use common::{events, key};
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    /// Event requests: (channel, ackId, event count).
    posts: Vec<(String, u64, usize)>,
    /// Ack polls answered, per ackId.
    polls: Vec<u64>,
    /// The ackIds the "indexer" has indexed.
    indexed: Vec<u64>,
    /// Answer event requests without an ackId (a token without acknowledgement).
    no_ack_id: bool,
    /// Index every new ackId at once from this one on.
    index_from: Option<u64>,
}

fn receiver(state: Arc<Mutex<State>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/services/collector/event",
        l.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (mut len, mut channel, mut auth) = (0usize, None, None);
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "x-splunk-request-channel" => channel = Some(v.trim().to_string()),
                    "authorization" => auth = Some(v.trim().to_string()),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let (status, text) = {
                let mut st = state.lock().unwrap();
                if auth.as_deref() != Some("Splunk hec-token") {
                    (401, json!({"text": "Invalid token", "code": 4}))
                } else if channel.is_none() {
                    (400, json!({"text": "Data channel is missing", "code": 10}))
                } else if target == "/services/collector/event" {
                    let n = std::str::from_utf8(&body).unwrap().lines().count();
                    let id = st.posts.len() as u64;
                    st.posts.push((channel.clone().unwrap(), id, n));
                    if st.index_from.is_some_and(|f| id >= f) {
                        st.indexed.push(id);
                    }
                    if st.no_ack_id {
                        (200, json!({"text": "Success", "code": 0}))
                    } else {
                        (200, json!({"text": "Success", "code": 0, "ackId": id}))
                    }
                } else if let Some(ch) = target.strip_prefix("/services/collector/ack?channel=") {
                    let want: Value = serde_json::from_slice(&body).unwrap();
                    let mut acks = serde_json::Map::new();
                    for id in want["acks"].as_array().unwrap() {
                        let id = id.as_u64().unwrap();
                        st.polls.push(id);
                        let known = st.posts.iter().any(|(c, i, _)| c == ch && *i == id);
                        acks.insert(id.to_string(), json!(known && st.indexed.contains(&id)));
                    }
                    (200, json!({ "acks": acks }))
                } else {
                    (404, json!({"text": "not found", "code": 404}))
                }
            };
            let text = text.to_string();
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            );
        }
    });
    url
}

fn start(dir: &std::path::Path, url: &str) -> (Log, sink::SinkHandle) {
    let log = Log::open(dir, Options::new(key()).durability(Durability::Sync)).unwrap();
    log.append_batch(&events(31, 20)).unwrap();
    let c: SinkConfig = serde_json::from_value(json!({
        "name": "hec",
        "destination": {"type": "splunk_hec", "url": url, "token": "hec-token",
                        "indexer_ack": true, "ack_timeout_secs": 1},
        "batch": {"max_events": 100, "flush_interval_ms": 20},
        "retry": {"initial_ms": 5, "max_ms": 20}
    }))
    .unwrap();
    c.validate().unwrap();
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    let h = sink::spawn(&log, c, t).unwrap();
    (log, h)
}

fn wait(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_cursor_moves_only_once_the_ack_id_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(Mutex::new(State::default()));
    let (_log, h) = start(dir.path(), &receiver(state.clone()));
    // Posted and polled twice, not yet indexed: nothing is acknowledged.
    wait("two ack polls", || state.lock().unwrap().polls.len() >= 2);
    assert_eq!(h.status().acked_seq, None);
    assert_eq!(h.status().delivered, 0);
    state.lock().unwrap().indexed.push(0);
    assert!(
        h.wait_acked(19, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    let st = state.lock().unwrap();
    assert_eq!(st.posts.len(), 1, "sent once");
    assert_eq!(st.posts[0].2, 20);
    assert!(st.polls.iter().all(|&p| p == 0));
    drop(st);
    assert_eq!(h.status().delivered, 20);
    h.stop();
}

#[test]
fn an_ack_id_never_acknowledged_resends_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    // The first ackId is lost by the indexer; later ones are indexed at once.
    let state = Arc::new(Mutex::new(State {
        index_from: Some(1),
        ..Default::default()
    }));
    let (_log, h) = start(dir.path(), &receiver(state.clone()));
    assert!(
        h.wait_acked(19, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    let st = state.lock().unwrap();
    assert_eq!(st.posts.len(), 2, "resent after the ack timeout");
    assert_eq!(st.posts[0].0, st.posts[1].0, "one channel");
    assert_eq!((st.posts[0].2, st.posts[1].2), (20, 20));
    drop(st);
    let s = h.status();
    assert_eq!((s.delivered, s.retried), (20, 1));
    h.stop();
}

#[test]
fn a_success_without_an_ack_id_parks_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(Mutex::new(State {
        no_ack_id: true,
        ..Default::default()
    }));
    let (_log, h) = start(dir.path(), &receiver(state));
    assert!(!h.wait_acked(19, Duration::from_secs(30)));
    let why = h.status().parked.expect("parked");
    assert!(
        why.contains("ackId") && why.contains("indexer acknowledgement"),
        "{why}"
    );
    h.stop();
}
