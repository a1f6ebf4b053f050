//! End-to-end tests of `auditlog serve` over HTTP, against docs/SERVER.md: every route on both
//! prefixes (queries and their paging, `POST …/query`, single events, filterdata, export,
//! ingest in all its body forms and failures, verification with checkpoints, health, metrics,
//! OpenAPI), the role table, the `authentication`/`authorization` events of refusals, lockout
//! and the per-minute limit on failure events, the `data_access` event of every read, tokens
//! never written anywhere, and the ingestion policy (category toggles, `disabled`, the
//! `BIFROST_AUDIT_*` variables, field HMAC, `omit_ip_addresses`).
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use server::{config_json, seed_event, Response, Server, ADMIN, EXPORTER, INGESTER, READER};

const PREFIXES: [&str; 2] = ["/api/audit-logs", "/api/enterprise/audit-logs"];
/// A well-formed token that is not configured.
const WRONG: &str = "wrong-token-not-configured-42";
/// A field key for `audit_logs.field_hmac_key` (32+ bytes).
const FIELD_KEY: &str = "field-hmac-key-for-tests-0123456789abcdef";
/// Every query of the dataset below is bounded to 2024 so that the server's own events
/// (`data_access` and refusals, timestamped now) are never among the answers.
const IN_2024: &str = "end_date=2024-12-31";

// ------------------------------------------------------------------ helpers

/// Percent-encodes a query-string value.
fn enc(s: &str) -> String {
    let mut o = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Asserts a JSON error answer of `status` (`{"error": {code, message, param?}}`) and returns
/// its `error` object.
fn json_error(r: &Response, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{what}: error content-type {ct:?}: {}",
        r.text()
    );
    let v = r.json();
    let e = v["error"].clone();
    assert!(e["code"].is_string(), "{what}: no error.code: {v}");
    assert!(e["message"].is_string(), "{what}: no error.message: {v}");
    e
}

/// Asserts a 400 naming `param`.
fn bad_param(r: &Response, param: &str, what: &str) -> Value {
    let e = json_error(r, 400, what);
    assert_eq!(e["param"], param, "{what}: the error names {}", e);
    e
}

fn ts(v: &Value) -> DateTime<Utc> {
    let s = v["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("timestamp: {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("timestamp {s:?}: {e}"))
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn id_of(e: &Value) -> String {
    e["event_id"]
        .as_str()
        .unwrap_or_else(|| panic!("event_id: {e}"))
        .to_string()
}

fn sv<'a>(e: &'a Value, ptr: &str) -> Option<&'a str> {
    e.pointer(ptr).and_then(Value::as_str)
}

/// `ip` is inside `cidr` (an address or `addr/len`).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) => (n, Some(l.parse::<u32>().unwrap())),
        None => (cidr, None),
    };
    let (Ok(ip), Ok(net)) = (ip.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let l = len.unwrap_or(32);
            let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            u32::from(a) & m == u32::from(b) & m
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let l = len.unwrap_or(128);
            let m = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}

/// The test dataset: 300 events in the seed's shape, every filtered field varied.
fn dataset() -> Vec<Value> {
    let types: [(&str, [&str; 3]); 5] = [
        (
            "authentication",
            ["user_login", "user_logout", "mfa_challenge"],
        ),
        (
            "authorization",
            ["access_denied", "permission_granted", "role_check"],
        ),
        (
            "configuration_change",
            ["virtual_key_update", "provider_update", "setting_change"],
        ),
        (
            "user_management",
            ["user_created", "user_deleted", "role_assigned"],
        ),
        (
            "security_event",
            [
                "prompt_injection",
                "jailbreak_attempt",
                "rate_limit_violation",
            ],
        ),
    ];
    let statuses = ["success", "failed", "blocked"];
    let sevs = ["info", "low", "medium", "high", "critical"];
    let users = [
        ("user-alice-001", "alice@company.com"),
        ("user-bob-002", "bob@company.com"),
        ("user-carol-003", "carol@company.com"),
        // Alice's address, cased differently: the email filter is case-insensitive.
        ("user-dave-004", "ALICE@Company.com"),
    ];
    let ips = [
        Some("203.0.113.42"),
        Some("203.0.113.7"),
        Some("198.51.100.5"),
        Some("10.1.2.3"),
        Some("2001:db8::1"),
        Some("2001:db8:1::5"),
        None,
    ];
    let rtypes = ["virtual_key", "provider", "team"];
    (0..300u32)
        .map(|i| {
            let (ty, actions) = types[(i % 5) as usize];
            let (uid, email) = users[((i / 3) % 4) as usize];
            let mut actor = json!({"user_id": uid, "email": email});
            if let Some(ip) = ips[(i % 7) as usize] {
                actor["ip_address"] = json!(ip);
            }
            let mut e = json!({
                "event_id": format!("evt_{i:04}"),
                "timestamp": format!(
                    "2024-01-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                    1 + (i * 11) % 20,
                    (i * 5) % 24,
                    i % 60,
                    (i * 13) % 60,
                    1 + i % 999
                ),
                "event_type": ty,
                "action": actions[((i * 7) % 3) as usize],
                "status": statuses[((i / 2) % 3) as usize],
                "severity": sevs[((i * 3 + i / 5) % 5) as usize],
                "actor": actor,
                "details": {"n": i, "note": format!("event number {i}")},
            });
            if i % 4 != 0 {
                e["resource"] =
                    json!({"type": rtypes[(i % 3) as usize], "id": format!("vk-{}", i % 5)});
            }
            e
        })
        .collect()
}

fn ingest(s: &Server, events: &[Value]) -> Vec<Value> {
    let r = s.post_json(
        "/api/audit-logs",
        Some(INGESTER),
        &Value::Array(events.to_vec()),
    );
    assert_eq!(r.status, 200, "ingest: {}", r.text());
    let v = r.json();
    assert_eq!(v["accepted"], events.len(), "{v}");
    assert_eq!(v["dropped"], 0, "{v}");
    v["receipts"].as_array().unwrap().clone()
}

/// Checks a page's seed shape and each event against what was ingested; returns its events.
fn check_page(page: &Value, ingested: &HashMap<String, Value>, details: bool) -> Vec<Value> {
    let o = page
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {page}"));
    let keys: BTreeSet<&str> = o.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "total_count",
            "returned_count",
            "page",
            "audit_logs",
            "next_page"
        ]),
        "top-level keys of {page}"
    );
    for k in ["total_count", "returned_count", "page"] {
        assert!(o[k].is_u64(), "{k} is not a count: {page}");
    }
    let logs = o["audit_logs"].as_array().unwrap();
    assert_eq!(o["returned_count"], logs.len());
    assert!(o["next_page"].is_string() || o["next_page"].is_null());
    for e in logs {
        let id = id_of(e);
        let sent = ingested
            .get(&id)
            .unwrap_or_else(|| panic!("returned {id}, which was not ingested: {e}"));
        assert!(e["seq"].is_u64(), "seq of {e}");
        let hash = sv(e, "/verification/hash").unwrap_or_else(|| panic!("hash of {e}"));
        assert!(
            hash.starts_with("hmac-sha256:") && hash.len() == 12 + 64,
            "verification.hash {hash:?}"
        );
        assert_eq!(e["verification"]["verified"], true, "{e}");
        assert_eq!(ts(e), ts(sent), "timestamp of {id}");
        for k in [
            "event_type",
            "action",
            "status",
            "severity",
            "actor",
            "resource",
        ] {
            assert_eq!(
                e.get(k).unwrap_or(&Value::Null),
                sent.get(k).unwrap_or(&Value::Null),
                "{k} of {id}"
            );
        }
        if details {
            assert_eq!(e["details"], sent["details"], "details of {id}");
        } else {
            assert!(
                e.get("details").is_none_or(|d| d.is_null()),
                "include_details=false still gave details: {e}"
            );
        }
    }
    logs.clone()
}

/// Follows `next_page` from `first` to the end; checks every page (the prefix kept, page
/// numbers counting up, `total_count` the same) and returns every event in order.
fn follow(
    s: &Server,
    first: &str,
    token: &str,
    ingested: &HashMap<String, Value>,
    details: bool,
) -> (u64, Vec<Value>) {
    follow_from(s, first, 1, token, ingested, details)
}

/// [`follow`] from a link to page `start`.
fn follow_from(
    s: &Server,
    first: &str,
    start: u64,
    token: &str,
    ingested: &HashMap<String, Value>,
    details: bool,
) -> (u64, Vec<Value>) {
    let prefix = if first.starts_with("/api/enterprise/") {
        "/api/enterprise/audit-logs?"
    } else {
        "/api/audit-logs?"
    };
    let mut url = first.to_string();
    let mut out = Vec::new();
    let mut total = None;
    for n in start.. {
        assert!(n < 1000, "next_page never ends");
        let r = s.get(&url, Some(token));
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let p = r.json();
        out.extend(check_page(&p, ingested, details));
        let t = p["total_count"].as_u64().unwrap();
        assert_eq!(*total.get_or_insert(t), t, "total_count changed at {url}");
        assert_eq!(p["page"], n, "page number at {url}");
        match p["next_page"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(prefix),
                    "next_page {next:?} left the prefix {prefix}"
                );
                assert!(
                    (out.len() as u64) < t,
                    "a next_page after all {t} were returned"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    (total.unwrap_or(0), out)
}

fn by_id(events: &[Value]) -> HashMap<String, Value> {
    events.iter().map(|e| (id_of(e), e.clone())).collect()
}

/// The ids of `events` matching `f`, newest first (ties: later ingested first).
fn expected(events: &[Value], f: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut m: Vec<(DateTime<Utc>, usize, String)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| f(e))
        .map(|(i, e)| (ts(e), i, id_of(e)))
        .collect();
    m.sort_by_key(|b| std::cmp::Reverse((b.0, b.1)));
    m.into_iter().map(|(_, _, id)| id).collect()
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(id_of).collect()
}

fn assert_once(ids: &[String], what: &str) {
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "{what}: an event was returned twice");
}

