//! `auditlog serve` killed with SIGKILL during concurrent ingest loses nothing it acknowledged.
//!
//! docs/SERVER.md: "`--durability sync` (the default) means a 2xx answer to an ingest is sent
//! only once its events are on disk: a SIGKILL at any moment loses nothing that was
//! acknowledged". Three rounds on one data directory: a server (from round 2 on, one that
//! recovered the previous round's kill) takes events from four client threads posting single
//! events and small NDJSON batches; once some hundreds are acknowledged it is SIGKILLed in the
//! middle of the traffic. Then `auditlog verify` must pass on the killed directory as it lies,
//! and a server restarted on it must hold every acknowledged event (exactly as sent, MAC
//! verified), nothing that was never sent, nothing twice, and report the whole log valid.
//!
//! An event counts as acknowledged when its request's status line said 2xx; a request the
//! dying server did not answer is not acknowledged (its events may or may not be there).
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::{seed_event, Server, ADMIN, INGESTER, SERVER_KEY};

const ROUNDS: u32 = 3;
const THREADS: usize = 4;
/// Upper bound on the wait for acknowledgements before the kill (not a timing assertion: the
/// kill happens then anyway).
const MAX_WAIT: Duration = Duration::from_secs(15);

/// An event of round `round`, thread `t`, number `n`, in the seed's shape.
fn crash_event(round: u32, t: usize, n: u64) -> Value {
    let id = format!("crash-r{round}-t{t}-{n:06}");
    let mut e = seed_event(&id, n as u32);
    e["actor"]["user_id"] = json!(format!("crash-r{round}"));
    e["actor"]["email"] = json!(format!("writer{t}@company.com"));
    e["details"]["attempts_count"] = json!(n);
    e["details"]["writer"] = json!(t);
    e
}

/// POSTs `body` to the ingest route on a fresh connection. `Some(status)` when a status line
/// came back; `None` when the server was not there to answer (refused, reset, cut off).
fn try_post(addr: SocketAddr, body: &[u8], content_type: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(60))).ok()?;
    let head = format!(
        "POST /api/audit-logs HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {INGESTER}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    // A connection reset after the head arrived still counts what arrived.
    let _ = s.read_to_end(&mut raw);
    let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&raw[..line_end]).ok()?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| raw[p + 4..].to_vec())
        .unwrap_or_default();
    Some((status, body))
}

/// What one client thread did.
#[derive(Default)]
struct Sent {
    /// Every event id it sent, answered or not.
    sent: Vec<String>,
    /// Ids of events in requests answered 2xx.
    acked: Vec<String>,
    /// Its last acknowledged event, as sent.
    last_acked: Option<Value>,
}