/// All events matching `query` (a GET query string), as admin, every page followed.
fn query_all(s: &Server, query: &str) -> Vec<Value> {
    let mut url = format!("/api/audit-logs?limit=1000&{query}");
    let mut out = Vec::new();
    loop {
        let r = s.get(&url, Some(ADMIN));
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let p = r.json();
        out.extend(p["audit_logs"].as_array().unwrap().iter().cloned());
        match p["next_page"].as_str() {
            Some(n) => url = n.to_string(),
            None => return out,
        }
    }
}

/// The value of a metric line `name_and_labels VALUE`.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    })
}

/// RFC 4180 records of a CSV text.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => rec.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                rec.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut rec));
            }
            c => field.push(c),
        }
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        out.push(rec);
    }
    out
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Incompressible text of `n` bytes (so an event's encoded size is about its JSON size).
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[(x % 62) as usize]
                as char
        })
        .collect()
}

fn start_with_data(dir: &Path, config: &str) -> (Server, Vec<Value>, HashMap<String, Value>) {
    let s = Server::start(dir, config, &[]);
    let events = dataset();
    ingest(&s, &events);
    let map = by_id(&events);
    (s, events, map)
}

// ------------------------------------------------------------------ 1. queries

type Filter = Box<dyn Fn(&Value) -> bool>;

#[test]
fn get_query_filters_paging_and_shape_on_both_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events, map) = start_with_data(dir.path(), &server::default_config());
    let before_2025 = |e: &Value| ts(e) < utc("2025-01-01T00:00:00Z");
    let cases: Vec<(String, Filter)> = vec![
        (
            format!("event_type=authentication&{IN_2024}"),
            Box::new(|e| e["event_type"] == "authentication"),
        ),
        (
            format!("event_type=authentication,authorization&{IN_2024}"),
            Box::new(|e| e["event_type"] == "authentication" || e["event_type"] == "authorization"),
        ),
        (
            format!("event_type=authentication&event_type=authorization&{IN_2024}"),
            Box::new(|e| e["event_type"] == "authentication" || e["event_type"] == "authorization"),
        ),
        (
            format!("action=user_login&status=failed&{IN_2024}"),
            Box::new(|e| e["action"] == "user_login" && e["status"] == "failed"),
        ),
        (
            format!("status=failed,blocked&severity=high&severity=critical&{IN_2024}"),
            Box::new(|e| {
                (e["status"] == "failed" || e["status"] == "blocked")
                    && (e["severity"] == "high" || e["severity"] == "critical")
            }),
        ),
        (
            "user_id=user-alice-001".into(),
            Box::new(|e| e["actor"]["user_id"] == "user-alice-001"),
        ),
        (
            "user_id=user-bob-002,user-carol-003".into(),
            Box::new(|e| {
                e["actor"]["user_id"] == "user-bob-002" || e["actor"]["user_id"] == "user-carol-003"
            }),
        ),
        (
            format!("email=alice%40company.com&{IN_2024}"),
            Box::new(|e| {
                sv(e, "/actor/email").is_some_and(|m| m.eq_ignore_ascii_case("alice@company.com"))
            }),
        ),
        (
            format!("ip={}&{IN_2024}", enc("203.0.113.0/24")),
            Box::new(|e| sv(e, "/actor/ip_address").is_some_and(|i| in_cidr(i, "203.0.113.0/24"))),
        ),
        (
            format!("ip=198.51.100.5&{IN_2024}"),
            Box::new(|e| sv(e, "/actor/ip_address") == Some("198.51.100.5")),
        ),
        (
            format!("ip={}&{IN_2024}", enc("2001:db8::/48")),
            Box::new(|e| sv(e, "/actor/ip_address").is_some_and(|i| in_cidr(i, "2001:db8::/48"))),
        ),
        (
            format!("ip={}&{IN_2024}", enc("203.0.113.0/24,10.0.0.0/8")),
            Box::new(|e| {
                sv(e, "/actor/ip_address")
                    .is_some_and(|i| in_cidr(i, "203.0.113.0/24") || in_cidr(i, "10.0.0.0/8"))
            }),
        ),
        (
            format!("resource_type=virtual_key&resource_id=vk-1,vk-2&{IN_2024}"),
            Box::new(|e| {
                sv(e, "/resource/type") == Some("virtual_key")
                    && matches!(sv(e, "/resource/id"), Some("vk-1" | "vk-2"))
            }),
        ),
        (
            "start_date=2024-01-05&end_date=2024-01-05".into(),
            Box::new(|e| e["timestamp"].as_str().unwrap().starts_with("2024-01-05")),
        ),
        (
            format!(
                "start_date={}&end_date={}",
                enc("2024-01-03T06:00:00Z"),
                enc("2024-01-04T12:00:00Z")
            ),
            Box::new(|e| {
                ts(e) >= utc("2024-01-03T06:00:00Z") && ts(e) <= utc("2024-01-04T12:00:00Z")
            }),
        ),
        (
            format!(
                "severity=medium&user_id=user-bob-002&ip={}",
                enc("203.0.113.0/24")
            ),
            Box::new(|e| {
                e["severity"] == "medium"
                    && e["actor"]["user_id"] == "user-bob-002"
                    && sv(e, "/actor/ip_address").is_some_and(|i| in_cidr(i, "203.0.113.0/24"))
            }),
        ),
        (
            // Every ingested event, none of the server's own.
            "start_date=2024-01-01&end_date=2024-01-31".into(),
            Box::new(before_2025),
        ),
    ];
    for (q, f) in &cases {
        let want = expected(&events, f);
        assert!(!want.is_empty(), "case {q} matches nothing: a useless case");
        for p in PREFIXES {
            let (total, got) = follow(&s, &format!("{p}?{q}&limit=7"), READER, &map, true);
            let got = ids(&got);
            assert_once(&got, q);
            assert_eq!(total, want.len() as u64, "total_count of {p}?{q}");
            let got_set: BTreeSet<&String> = got.iter().collect();
            let want_set: BTreeSet<&String> = want.iter().collect();
            assert_eq!(got_set, want_set, "events of {p}?{q}");
            // Newest first across pages.
            let ts_of: Vec<DateTime<Utc>> = got.iter().map(|i| ts(&map[i])).collect();
            assert!(
                ts_of.windows(2).all(|w| w[0] >= w[1]),
                "{p}?{q}: not newest first"
            );
        }
    }

    // order=asc, page numbers, include_details=false.
    let all_q = "start_date=2024-01-01&end_date=2024-01-31";
    for p in PREFIXES {
        let (_, asc) = follow(
            &s,
            &format!("{p}?{all_q}&order=asc&limit=40"),
            READER,
            &map,
            true,
        );
        let asc_ts: Vec<DateTime<Utc>> = asc.iter().map(ts).collect();
        assert_eq!(asc.len(), events.len());
        assert!(asc_ts.windows(2).all(|w| w[0] <= w[1]), "order=asc");

        let r = s.get(&format!("{p}?{all_q}&limit=10"), Some(READER));
        let first10 = ids(r.json()["audit_logs"].as_array().unwrap());
        let r = s.get(&format!("{p}?{all_q}&limit=5&page=2"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let p2 = r.json();
        assert_eq!(p2["page"], 2, "{p2}");
        assert_eq!(p2["total_count"], events.len());
        check_page(&p2, &map, true);
        assert_eq!(
            ids(p2["audit_logs"].as_array().unwrap()),
            first10[5..].to_vec(),
            "page=2&limit=5 is events 6-10"
        );

        let r = s.get(
            &format!("{p}?{all_q}&limit=20&include_details=false"),
            Some(READER),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        assert_eq!(page["returned_count"], 20);
        check_page(&page, &map, false);
        // The default limit is 100.
        let r = s.get(&format!("{p}?{all_q}"), Some(READER));
        assert_eq!(r.json()["returned_count"], 100);
    }

    drop(s);
}

#[test]
fn next_page_is_stable_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events, map) = start_with_data(dir.path(), &server::default_config());
    // Unfiltered, ascending: every page appends a data_access event at the end of the log,
    // and the pinned snapshot must not show them.
    let (total, got) = follow(&s, "/api/audit-logs?order=asc&limit=9", ADMIN, &map, true);
    assert_eq!(total, events.len() as u64);
    let got = ids(&got);
    assert_once(&got, "unfiltered");
    assert_eq!(got.len(), events.len());

    // Events ingested while paging (inside the range, at every position of the order) do
    // not show up in later pages of a query that started before them.
    let r = s.get(
        &format!("/api/audit-logs?{IN_2024}&order=asc&limit=25"),
        Some(READER),
    );
    let first = r.json();
    let mut seen = ids(&check_page(&first, &map, true));
    let late: Vec<Value> = (0..30)
        .map(|i| {
            let mut e = seed_event(&format!("late_{i}"), i);
            e["timestamp"] = json!(format!("2024-01-{:02}T12:00:00.000Z", 1 + i % 20));
            e
        })
        .collect();
    ingest(&s, &late);
    let next = first["next_page"].as_str().unwrap().to_string();
    let (total, rest) = follow_from(&s, &next, 2, READER, &map, true);
    assert_eq!(
        total,
        events.len() as u64,
        "total_count of the pinned snapshot"
    );
    seen.extend(ids(&rest));
    assert_once(&seen, "paging while ingesting");
    assert_eq!(seen.len(), events.len());
    // A new query sees them.
    let r = s.get(&format!("/api/audit-logs?{IN_2024}&limit=1"), Some(READER));
    assert_eq!(r.json()["total_count"], events.len() + late.len());

    // An edited cursor is refused, as is one moved to another query.
    let r = s.get(
        &format!("/api/audit-logs?{IN_2024}&event_type=authentication&limit=3"),
        Some(READER),
    );
    let next = r.json()["next_page"].as_str().unwrap().to_string();
    let (base, cursor) = next.split_once("cursor=").unwrap();
    // Any one character changed (the cursor is hex: a digit for another digit).
    for at in [0, cursor.len() / 2, cursor.len() - 1] {
        let mut forged: Vec<u8> = cursor.bytes().collect();
        forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        let r = s.get(&format!("{base}cursor={forged}"), Some(READER));
        json_error(&r, 400, &format!("cursor edited at {at}"));
    }
    let r = s.get(&format!("{base}cursor=not-a-cursor"), Some(READER));
    json_error(&r, 400, "garbage cursor");
    let r = s.get(
        &format!("/api/audit-logs?{IN_2024}&event_type=authorization&limit=3&cursor={cursor}"),
        Some(READER),
    );
    json_error(&r, 400, "cursor of another query");
    // The untouched link still works (and on the other prefix).
    assert_eq!(s.get(&next, Some(READER)).status, 200);
    let r = s.get(
        &next.replacen("/api/audit-logs", "/api/enterprise/audit-logs", 1),
        Some(READER),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn get_query_bad_parameters_are_400_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    ingest(&s, &dataset()[..5]);
    for p in PREFIXES {
        for (q, param) in [
            ("frobnicate=1", "frobnicate"),
            ("event_type=authentication&colour=red", "colour"),
            ("severity=urgent", "severity"),
            ("severity=high,urgent", "severity"),
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("limit=ten", "limit"),
            ("ip=203.0.113.0%2F33", "ip"),
            ("ip=not-an-address", "ip"),
            ("start_date=yesterday", "start_date"),
            ("end_date=2024-13-01", "end_date"),
            ("order=sideways", "order"),
            ("include_details=maybe", "include_details"),
            ("page=0", "page"),
        ] {
            let r = s.get(&format!("{p}?{q}"), Some(READER));
            bad_param(&r, param, &format!("{p}?{q}"));
        }
        // The largest limit is accepted.
        assert_eq!(s.get(&format!("{p}?limit=10000"), Some(READER)).status, 200);
    }
}

#[test]
fn reversed_date_range_names_the_parameter_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    let r = s.get(
        "/api/audit-logs?start_date=2024-02-01&end_date=2024-01-01",
        Some(READER),
    );
    bad_param(&r, "end_date", "reversed GET range");
    let r = s.post_json(
        "/api/audit-logs/query",
        Some(READER),
        &json!({"filters": {"date_range": {"start": "2024-02-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"}}}),
    );
    bad_param(&r, "filters.date_range.end", "reversed POST range");
}

fn seed_body() -> Value {
    json!({
        "filters": {
            "event_types": ["authentication", "authorization"],
            "date_range": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-31T23:59:59Z"},
            "actors": {
                "user_ids": ["user-alice-001", "user-bob-002"],
                "ip_addresses": ["203.0.113.0/24"]
            },
            "status": ["failed", "blocked"],
            "severity": ["medium", "high", "critical"]
        },
        "sort": {"field": "timestamp", "order": "desc"},
        "limit": 1000,
        "include_details": true
    })
}

#[test]
fn post_query_matches_the_equivalent_get() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events, map) = start_with_data(dir.path(), &server::default_config());
    let want = expected(&events, |e| {
        (e["event_type"] == "authentication" || e["event_type"] == "authorization")
            && ts(e) >= utc("2024-01-01T00:00:00Z")
            && ts(e) <= utc("2024-01-31T23:59:59Z")
            && (e["actor"]["user_id"] == "user-alice-001"
                || e["actor"]["user_id"] == "user-bob-002")
            && sv(e, "/actor/ip_address").is_some_and(|i| in_cidr(i, "203.0.113.0/24"))
            && (e["status"] == "failed" || e["status"] == "blocked")
            && matches!(e["severity"].as_str(), Some("medium" | "high" | "critical"))
    });
    assert!(
        want.len() >= 3,
        "the seed's body must match a few events: {want:?}"
    );
    let get_q = format!(
        "event_type=authentication,authorization&start_date={}&end_date={}&user_id=user-alice-001&user_id=user-bob-002&ip={}&status=failed,blocked&severity=medium,high,critical&order=desc&limit=1000&include_details=true",
        enc("2024-01-01T00:00:00Z"),
        enc("2024-01-31T23:59:59Z"),
        enc("203.0.113.0/24")
    );
    for p in PREFIXES {
        let r = s.post_json(&format!("{p}/query"), Some(READER), &seed_body());
        assert_eq!(r.status, 200, "{}", r.text());
        let post = r.json();
        let post_events = check_page(&post, &map, true);
        assert_eq!(post["total_count"], want.len());
        assert_eq!(post["page"], 1);
        assert!(post["next_page"].is_null());
        assert_eq!(
            ids(&post_events),
            want,
            "POST {p}/query: the matches, newest first"
        );
        let r = s.get(&format!("{p}?{get_q}"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let get = r.json();
        assert_eq!(get["audit_logs"], post["audit_logs"], "GET and POST agree");
        assert_eq!(get["total_count"], post["total_count"]);

        // Paged: the POST's next_page is a GET URL of the same query.
        let mut body = seed_body();
        body["limit"] = json!(2);
        body["sort"]["order"] = json!("asc");
        let r = s.post_json(&format!("{p}/query"), Some(READER), &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let first = r.json();
        let mut got = ids(&check_page(&first, &map, true));
        let next = first["next_page"]
            .as_str()
            .expect("a next_page")
            .to_string();
        assert!(next.starts_with(&format!("{p}?")), "{next}");
        let (_, rest) = follow_from(&s, &next, 2, READER, &map, true);
        got.extend(ids(&rest));
        let mut rev = want.clone();
        rev.reverse();
        assert_eq!(
            got, rev,
            "POST with limit 2, asc, followed by its next_page links"
        );

        // Filters in `resources` and `actions`, and an empty body (everything).
        let r = s.post_json(
            &format!("{p}/query"),
            Some(READER),
            &json!({"filters": {"resources": {"types": ["virtual_key"], "ids": ["vk-1"]},
                                "actions": ["user_login", "access_denied"],
                                "date_range": {"end": "2024-12-31T00:00:00Z"}},
                    "include_details": false}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        check_page(&v, &map, false);
        let want2 = expected(&events, |e| {
            sv(e, "/resource/type") == Some("virtual_key")
                && sv(e, "/resource/id") == Some("vk-1")
                && matches!(e["action"].as_str(), Some("user_login" | "access_denied"))
        });
        assert_eq!(ids(v["audit_logs"].as_array().unwrap()), want2);
        // A comma inside one body value separates two values, as in the GET route.
        let mut comma = seed_body();
        comma["filters"]["event_types"] = json!(["authentication,authorization"]);
        comma["filters"]["status"] = json!(["failed, blocked"]);
        let r = s.post_json(&format!("{p}/query"), Some(READER), &comma);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            ids(r.json()["audit_logs"].as_array().unwrap()),
            want,
            "comma-separated values in the body"
        );
        let r = s.post(&format!("{p}/query"), Some(READER), "application/json", b"");
        assert_eq!(r.status, 200, "empty body: {}", r.text());
        assert!(r.json()["total_count"].as_u64().unwrap() >= events.len() as u64);
    }
}

#[test]
fn post_query_bad_bodies_are_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    for p in PREFIXES {
        let path = format!("{p}/query");
        for (body, param) in [
            (json!({"filter": {}}), "filter"),
            (
                json!({"filters": {"event_type": ["authentication"]}}),
                "filters.event_type",
            ),
            (
                json!({"filters": {"actors": {"user": ["x"]}}}),
                "filters.actors.user",
            ),
            (json!({"limit": "ten"}), "limit"),
            (
                json!({"filters": {"event_types": "authentication"}}),
                "filters.event_types",
            ),
            (json!({"sort": {"field": "severity"}}), "sort.field"),
            (json!({"include_details": "yes"}), "include_details"),
        ] {
            let r = s.post_json(&path, Some(READER), &body);
            bad_param(&r, param, &format!("POST {path} {body}"));
        }
        let r = s.post(&path, Some(READER), "application/json", b"{not json");
        json_error(&r, 400, "malformed body");
    }
}

#[test]
fn post_query_bad_values_name_the_body_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    for (body, param) in [
        (
            json!({"filters": {"date_range": {"start": "yesterday"}}}),
            "filters.date_range.start",
        ),
        (
            json!({"filters": {"date_range": {"end": "2024-13-40"}}}),
            "filters.date_range.end",
        ),
        (
            json!({"filters": {"severity": ["urgent"]}}),
            "filters.severity",
        ),
        (
            json!({"filters": {"actors": {"ip_addresses": ["10.0.0.0/40"]}}}),
            "filters.actors.ip_addresses",
        ),
        (json!({"sort": {"order": "sideways"}}), "sort.order"),
        (json!({"limit": 0}), "limit"),
    ] {
        let r = s.post_json("/api/audit-logs/query", Some(READER), &body);
        bad_param(&r, param, &format!("POST query {body}"));
    }
}

// ------------------------------------------------------------------ 1. events, filterdata

#[test]
fn single_event_and_its_verification() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    let mut evs = dataset()[..10].to_vec();
    evs[3]["event_id"] = json!("evt with space/and%");
    let receipts = ingest(&s, &evs);
    for p in PREFIXES {
        for (e, rc) in evs.iter().zip(&receipts) {
            let id = id_of(e);
            assert_eq!(rc["event_id"], id);
            let r = s.get(&format!("{p}/{}", enc(&id)), Some(READER));
            assert_eq!(r.status, 200, "{p}/{id}: {}", r.text());
            let got = r.json();
            check_page(
                &json!({"total_count": 1, "returned_count": 1, "page": 1,
                        "audit_logs": [got.clone()], "next_page": null}),
                &by_id(&evs),
                true,
            );
            assert_eq!(got["seq"], rc["seq"]);
            assert_eq!(got["verification"]["hash"], rc["hash"], "{got}");

            let r = s.get(&format!("{p}/{}/verify", enc(&id)), Some(READER));
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            assert_eq!(
                v,
                json!({"valid": true, "hash": rc["hash"], "seq": rc["seq"], "event_id": id})
            );
        }
        for path in [format!("{p}/evt_nope"), format!("{p}/evt_nope/verify")] {
            let r = s.get(&path, Some(READER));
            let e = json_error(&r, 404, &path);
            assert_eq!(e["param"], "event_id", "{e}");
        }
    }
}