/// Posts until `stop`: a single event (JSON) or an NDJSON batch of 2 to 8, at random.
fn writer(
    addr: SocketAddr,
    round: u32,
    t: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Sent {
    let mut rng = auditlog::sample::Rng::new(0x5eed ^ ((round as u64) << 8) ^ t as u64);
    let mut out = Sent::default();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let k = if rng.below(2) == 0 {
            1
        } else {
            2 + rng.below(7)
        };
        let events: Vec<Value> = (0..k).map(|i| crash_event(round, t, n + i)).collect();
        n += k;
        let ids: Vec<String> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect();
        out.sent.extend(ids.iter().cloned());
        let (body, ctype) = if k == 1 {
            (events[0].to_string(), "application/json")
        } else {
            let mut b = String::new();
            for e in &events {
                b.push_str(&e.to_string());
                b.push('\n');
            }
            (b, "application/x-ndjson")
        };
        match try_post(addr, body.as_bytes(), ctype) {
            Some((status, resp)) if (200..300).contains(&status) => {
                // The body may be cut by the kill; when it is whole, it must agree.
                if let Ok(v) = serde_json::from_slice::<Value>(&resp) {
                    assert_eq!(v["accepted"], k, "{v}");
                    let got: Vec<&str> = v["receipts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["event_id"].as_str().unwrap())
                        .collect();
                    assert_eq!(got, ids, "receipts of {ids:?}");
                }
                acked.fetch_add(ids.len(), Ordering::SeqCst);
                out.acked.extend(ids);
                out.last_acked = events.last().cloned();
            }
            Some((status, resp)) => {
                // Only the dying server may fail a request; a live one answers 2xx.
                if !stop.load(Ordering::SeqCst) {
                    panic!(
                        "ingest answered {status}: {}",
                        String::from_utf8_lossy(&resp)
                    );
                }
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    out
}

/// Every event of round `round` a query returns (`user_id=crash-r{round}`), all pages.
fn stored_ids(s: &Server, round: u32) -> Vec<String> {
    let mut url = format!("/api/audit-logs?user_id=crash-r{round}&limit=10000&order=asc");
    let mut ids = Vec::new();
    let mut total = None;
    loop {
        let r = s.get(&url, Some(ADMIN));
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let p = r.json();
        total.get_or_insert(p["total_count"].as_u64().unwrap());
        for e in p["audit_logs"].as_array().unwrap() {
            assert_eq!(e["verification"]["verified"], true, "{e}");
            ids.push(e["event_id"].as_str().unwrap().to_string());
        }
        match p["next_page"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(
        total,
        Some(ids.len() as u64),
        "total_count of round {round}"
    );
    ids
}

/// `auditlog verify` on the directory exits 0.
fn cli_verify(dir: &std::path::Path, when: &str) {
    let out = server::auditlog(&dir.join("data"), &dir.join("config.json"))
        .arg("verify")
        .output()
        .expect("run auditlog verify");
    assert!(
        out.status.success(),
        "auditlog verify {when}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigkill_during_concurrent_ingest_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = server::default_config();
    let mut s = Server::start(dir.path(), &config, &[]);
    // Per round: acknowledged ids, every sent id.
    let mut acked_by_round: Vec<Vec<String>> = Vec::new();
    let mut sent_by_round: Vec<HashSet<String>> = Vec::new();
    for round in 1..=ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let addr = s.addr;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (stop, acked) = (stop.clone(), acked.clone());
                std::thread::spawn(move || writer(addr, round, t, stop, acked))
            })
            .collect();
        // Kill at a different point each round, mid-traffic.
        let target = 400 * round as usize;
        let started = Instant::now();
        while acked.load(Ordering::SeqCst) < target && started.elapsed() < MAX_WAIT {
            assert!(
                !handles.iter().any(|h| h.is_finished()),
                "a writer thread stopped early (see its panic)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        s.kill();
        stop.store(true, Ordering::SeqCst);
        let mut round_acked = Vec::new();
        let mut round_sent = HashSet::new();
        let mut last_acked = Vec::new();
        for h in handles {
            let w = h.join().expect("writer thread panicked");
            round_acked.extend(w.acked);
            round_sent.extend(w.sent);
            last_acked.extend(w.last_acked);
        }
        assert!(
            !round_acked.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        eprintln!(
            "round {round}: {} events acknowledged, {} sent, before SIGKILL",
            round_acked.len(),
            round_sent.len()
        );
        acked_by_round.push(round_acked);
        sent_by_round.push(round_sent);

        // The killed directory, as it lies, verifies.
        cli_verify(dir.path(), &format!("after the SIGKILL of round {round}"));

        // Restarted on it: every acknowledged event of this and every earlier round is there,
        // once; nothing that was never sent.
        s = Server::start(dir.path(), &config, &[]);
        for (i, (acked, sent)) in acked_by_round.iter().zip(&sent_by_round).enumerate() {
            let r = i as u32 + 1;
            let stored = stored_ids(&s, r);
            let set: BTreeSet<&String> = stored.iter().collect();
            assert_eq!(set.len(), stored.len(), "round {r}: an event stored twice");
            let lost: Vec<&String> = acked.iter().filter(|id| !set.contains(id)).collect();
            assert!(
                lost.is_empty(),
                "after round {round}: {} acknowledged events of round {r} lost, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            );
            let phantom: Vec<&&String> = set.iter().filter(|id| !sent.contains(**id)).collect();
            assert!(phantom.is_empty(), "round {r}: never sent: {phantom:?}");
        }
        // The last acknowledged event of each writer, the closest to the kill, reads back as
        // sent with its MAC rechecked.
        for e in &last_acked {
            let id = e["event_id"].as_str().unwrap();
            let r = s.get(&format!("/api/audit-logs/{id}"), Some(ADMIN));
            assert_eq!(r.status, 200, "{id}: {}", r.text());
            let got = r.json();
            assert_eq!(got["verification"]["verified"], true, "{got}");
            for k in ["event_id", "event_type", "action", "status", "severity"] {
                assert_eq!(got[k], e[k], "{k} of {id}");
            }
            assert_eq!(got["actor"], e["actor"], "actor of {id}");
            assert_eq!(got["details"], e["details"], "details of {id}");
        }
        // And the server finds the whole log valid.
        let r = s.get("/api/audit-logs/verify", Some(ADMIN));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["ok"], true, "after round {round}: {v}");
        assert_eq!(v["failure"], Value::Null, "after round {round}: {v}");
    }

    // Finally a clean stop, and the directory opened directly agrees.
    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
    cli_verify(dir.path(), "after the final SIGTERM");
    let key = auditlog::HmacKey::from_bytes(SERVER_KEY.as_bytes()).unwrap();
    let log = auditlog::Log::open_read_only(dir.path().join("data"), key).unwrap();
    let report = log.verify().unwrap();
    assert!(report.ok, "{report:?}");
    let mut per_round: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, acked) in acked_by_round.iter().enumerate() {
        for id in acked {
            assert!(log.find_event(id).unwrap().is_some(), "{id} lost");
        }
        per_round.insert(i as u32 + 1, acked.len());
    }
    eprintln!("acknowledged per round: {per_round:?}");
}