#[test]
fn filterdata_counts_distinct_values() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events, _) = start_with_data(dir.path(), &server::default_config());
    let count = |field: &str, f: &dyn Fn(&Value) -> bool| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for e in events.iter().filter(|e| f(e)) {
            if let Some(v) = e.pointer(field).and_then(Value::as_str) {
                *m.entry(v.to_string()).or_default() += 1;
            }
        }
        m
    };
    for p in PREFIXES {
        for q in [
            format!("dimensions=event_type,severity&{IN_2024}"),
            format!("dimensions=event_type&dimensions=severity&{IN_2024}"),
        ] {
            let r = s.get(&format!("{p}/filterdata?{q}"), Some(READER));
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            let v = r.json();
            let dims = v["dimensions"].as_object().unwrap();
            assert_eq!(
                dims.keys().collect::<BTreeSet<_>>(),
                BTreeSet::from([&"event_type".to_string(), &"severity".to_string()]),
                "{v}"
            );
            for (dim, ptr) in [("event_type", "/event_type"), ("severity", "/severity")] {
                let want = count(ptr, &|_| true);
                let got: BTreeMap<String, u64> = dims[dim]["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| {
                        (
                            x["value"].as_str().unwrap().into(),
                            x["count"].as_u64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{dim}");
                assert_eq!(dims[dim]["distinct"], want.len());
                let counts: Vec<u64> = dims[dim]["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["count"].as_u64().unwrap())
                    .collect();
                assert!(
                    counts.windows(2).all(|w| w[0] >= w[1]),
                    "most frequent first"
                );
            }
        }
        // With a filter, and values_limit.
        let r = s.get(
            &format!("{p}/filterdata?dimensions=user_id&event_type=authentication&values_limit=1&{IN_2024}"),
            Some(READER),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let want = count("/actor/user_id", &|e| e["event_type"] == "authentication");
        assert_eq!(v["dimensions"]["user_id"]["distinct"], want.len());
        let vals = v["dimensions"]["user_id"]["values"].as_array().unwrap();
        assert_eq!(vals.len(), 1);
        assert_eq!(
            vals[0]["count"].as_u64().unwrap(),
            *want.values().max().unwrap()
        );
        // Every dimension when none is named.
        let r = s.get(&format!("{p}/filterdata?{IN_2024}"), Some(READER));
        assert_eq!(r.status, 200);
        let v = r.json();
        for d in auditlog::FACET_DIMENSIONS {
            assert!(
                v["dimensions"].get(d).is_some(),
                "dimension {d} missing: {v}"
            );
        }
        // Paging parameters do not apply; unknown parameters are refused.
        bad_param(
            &s.get(&format!("{p}/filterdata?limit=5"), Some(READER)),
            "limit",
            "filterdata limit",
        );
        bad_param(
            &s.get(&format!("{p}/filterdata?colour=red"), Some(READER)),
            "colour",
            "filterdata colour",
        );
        bad_param(
            &s.get(&format!("{p}/filterdata?values_limit=0"), Some(READER)),
            "values_limit",
            "values_limit=0",
        );
        json_error(
            &s.get(
                &format!("{p}/filterdata?dimensions=shoe_size"),
                Some(READER),
            ),
            400,
            "unknown dimension",
        );
    }
}

// ------------------------------------------------------------------ 1. export

#[test]
fn export_jsonl_and_csv_of_2000_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    let base = dataset();
    let events: Vec<Value> = (0..2000)
        .map(|i| {
            let mut e = base[i % base.len()].clone();
            e["event_id"] = json!(format!("exp_{i:05}"));
            // A details value with a comma, quotes and a newline, for CSV quoting.
            e["details"]["text"] = json!(format!("line one, \"quoted\"\nline two {i}"));
            e
        })
        .collect();
    ingest(&s, &events);
    let want: BTreeSet<String> = events.iter().map(id_of).collect();
    for p in PREFIXES {
        let r = s.get(
            &format!("{p}/export?format=jsonl&{IN_2024}"),
            Some(EXPORTER),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.truncated, "export cut short");
        assert!(
            r.header("content-type").unwrap_or("").contains("ndjson"),
            "{:?}",
            r.headers
        );
        let text = r.text();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 2000, "JSONL lines");
        let got: Vec<String> = lines
            .iter()
            .map(|l| id_of(&serde_json::from_str::<Value>(l).expect("each line is JSON")))
            .collect();
        assert_once(&got, "jsonl");
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);

        let r = s.get(&format!("{p}/export?format=csv&{IN_2024}"), Some(EXPORTER));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.truncated);
        assert!(r
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/csv"));
        let recs = csv_records(&r.text());
        assert_eq!(
            recs[0],
            [
                "seq",
                "event_id",
                "timestamp",
                "event_type",
                "action",
                "status",
                "severity",
                "actor.user_id",
                "actor.email",
                "actor.ip_address",
                "resource.type",
                "resource.id",
                "details",
                "verification.hash",
                "verification.verified"
            ],
            "CSV header"
        );
        assert_eq!(recs.len(), 2001, "header + 2000 rows");
        assert!(
            recs.iter().all(|r| r.len() == 15),
            "every row has 15 fields"
        );
        let got: Vec<String> = recs[1..].iter().map(|r| r[1].clone()).collect();
        assert_once(&got, "csv");
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
        let one = recs.iter().find(|r| r[1] == "exp_00007").unwrap();
        let details: Value = serde_json::from_str(&one[12]).unwrap();
        assert_eq!(details["text"], "line one, \"quoted\"\nline two 7");

        // A filtered export.
        let r = s.get(
            &format!("{p}/export?format=jsonl&event_type=authentication&{IN_2024}"),
            Some(EXPORTER),
        );
        let n = r.text().lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(
            n,
            events
                .iter()
                .filter(|e| e["event_type"] == "authentication")
                .count()
        );

        bad_param(
            &s.get(&format!("{p}/export?format=xml"), Some(EXPORTER)),
            "format",
            "format=xml",
        );
        bad_param(
            &s.get(&format!("{p}/export?limit=10"), Some(EXPORTER)),
            "limit",
            "export limit",
        );
        bad_param(
            &s.get(&format!("{p}/export?colour=red"), Some(EXPORTER)),
            "colour",
            "export colour",
        );
    }
}

// ------------------------------------------------------------------ 1. ingest

#[test]
fn ingest_one_object_array_ndjson_and_pretty() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    let mut last_seq = None::<u64>;
    let mut check = |r: Response, ids: &[&str]| {
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["accepted"], ids.len(), "{v}");
        assert_eq!(v["dropped"], 0);
        let rc = v["receipts"].as_array().unwrap();
        assert_eq!(rc.len(), ids.len());
        for (r, id) in rc.iter().zip(ids) {
            assert_eq!(r["event_id"], *id);
            let seq = r["seq"].as_u64().unwrap();
            assert!(last_seq.is_none_or(|l| seq > l), "seqs increase");
            last_seq = Some(seq);
            let h = r["hash"].as_str().unwrap();
            assert!(h.starts_with("hmac-sha256:") && h.len() == 76, "{h}");
        }
    };
    for p in PREFIXES {
        let tag = if p.contains("enterprise") { "e" } else { "a" };
        let one = seed_event(&format!("{tag}_one"), 1);
        check(
            s.post_json(p, Some(INGESTER), &one),
            &[&format!("{tag}_one")],
        );
        let arr = json!([
            seed_event(&format!("{tag}_arr1"), 2),
            seed_event(&format!("{tag}_arr2"), 3)
        ]);
        check(
            s.post_json(p, Some(INGESTER), &arr),
            &[&format!("{tag}_arr1"), &format!("{tag}_arr2")],
        );
        let nd = format!(
            "{}\n{}\n\n{}\n",
            seed_event(&format!("{tag}_nd1"), 4),
            seed_event(&format!("{tag}_nd2"), 5),
            seed_event(&format!("{tag}_nd3"), 6)
        );
        check(
            s.post(p, Some(INGESTER), "application/x-ndjson", nd.as_bytes()),
            &[
                &format!("{tag}_nd1"),
                &format!("{tag}_nd2"),
                &format!("{tag}_nd3"),
            ],
        );
        let pretty = format!(
            "{}\n{}",
            serde_json::to_string_pretty(&seed_event(&format!("{tag}_pp1"), 7)).unwrap(),
            serde_json::to_string_pretty(&seed_event(&format!("{tag}_pp2"), 8)).unwrap()
        );
        check(
            s.post(p, Some(INGESTER), "application/json", pretty.as_bytes()),
            &[&format!("{tag}_pp1"), &format!("{tag}_pp2")],
        );
    }
    // Everything is there, once.
    let got = ids(&query_all(
        &s,
        "event_type=authentication&end_date=2024-12-31",
    ));
    assert_once(&got, "ingested");
    assert_eq!(got.len(), 16);
    let h = s.get("/health", None).json();
    assert_eq!(
        h["next_seq"].as_u64().unwrap(),
        last_seq.unwrap() + 1 + 1,
        "{h}"
    );
}

#[test]
fn ingest_failures_name_the_line_and_keep_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    for p in PREFIXES {
        let tag = if p.contains("enterprise") { "e" } else { "a" };
        let id = |n: &str| format!("{tag}_{n}");
        // A syntax error on line 3.
        let body = format!(
            "{}\n{}\n{{\"event_type\": \"authentication\", \"action\": }}\n{}\n",
            seed_event(&id("ok1"), 1),
            seed_event(&id("ok2"), 2),
            seed_event(&id("after1"), 3)
        );
        let r = s.post(p, Some(INGESTER), "application/x-ndjson", body.as_bytes());
        let e = bad_param(&r, "line 3", "NDJSON syntax error");
        assert!(e["message"].as_str().unwrap().contains("line 3"), "{e}");
        let v = r.json();
        assert_eq!(v["accepted"], 2, "{v}");
        assert_eq!(
            v["receipts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["event_id"].clone())
                .collect::<Vec<_>>(),
            [json!(id("ok1")), json!(id("ok2"))]
        );
        // A well-formed line that is not a valid event (no action) on line 2.
        let mut bad = seed_event(&id("bad"), 4);
        bad.as_object_mut().unwrap().remove("action");
        let body = format!(
            "{}\n{}\n{}\n",
            seed_event(&id("ok3"), 5),
            bad,
            seed_event(&id("after2"), 6)
        );
        let r = s.post(p, Some(INGESTER), "application/x-ndjson", body.as_bytes());
        bad_param(&r, "line 2", "invalid event");
        assert_eq!(r.json()["accepted"], 1);
        // In an array, the 1-based element.
        let body = json!([seed_event(&id("ok4"), 7), seed_event(&id("ok5"), 8), {"event_type": "authentication"}, seed_event(&id("after3"), 9)]);
        let r = s.post_json(p, Some(INGESTER), &body);
        bad_param(&r, "line 3", "invalid array element");
        assert_eq!(r.json()["accepted"], 2);
        // An event over max_event_bytes (64 KiB).
        let mut big = seed_event(&id("big"), 10);
        big["details"]["blob"] = json!(noise(100 << 10));
        let r = s.post_json(p, Some(INGESTER), &big);
        let e = json_error(&r, 413, "event over max_event_bytes");
        assert_eq!(e["code"], "event_too_large");
        // Nothing at all.
        let r = s.post(p, Some(INGESTER), "application/json", b"  \n");
        json_error(&r, 400, "empty body");

        let got: BTreeSet<String> = ids(&query_all(&s, IN_2024)).into_iter().collect();
        for kept in ["ok1", "ok2", "ok3", "ok4", "ok5"] {
            assert!(
                got.contains(&id(kept)),
                "{} was acknowledged but is not stored",
                id(kept)
            );
        }
        for gone in ["after1", "after2", "after3", "bad", "big"] {
            assert!(
                !got.contains(&id(gone)),
                "{} is stored after a failed line",
                id(gone)
            );
        }
    }
}

#[test]
fn body_over_max_body_bytes_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config_json("", r#""max_body_bytes": 8192"#),
        &[],
    );
    let events: Vec<Value> = (0..60).map(|i| seed_event(&format!("b_{i}"), i)).collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(events));
    let e = json_error(&r, 413, "body over max_body_bytes");
    assert_eq!(e["code"], "body_too_large");
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &seed_event("small", 1));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(query_all(&s, IN_2024).len(), 1);
}

// ------------------------------------------------------------------ 1. verify, checkpoint

#[test]
fn verify_get_and_post_with_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    ingest(&s, &dataset()[..40]);
    for p in PREFIXES {
        let r = s.get(&format!("{p}/verify"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["records"].as_u64().unwrap() >= 40, "{v}");
        assert!(v["failure"].is_null(), "{v}");
        let r = s.get(&format!("{p}/verify?skip_indexes=true"), Some(READER));
        assert_eq!(r.json()["ok"], true);
        bad_param(
            &s.get(&format!("{p}/verify?deep=1"), Some(READER)),
            "deep",
            "verify deep",
        );

        let r = s.get(&format!("{p}/checkpoint"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let cp1 = r.json();
        for k in ["log_id", "seq", "hash", "count", "time", "time_ns", "mac"] {
            assert!(cp1.get(k).is_some(), "checkpoint lacks {k}: {cp1}");
        }
        ingest(&s, &[seed_event(&format!("v_{}", p.len()), 1)]);
        let cp2 = s.get(&format!("{p}/checkpoint"), Some(READER)).json();
        assert!(cp2["seq"].as_u64() > cp1["seq"].as_u64());

        let r = s.post_json(&format!("{p}/verify"), Some(READER), &cp1);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["checkpoints_checked"].as_u64().unwrap() >= 1, "{v}");
        let r = s.post_json(&format!("{p}/verify"), Some(READER), &json!([cp1, cp2]));
        assert_eq!(r.status, 200, "{}", r.text());
        let v2 = r.json();
        assert_eq!(v2["ok"], true, "{v2}");
        assert!(v2["checkpoints_checked"].as_u64().unwrap() >= 2, "{v2}");

        // A forged checkpoint (another hash, or a broken MAC) must not verify.
        for (field, val) in [
            ("hash", json!("00".repeat(32))),
            ("mac", json!("11".repeat(32))),
        ] {
            let mut forged = cp1.clone();
            forged[field] = val;
            let r = s.post_json(&format!("{p}/verify"), Some(READER), &forged);
            assert!(
                r.status == 400 || (r.status == 200 && r.json()["ok"] == false),
                "a checkpoint with a forged {field} verified: {} {}",
                r.status,
                r.text()
            );
        }
        let r = s.post_json(&format!("{p}/verify"), Some(READER), &json!({"seq": "x"}));
        json_error(&r, 400, "not a checkpoint");
    }
}

#[test]
fn health_needs_no_token_and_counts_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    let r = s.get("/health", None);
    assert_eq!(r.status, 200);
    let h0 = r.json();
    assert_eq!(h0["status"], "ok");
    let n0 = h0["next_seq"].as_u64().unwrap();
    ingest(&s, &dataset()[..12]);
    let h1 = s.get("/health", Some(WRONG)).json();
    assert_eq!(h1["status"], "ok");
    assert_eq!(h1["next_seq"].as_u64().unwrap(), n0 + 12);
}

// ------------------------------------------------------------------ 1. metrics, openapi

#[test]
fn metrics_are_prometheus_text_with_request_counts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    ingest(&s, &dataset()[..10]);
    for _ in 0..3 {
        assert_eq!(
            s.get(&format!("/api/audit-logs?{IN_2024}"), Some(READER))
                .status,
            200
        );
    }
    assert_eq!(
        s.get("/api/enterprise/audit-logs/evt_0001", Some(READER))
            .status,
        200
    );
    assert_eq!(s.get("/api/audit-logs", None).status, 401);
    assert_eq!(s.get("/api/audit-logs", Some(INGESTER)).status, 403);
    assert_eq!(s.get("/api/audit-logs/verify", Some(READER)).status, 200);
    let r = s.get("/metrics", Some(READER));
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "{ct}"
    );
    let m = r.text();
    for name in [
        "auditlog_http_requests_total",
        "auditlog_append_duration_seconds",
        "auditlog_appended_events_total",
        "auditlog_ingest_dropped_events_total",
        "auditlog_data_access_events_total",
        "auditlog_auth_failures_total",
        "auditlog_permission_denials_total",
        "auditlog_lockouts_total",
        "auditlog_locked_out_requests_total",
        "auditlog_auth_failure_events_suppressed_total",
        "auditlog_checkpoints_total",
        "auditlog_events",
        "auditlog_segments",
        "auditlog_segment_bytes",
        "auditlog_index_memory_bytes",
        "auditlog_next_seq",
        "auditlog_last_verify_timestamp_seconds",
        "auditlog_last_verify_ok",
        "auditlog_last_verify_records",
    ] {
        assert!(
            m.contains(&format!("# TYPE {name} ")),
            "no TYPE line for {name}:\n{m}"
        );
    }
    let req = |route: &str, method: &str, status: u16| {
        metric(
            &m,
            &format!("auditlog_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(req("/api/audit-logs", "GET", 200), Some(3.0), "{m}");
    assert_eq!(req("/api/audit-logs", "GET", 401), Some(1.0), "{m}");
    assert_eq!(req("/api/audit-logs", "GET", 403), Some(1.0), "{m}");
    assert_eq!(req("/api/audit-logs", "POST", 200), Some(1.0), "{m}");
    assert_eq!(req("/api/audit-logs/verify", "GET", 200), Some(1.0), "{m}");
    assert_eq!(
        req("/api/enterprise/audit-logs/{event_id}", "GET", 200),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "auditlog_auth_failures_total"), Some(1.0));
    assert_eq!(metric(&m, "auditlog_permission_denials_total"), Some(1.0));
    assert_eq!(metric(&m, "auditlog_data_access_events_total"), Some(5.0));
    assert_eq!(metric(&m, "auditlog_last_verify_ok"), Some(1.0));
    // 10 ingested + 5 data_access + 2 refusals.
    assert_eq!(
        metric(&m, "auditlog_appended_events_total"),
        Some(17.0),
        "{m}"
    );
    assert_eq!(metric(&m, "auditlog_events"), Some(17.0), "{m}");
    assert_eq!(metric(&m, "auditlog_next_seq"), Some(17.0), "{m}");
    assert!(
        metric(&m, "auditlog_append_duration_seconds_bucket{le=\"+Inf\"}").is_some(),
        "{m}"
    );
    assert!(metric(&m, "auditlog_append_duration_seconds_count").is_some());
    assert!(metric(&m, "auditlog_append_duration_seconds_sum").is_some());
    // The scrape itself is counted on the next one.
    let m2 = s.get("/metrics", Some(ADMIN)).text();
    assert_eq!(
        metric(
            &m2,
            "auditlog_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"}"
        ),
        Some(1.0),
        "{m2}"
    );
}

#[test]
fn openapi_is_3_1_and_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &server::default_config(), &[]);
    let r = s.get("/api/openapi.json", Some(READER));
    assert_eq!(r.status, 200, "{}", r.text());
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut want: Vec<(String, &str)> = vec![
        ("/health".into(), "get"),
        ("/metrics".into(), "get"),
        ("/api/openapi.json".into(), "get"),
    ];
    for p in PREFIXES {
        for (suffix, method) in [
            ("", "get"),
            ("", "post"),
            ("/query", "post"),
            ("/{event_id}", "get"),
            ("/{event_id}/verify", "get"),
            ("/filterdata", "get"),
            ("/export", "get"),
            ("/verify", "get"),
            ("/verify", "post"),
            ("/checkpoint", "get"),
            ("/consistency", "get"),
            ("/checkpoint/witness", "post"),
            ("/audit-hash", "post"),
        ] {
            want.push((format!("{p}{suffix}"), method));
        }
    }
    for (path, method) in &want {
        assert!(
            paths.get(path).and_then(|o| o.get(*method)).is_some(),
            "OpenAPI lacks {method} {path}; it has {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    // Unknown routes and wrong methods are JSON errors too.
    json_error(
        &s.get("/api/nothing-here", Some(ADMIN)),
        404,
        "unknown route",
    );
    let r = server::request(s.addr, "DELETE", "/api/audit-logs", Some(ADMIN), &[], None);
    json_error(&r, 405, "DELETE on the query route");
    let r = s.post(
        "/api/audit-logs/export",
        Some(ADMIN),
        "application/json",
        b"{}",
    );
    json_error(&r, 405, "POST on export");
}

// ------------------------------------------------------------------ 2. roles

#[derive(Clone, Copy, PartialEq, Debug)]
enum Need {
    Nothing,
    Read,
    Export,
    Ingest,
}

#[test]
fn role_table_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    // Lockout off: this test fails authentication on purpose, many times, from one address.
    let cfg = config_json(
        &format!(r#""field_hmac_key": "{FIELD_KEY}""#),
        r#""lockout_threshold": 0"#,
    );
    let s = Server::start(dir.path(), &cfg, &[]);
    ingest(&s, &[seed_event("evt_role", 1)]);
    let cp = s.get("/api/audit-logs/checkpoint", Some(ADMIN)).json();
    let mut routes: Vec<(&str, String, Option<Value>, Need)> = vec![
        ("GET", "/health".into(), None, Need::Nothing),
        ("GET", "/metrics".into(), None, Need::Read),
        ("GET", "/api/openapi.json".into(), None, Need::Read),
    ];
    for p in PREFIXES {
        routes.extend([
            ("GET", format!("{p}?{IN_2024}"), None, Need::Read),
            ("POST", format!("{p}/query"), Some(json!({})), Need::Read),
            ("GET", format!("{p}/evt_role"), None, Need::Read),
            ("GET", format!("{p}/evt_role/verify"), None, Need::Read),
            (
                "GET",
                format!("{p}/filterdata?dimensions=event_type"),
                None,
                Need::Read,
            ),
            (
                "GET",
                format!("{p}/export?format=jsonl&{IN_2024}"),
                None,
                Need::Export,
            ),
            (
                "GET",
                format!("{p}/export?format=csv&{IN_2024}"),
                None,
                Need::Export,
            ),
            ("POST", p.to_string(), Some(Value::Null), Need::Ingest),
            ("GET", format!("{p}/verify"), None, Need::Read),
            ("POST", format!("{p}/verify"), Some(cp.clone()), Need::Read),
            ("GET", format!("{p}/checkpoint"), None, Need::Read),
            ("GET", format!("{p}/consistency?old=1"), None, Need::Read),
            (
                "POST",
                format!("{p}/audit-hash"),
                Some(json!({"value": "x"})),
                Need::Read,
            ),
        ]);
    }
    let tokens: [(Option<&str>, Option<Need>, &str); 6] = [
        (None, None, "no token"),
        (Some(WRONG), None, "wrong token"),
        (Some(ADMIN), Some(Need::Nothing), "admin"),
        (Some(READER), Some(Need::Read), "read"),
        (Some(INGESTER), Some(Need::Ingest), "ingest"),
        (Some(EXPORTER), Some(Need::Export), "export"),
    ];
    let mut n = 0u32;
    for (method, path, body, need) in &routes {
        for (tok, role, who) in tokens {
            n += 1;
            let r = match (method, body) {
                (&"GET", _) => s.get(path, tok),
                (_, Some(Value::Null)) => {
                    s.post_json(path, tok, &seed_event(&format!("evt_r{n}"), n))
                }
                (_, Some(b)) => s.post_json(path, tok, b),
                _ => unreachable!(),
            };
            let what = format!("{who} {method} {path}");
            let expect = match (need, role) {
                (Need::Nothing, _) => 200,
                (_, None) => 401,
                (_, Some(Need::Nothing)) => 200,
                (nd, Some(r)) if *nd == r => 200,
                _ => 403,
            };
            match expect {
                200 => assert_eq!(r.status, 200, "{what}: {}", r.text()),
                401 => {
                    let e = json_error(&r, 401, &what);
                    assert_eq!(e["code"], "unauthorized");
                    let wa = r.header("www-authenticate").unwrap_or("");
                    assert!(wa.starts_with("Bearer"), "{what}: WWW-Authenticate {wa:?}");
                }
                _ => {
                    let e = json_error(&r, 403, &what);
                    assert_eq!(e["code"], "forbidden");
                }
            }
        }
        // A header that is not `Bearer <token>` is a 401 too.
        if *need != Need::Nothing {
            let r = server::request(
                s.addr,
                method,
                path,
                None,
                &[
                    ("Authorization", "Basic YWRtaW46YWRtaW4="),
                    ("Content-Type", "application/json"),
                ],
                body.as_ref().map(|_| b"{}" as &[u8]),
            );
            json_error(&r, 401, &format!("Basic auth on {method} {path}"));
        }
    }
}

// ------------------------------------------------------------------ 3. refusals as events

#[test]
fn refusals_are_authentication_and_authorization_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config_json("", r#""lockout_threshold": 0"#),
        &[],
    );
    assert_eq!(s.get("/api/audit-logs", None).status, 401);
    assert_eq!(
        s.get("/api/enterprise/audit-logs/checkpoint", Some(WRONG))
            .status,
        401
    );
    let r = server::request(
        s.addr,
        "GET",
        "/api/audit-logs/verify",
        None,
        &[("Authorization", "Token abc")],
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(s.get("/api/audit-logs/export", Some(READER)).status, 403);
    assert_eq!(
        s.post_json(
            "/api/enterprise/audit-logs",
            Some(EXPORTER),
            &seed_event("x", 1)
        )
        .status,
        403
    );

    let rejected = query_all(&s, "event_type=authentication&action=api_token_rejected");
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    let mut reasons: Vec<(String, String)> = rejected
        .iter()
        .map(|e| {
            assert_eq!(e["status"], "failed");
            assert_eq!(e["actor"]["ip_address"], "127.0.0.1", "{e}");
            assert_eq!(e["details"]["route"], e["resource"]["id"], "{e}");
            (
                e["details"]["reason"].as_str().unwrap().to_string(),
                e["details"]["route"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "malformed_authorization_header".to_string(),
                "/api/audit-logs/verify".to_string()
            ),
            ("missing_token".into(), "/api/audit-logs".into()),
            (
                "unknown_token".into(),
                "/api/enterprise/audit-logs/checkpoint".into()
            ),
        ]
    );
    let denied = query_all(&s, "event_type=authorization");
    assert_eq!(denied.len(), 2, "{denied:?}");
    let mut who: Vec<(String, String)> = denied
        .iter()
        .map(|e| {
            assert_eq!(e["action"], "permission_denied");
            assert_eq!(e["status"], "blocked");
            assert_eq!(e["actor"]["ip_address"], "127.0.0.1");
            (
                e["actor"]["user_id"].as_str().unwrap().to_string(),
                e["details"]["required_role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("auditor".to_string(), "export".to_string()),
            ("siem".into(), "ingest".into())
        ]
    );
    // Queried by the status and severity filters too.
    assert_eq!(
        query_all(
            &s,
            "event_type=authentication,authorization&status=failed,blocked"
        )
        .len(),
        5
    );
}

#[test]
fn lockout_after_threshold_refuses_even_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json(
        "",
        r#""lockout_threshold": 3, "lockout_window_secs": 300, "lockout_secs": 900"#,
    );
    let s = Server::start(dir.path(), &cfg, &[]);
    assert_eq!(
        s.get(&format!("/api/audit-logs?{IN_2024}"), Some(ADMIN))
            .status,
        200
    );
    for i in 0..3 {
        let r = s.get("/api/audit-logs", Some(WRONG));
        json_error(&r, 401, &format!("failure {}", i + 1));
        if i == 1 {
            // Below the threshold a valid token still works.
            assert_eq!(
                s.get(&format!("/api/audit-logs?{IN_2024}"), Some(ADMIN))
                    .status,
                200
            );
        }
    }
    for (tok, what) in [
        (Some(ADMIN), "admin"),
        (Some(READER), "reader"),
        (Some(WRONG), "wrong"),
        (None, "none"),
    ] {
        for path in [
            "/api/audit-logs",
            "/api/enterprise/audit-logs/checkpoint",
            "/metrics",
        ] {
            let r = s.get(path, tok);
            let e = json_error(&r, 429, &format!("{what} on {path} while locked out"));
            assert_eq!(e["code"], "locked_out");
            let ra: u64 = r
                .header("retry-after")
                .unwrap_or_else(|| panic!("no Retry-After on {path}"))
                .parse()
                .unwrap();
            assert!((1..=900).contains(&ra), "Retry-After {ra}");
        }
    }
    let r = s.post_json(
        "/api/audit-logs",
        Some(INGESTER),
        &seed_event("while_locked", 1),
    );
    json_error(&r, 429, "ingest while locked out");

    // The lockout is in memory: a restarted server lets the address in, and the log holds
    // the lockout event.
    let status = s.terminate();
    assert!(status.success());
    let s = Server::start(dir.path(), &cfg, &[]);
    let lock = query_all(&s, "event_type=authentication&action=account_lockout");
    assert_eq!(lock.len(), 1, "{lock:?}");
    assert_eq!(lock[0]["severity"], "high");
    assert_eq!(lock[0]["status"], "blocked");
    assert_eq!(lock[0]["actor"]["ip_address"], "127.0.0.1");
    assert_eq!(query_all(&s, "action=api_token_rejected").len(), 3);
    assert!(
        query_all(&s, IN_2024).is_empty(),
        "the ingest while locked out was stored"
    );
}

#[test]
fn lockout_threshold_zero_disables_lockout_and_threshold_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config_json("", r#""lockout_threshold": 0"#),
        &[],
    );
    for _ in 0..25 {
        assert_eq!(s.get("/api/audit-logs", Some(WRONG)).status, 401);
    }
    assert_eq!(
        s.get(&format!("/api/audit-logs?{IN_2024}"), Some(READER))
            .status,
        200
    );
    let m = s.get("/metrics", Some(READER)).text();
    assert_eq!(metric(&m, "auditlog_lockouts_total"), Some(0.0));
    assert_eq!(metric(&m, "auditlog_auth_failures_total"), Some(25.0));
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config_json("", r#""lockout_threshold": 2"#),
        &[],
    );
    for _ in 0..2 {
        assert_eq!(s.get("/api/audit-logs", None).status, 401);
    }
    for _ in 0..4 {
        assert_eq!(s.get("/api/audit-logs", Some(ADMIN)).status, 429);
    }
    drop(s);
}

#[test]
fn failure_events_are_rate_limited_per_minute() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json(
        "",
        r#""lockout_threshold": 0, "auth_failure_events_per_minute": 5"#,
    );
    let s = Server::start(dir.path(), &cfg, &[]);
    for _ in 0..12 {
        assert_eq!(s.get("/api/audit-logs", Some(WRONG)).status, 401);
    }
    for _ in 0..8 {
        assert_eq!(s.get("/api/audit-logs/export", Some(READER)).status, 403);
    }
    let stored = query_all(&s, "event_type=authentication,authorization");
    assert!(
        !stored.is_empty() && stored.len() <= 5,
        "{} failure events stored with a limit of 5 per minute",
        stored.len()
    );
    let m = s.get("/metrics", Some(READER)).text();
    let suppressed = metric(&m, "auditlog_auth_failure_events_suppressed_total").unwrap();
    assert_eq!(
        stored.len() as f64 + suppressed,
        20.0,
        "stored + suppressed = failures"
    );
    assert_eq!(metric(&m, "auditlog_auth_failures_total"), Some(12.0));
    assert_eq!(metric(&m, "auditlog_permission_denials_total"), Some(8.0));
}

// ------------------------------------------------------------------ 4. who looked, no tokens

#[test]
fn every_read_is_a_data_access_event_and_tokens_are_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json(
        &format!(r#""field_hmac_key": "{FIELD_KEY}""#),
        r#""lockout_threshold": 0"#,
    );
    let s = Server::start(dir.path(), &cfg, &[("RUST_LOG", "trace")]);
    let mut bodies: Vec<Response> = Vec::new();
    let mut keep = |r: Response, status: u16| {
        assert_eq!(r.status, status, "{}", r.text());
        bodies.push(r);
    };
    keep(
        s.post_json(
            "/api/audit-logs",
            Some(INGESTER),
            &Value::Array(dataset()[..20].to_vec()),
        ),
        200,
    );
    keep(
        s.get(
            "/api/audit-logs?event_type=authentication&end_date=2024-12-31",
            Some(READER),
        ),
        200,
    );
    keep(
        s.post_json(
            "/api/enterprise/audit-logs/query",
            Some(READER),
            &seed_body(),
        ),
        200,
    );
    keep(s.get("/api/audit-logs/evt_0003", Some(READER)), 200);
    keep(
        s.get("/api/enterprise/audit-logs/evt_0004/verify", Some(READER)),
        200,
    );
    keep(
        s.get("/api/audit-logs/filterdata?dimensions=status", Some(READER)),
        200,
    );
    keep(
        s.get("/api/audit-logs/export?format=csv", Some(EXPORTER)),
        200,
    );
    keep(s.get("/api/audit-logs/verify", Some(READER)), 200);
    let cp = s.get("/api/audit-logs/checkpoint", Some(READER));
    let cpv = cp.json();
    keep(cp, 200);
    keep(
        s.post_json("/api/audit-logs/verify", Some(READER), &cpv),
        200,
    );
    keep(
        s.post_json(
            "/api/audit-logs/audit-hash",
            Some(READER),
            &json!({"value": "v"}),
        ),
        200,
    );
    keep(s.get("/metrics", Some(READER)), 200);
    keep(s.get("/api/openapi.json", Some(READER)), 200);
    keep(s.get("/api/audit-logs", Some(WRONG)), 401);
    keep(s.get("/api/audit-logs/export", Some(READER)), 403);
    keep(
        s.post_json("/api/audit-logs", Some(READER), &seed_event("r", 1)),
        403,
    );

    let access = query_all(&s, "event_type=data_access");
    let mut got: Vec<(String, String, String)> = access
        .iter()
        .map(|e| {
            assert_eq!(e["status"], "success", "{e}");
            assert_eq!(e["actor"]["ip_address"], "127.0.0.1", "{e}");
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"]["user_id"].as_str().unwrap().to_string(),
                e["resource"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, String)> = [
        ("log_query", "auditor", "/api/audit-logs"),
        ("log_query", "auditor", "/api/enterprise/audit-logs/query"),
        ("log_read", "auditor", "/api/audit-logs/{event_id}"),
        (
            "log_verify_event",
            "auditor",
            "/api/enterprise/audit-logs/{event_id}/verify",
        ),
        ("log_filterdata", "auditor", "/api/audit-logs/filterdata"),
        ("log_export", "siem", "/api/audit-logs/export"),
        ("log_verify", "auditor", "/api/audit-logs/verify"),
        ("checkpoint_read", "auditor", "/api/audit-logs/checkpoint"),
        ("log_verify", "auditor", "/api/audit-logs/verify"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    want.sort();
    assert_eq!(
        got, want,
        "the data_access events of the reads (before this admin query)"
    );
    // The query's event carries what was asked.
    let q = access
        .iter()
        .find(|e| e["resource"]["id"] == "/api/audit-logs" && e["action"] == "log_query")
        .unwrap();
    assert_eq!(
        q["details"]["query"],
        json!([["event_type", "authentication"], ["end_date", "2024-12-31"]]),
        "{q}"
    );
    let read = access.iter().find(|e| e["action"] == "log_read").unwrap();
    assert_eq!(read["details"]["event_id"], "evt_0003");
    // The admin's own query was recorded under its name.
    let again = query_all(&s, "event_type=data_access&user_id=ops");
    assert!(!again.is_empty(), "the admin's queries are not recorded");

    // Everything the log holds, decompressed, as one text.
    let all = s.get("/api/audit-logs/export?format=jsonl", Some(ADMIN));
    assert_eq!(all.status, 200);
    let stderr_path = s.stderr_path.clone();
    let status = s.terminate();
    assert!(status.success());
    let stderr = std::fs::read(&stderr_path).unwrap_or_default();
    assert!(!stderr.is_empty(), "RUST_LOG=trace wrote nothing to stderr");
    let files = files_under(&dir.path().join("data"));
    assert!(!files.is_empty());
    for t in [ADMIN, READER, INGESTER, EXPORTER, WRONG] {
        for (p, b) in &files {
            assert!(!contains(b, t), "token {t} in {}", p.display());
        }
        assert!(!contains(&stderr, t), "token {t} in the server's stderr");
        assert!(!contains(&all.body, t), "token {t} in the log's events");
        for r in &bodies {
            assert!(
                !contains(&r.body, t),
                "token {t} in a response: {}",
                r.text()
            );
            for (k, v) in &r.headers {
                assert!(!v.contains(t), "token {t} in response header {k}");
            }
        }
    }
}

// ------------------------------------------------------------------ 5. ingestion policy

fn typed(id: &str, ty: &str) -> Value {
    let mut e = seed_event(id, 1);
    e["event_type"] = json!(ty);
    e
}

fn mixed() -> Vec<Value> {
    vec![
        typed("t_auth1", "authentication"),
        typed("t_auth2", "authentication"),
        typed("t_conf", "configuration_change"),
        typed("t_sec", "security_event"),
        typed("t_inc", "security_incident"),
        typed("t_authz", "authorization"),
    ]
}

/// Posts `mixed()` and returns (accepted, dropped, ids stored).
fn post_mixed(s: &Server) -> (u64, u64, BTreeSet<String>) {
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(mixed()));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let stored: BTreeSet<String> = ids(&query_all(s, IN_2024)).into_iter().collect();
    (
        v["accepted"].as_u64().unwrap(),
        v["dropped"].as_u64().unwrap(),
        stored,
    )
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn category_toggles_drop_and_count_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &config_json(r#""auth_events": false"#, ""), &[]);
    let (acc, dropped, stored) = post_mixed(&s);
    assert_eq!((acc, dropped), (4, 2));
    assert_eq!(stored, set(&["t_conf", "t_sec", "t_inc", "t_authz"]));
    let m = s.get("/metrics", Some(READER)).text();
    assert_eq!(
        metric(&m, "auditlog_ingest_dropped_events_total"),
        Some(2.0)
    );
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json(r#""config_changes": false, "security_events": false"#, "");
    let s = Server::start(dir.path(), &cfg, &[]);
    let (acc, dropped, stored) = post_mixed(&s);
    assert_eq!((acc, dropped), (3, 3));
    assert_eq!(stored, set(&["t_auth1", "t_auth2", "t_authz"]));
    // A single dropped event is a 200 with nothing accepted.
    let r = s.post_json(
        "/api/audit-logs",
        Some(INGESTER),
        &typed("t_conf2", "configuration_change"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 0);
    assert_eq!(r.json()["dropped"], 1);
}

#[test]
fn disabled_logging_answers_503() {
    // disabled in the config.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json("", "").replace(r#""disabled": false"#, r#""disabled": true"#);
    let s = Server::start(dir.path(), &cfg, &[]);
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &seed_event("d1", 1));
    let e = json_error(&r, 503, "disabled");
    assert_eq!(e["code"], "audit_logging_disabled");
    assert!(query_all(&s, IN_2024).is_empty());
    drop(s);
}

#[test]
fn bifrost_env_vars_override_config() {
    // BIFROST_AUDIT_LOGS_ENABLED=false over `disabled: false`.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &server::default_config(),
        &[("BIFROST_AUDIT_LOGS_ENABLED", "false")],
    );
    let r = s.post_json(
        "/api/enterprise/audit-logs",
        Some(INGESTER),
        &seed_event("d1", 1),
    );
    assert_eq!(
        json_error(&r, 503, "env disabled")["code"],
        "audit_logging_disabled"
    );
    drop(s);

    // Each toggle, with each spelling of a boolean.
    for (env, want) in [
        (
            vec![("BIFROST_AUDIT_AUTH_EVENTS", "false")],
            set(&["t_conf", "t_sec", "t_inc", "t_authz"]),
        ),
        (
            vec![("BIFROST_AUDIT_AUTH_EVENTS", "0")],
            set(&["t_conf", "t_sec", "t_inc", "t_authz"]),
        ),
        (
            vec![("BIFROST_AUDIT_CONFIG_CHANGES", "off")],
            set(&["t_auth1", "t_auth2", "t_sec", "t_inc", "t_authz"]),
        ),
        (
            vec![("BIFROST_AUDIT_SECURITY_EVENTS", "no")],
            set(&["t_auth1", "t_auth2", "t_conf", "t_authz"]),
        ),
        (
            vec![
                ("BIFROST_AUDIT_LOGS_ENABLED", "yes"),
                ("BIFROST_AUDIT_AUTH_EVENTS", "on"),
                ("BIFROST_AUDIT_RETENTION_DAYS", "30"),
                ("BIFROST_AUDIT_IMMUTABLE", "1"),
            ],
            set(&["t_auth1", "t_auth2", "t_conf", "t_sec", "t_inc", "t_authz"]),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start(dir.path(), &server::default_config(), &env);
        let (_, _, stored) = post_mixed(&s);
        assert_eq!(stored, want, "with {env:?}");
    }
    // The variable wins over the config file in both directions.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config_json(r#""auth_events": false"#, ""),
        &[("BIFROST_AUDIT_AUTH_EVENTS", "true")],
    );
    assert_eq!(post_mixed(&s).2.len(), 6);
    drop(s);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json("", "").replace(r#""disabled": false"#, r#""disabled": true"#);
    let s = Server::start(dir.path(), &cfg, &[("BIFROST_AUDIT_LOGS_ENABLED", "true")]);
    assert_eq!(post_mixed(&s).2.len(), 6);
}

#[test]
fn bad_bifrost_env_values_stop_the_server_naming_the_variable() {
    for (var, val) in [
        ("BIFROST_AUDIT_LOGS_ENABLED", "maybe"),
        ("BIFROST_AUDIT_AUTH_EVENTS", "2"),
        ("BIFROST_AUDIT_CONFIG_CHANGES", "enabled"),
        ("BIFROST_AUDIT_SECURITY_EVENTS", "TRUE!"),
        ("BIFROST_AUDIT_RETENTION_DAYS", "ten"),
        ("BIFROST_AUDIT_RETENTION_DAYS", "-5"),
        ("BIFROST_AUDIT_ARCHIVE_DAYS", "1.5"),
        ("BIFROST_AUDIT_IMMUTABLE", "sometimes"),
        ("BIFROST_AUDIT_IMMUTABLE", "false"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        match Server::try_start(dir.path(), &server::default_config(), &[(var, val)], &[]) {
            Ok(_) => panic!("the server started with {var}={val}"),
            Err(e) => assert!(
                e.contains(var),
                "{var}={val}: the error does not name it: {e}"
            ),
        }
    }
    // archive_days must be less than retention_days.
    let dir = tempfile::tempdir().unwrap();
    let r = Server::try_start(
        dir.path(),
        &server::default_config(),
        &[("BIFROST_AUDIT_ARCHIVE_DAYS", "400")],
        &[],
    );
    let e = r
        .err()
        .expect("archive_days 400 >= retention_days 365 was accepted");
    assert!(e.contains("archive") || e.contains("ARCHIVE"), "{e}");
}

#[test]
fn hmac_fields_store_the_keyed_hash_that_audit_hash_computes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json(
        &format!(
            r#""hmac_fields": ["/api_key", "/request/headers/authorization", "/pin"], "field_hmac_key": "{FIELD_KEY}""#
        ),
        "",
    );
    let s = Server::start(dir.path(), &cfg, &[]);
    let secret = "sk-live-THIS-IS-SECRET-0042";
    let bearer = "Bearer upstream-SECRET-token";
    let mut e = seed_event("h1", 1);
    e["details"] = json!({
        "api_key": secret,
        "request": {"headers": {"authorization": bearer, "accept": "json"}},
        "pin": 4321,
        "keep": "visible"
    });
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &e);
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = s.get("/api/audit-logs/h1", Some(READER)).json();
    let d = &stored["details"];
    let hex_ok = |v: &Value| {
        v.as_str()
            .and_then(|s| s.strip_prefix("hmac-sha256:"))
            .is_some_and(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            })
    };
    assert!(hex_ok(&d["api_key"]), "{d}");
    assert!(hex_ok(&d["request"]["headers"]["authorization"]), "{d}");
    assert!(hex_ok(&d["pin"]), "{d}");
    assert_eq!(d["keep"], "visible");
    assert_eq!(d["request"]["headers"]["accept"], "json");
    assert_eq!(stored["verification"]["verified"], true);

    for (value, stored_v) in [
        (secret, &d["api_key"]),
        (bearer, &d["request"]["headers"]["authorization"]),
        ("4321", &d["pin"]),
    ] {
        for p in PREFIXES {
            let r = s.post_json(
                &format!("{p}/audit-hash"),
                Some(READER),
                &json!({"value": value}),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(
                &r.json()["hash"],
                stored_v,
                "audit-hash of {value:?} on {p}"
            );
        }
        let out = server::auditlog(&s.data, &s.config)
            .args(["audit-hash", value])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            stored_v.as_str().unwrap(),
            "CLI audit-hash {value:?}"
        );
    }
    // From stdin.
    let mut child = server::auditlog(&s.data, &s.config)
        .arg("audit-hash")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{secret}\n").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        d["api_key"].as_str().unwrap()
    );

    bad_param(
        &s.post_json(
            "/api/audit-logs/audit-hash",
            Some(READER),
            &json!({"value": "x", "salt": 1}),
        ),
        "salt",
        "audit-hash unknown field",
    );
    // The secrets are nowhere in the log.
    let all = s.get("/api/audit-logs/export?format=jsonl", Some(ADMIN));
    assert_eq!(all.status, 200);
    assert!(!contains(&all.body, secret) && !contains(&all.body, "upstream-SECRET"));
    let status = s.terminate();
    assert!(status.success());
    for (p, b) in files_under(&dir.path().join("data")) {
        assert!(!contains(&b, secret), "the secret in {}", p.display());
    }
}

#[test]
fn omit_ip_addresses_drops_actor_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &config_json(r#""omit_ip_addresses": true"#, ""),
        &[],
    );
    let evs = dataset()[..14].to_vec();
    let r = s.post_json(
        "/api/audit-logs",
        Some(INGESTER),
        &Value::Array(evs.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 14);
    let stored = query_all(&s, IN_2024);
    assert_eq!(stored.len(), 14);
    for e in &stored {
        assert!(e["actor"].get("ip_address").is_none(), "address kept: {e}");
        assert!(e["actor"]["user_id"].is_string());
        assert_eq!(e["verification"]["verified"], true);
    }
    let r = s.get(
        &format!("/api/audit-logs?ip={}&{IN_2024}", enc("0.0.0.0/0")),
        Some(READER),
    );
    assert_eq!(r.json()["total_count"], 0);
    let all = s.get(
        &format!("/api/audit-logs/export?format=jsonl&{IN_2024}"),
        Some(EXPORTER),
    );
    for ip in ["203.0.113.42", "198.51.100.5", "2001:db8::1"] {
        assert!(!contains(&all.body, ip), "{ip} in the export");
    }
}
