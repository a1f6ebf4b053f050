//! The seed's own `curl` examples (the Bifrost "Audit Logs" page, `audit-logs.md`), run
//! verbatim through the real `curl` against a real `auditlog serve`, and their answers checked
//! against the seed's "Response Format" and against the examples' own filters.
//!
//! The commands are copied below as they appear in the seed (the test must not depend on the
//! seed being next to the repository). At run time only two things change:
//!
//! - `http://localhost:8080` becomes the test server's `http://127.0.0.1:PORT`;
//! - the seed's placeholder token `Bearer admin-token` becomes the test config's admin token.
//!
//! The seed's line continuations (`\` + newline) and its multi-line single-quoted `-d '…'`
//! body are ordinary `sh` syntax, so each command runs as is under `sh -c`. To read the status
//! code without touching the command, `curl` is given a config file (`CURL_HOME/.curlrc`) with
//! `--silent --show-error --write-out "\n%{http_code}"` and `--noproxy '*'` (a CI proxy must not
//! see loopback requests).
//!
//! Before each example the server is seeded with events in the seed's event shape, some of
//! which match the example's filters and some of which miss exactly one of them (a day outside
//! the range, another user, another address range, another severity…), and the answer must be
//! exactly the matching ones, newest first, with an exact `total_count`.
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use server::{seed_event, Server, ADMIN, INGESTER};

// ------------------------------------------------------------------ the seed's commands

/// Seed, "Querying Audit Logs" → "API-Based Queries" → "Query Authentication Events".
const SEED_QUERY_AUTHENTICATION_EVENTS: &str = r#"curl -X GET "http://localhost:8080/api/audit-logs?event_type=authentication&start_date=2024-01-01&end_date=2024-01-31" \
  -H "Authorization: Bearer admin-token""#;

/// Seed, "Querying Audit Logs" → "API-Based Queries" → "Query by User".
const SEED_QUERY_BY_USER: &str = r#"curl -X GET "http://localhost:8080/api/audit-logs?user_id=user-alice-001&limit=100" \
  -H "Authorization: Bearer admin-token""#;

/// Seed, "Querying Audit Logs" → "API-Based Queries" → "Query Failed Access Attempts".
const SEED_QUERY_FAILED_ACCESS_ATTEMPTS: &str = r#"curl -X GET "http://localhost:8080/api/audit-logs?action=access_denied&severity=high" \
  -H "Authorization: Bearer admin-token""#;

/// Seed, "Querying Audit Logs" → "API-Based Queries" → "Query Configuration Changes".
const SEED_QUERY_CONFIGURATION_CHANGES: &str = r#"curl -X GET "http://localhost:8080/api/audit-logs?event_type=configuration_change&resource_type=virtual_key" \
  -H "Authorization: Bearer admin-token""#;

/// Seed, "Querying Audit Logs" → "Advanced Filtering".
const SEED_ADVANCED_FILTERING: &str = r#"curl -X POST http://localhost:8080/api/audit-logs/query \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer admin-token" \
  -d '{
    "filters": {
      "event_types": ["authentication", "authorization"],
      "date_range": {
        "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-31T23:59:59Z"
      },
      "actors": {
        "user_ids": ["user-alice-001", "user-bob-002"],
        "ip_addresses": ["203.0.113.0/24"]
      },
      "status": ["failed", "blocked"],
      "severity": ["medium", "high", "critical"]
    },
    "sort": {
      "field": "timestamp",
      "order": "desc"
    },
    "limit": 1000,
    "include_details": true
  }'"#;

/// Seed, "Compliance Reporting" → "Generate Audit Reports". The only other `curl` of the seed
/// under `/api/enterprise/audit-logs`; not a query (see `seed_generate_audit_report`).
const SEED_GENERATE_AUDIT_REPORT: &str = r#"curl -X POST http://localhost:8080/api/enterprise/audit-logs/reports \
  -H "Content-Type: application/json" \
  -H "Authorization: Bearer admin-token" \
  -d '{
    "report_type": "compliance_audit",
    "compliance_framework": "soc2_type2",
    "date_range": {
      "start_date": "2024-01-01T00:00:00Z",
      "end_date": "2024-03-31T23:59:59Z"
    },
    "include_sections": [
      "authentication_events",
      "authorization_events",
      "configuration_changes",
      "security_incidents"
    ],
    "format": "pdf",
    "include_evidence": true
  }'"#;

/// Seed, "Response Format": the example event of the example answer (without its
/// `verification`, which the server computes).
fn seed_response_event() -> Value {
    json!({
        "event_id": "evt_001",
        "timestamp": "2024-01-15T10:30:00.123Z",
        "event_type": "authentication",
        "action": "user_login",
        "status": "failed",
        "severity": "medium",
        "actor": {
            "user_id": "user-alice-001",
            "email": "alice@company.com",
            "ip_address": "203.0.113.42"
        },
        "details": {
            "auth_method": "password",
            "failure_reason": "invalid_password",
            "attempts_count": 3
        }
    })
}

// ------------------------------------------------------------------ running curl

/// What `curl` printed: the body and the status code.
struct CurlAnswer {
    status: u16,
    body: String,
}

impl CurlAnswer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs one of the seed's commands against `server`, substituting only the address and the
/// token. `None` (with a note on stderr) when there is no `curl` on this machine.
fn run_seed_curl(server: &Server, dir: &Path, seed_command: &str) -> Option<CurlAnswer> {
    if !curl_available() {
        eprintln!(
            "SKIPPED: no `curl` binary on PATH; the seed's curl examples cannot run here \
             (CI installs curl)"
        );
        return None;
    }
    assert!(
        seed_command.contains("http://localhost:8080")
            && seed_command.contains("Bearer admin-token"),
        "the seed's command lost its host or token placeholder: {seed_command}"
    );
    let command = seed_command
        .replace("http://localhost:8080", &format!("http://{}", server.addr))
        .replace("Bearer admin-token", &format!("Bearer {ADMIN}"));
    let curl_home = dir.join("curl-home");
    std::fs::create_dir_all(&curl_home).unwrap();
    std::fs::write(
        curl_home.join(".curlrc"),
        "silent\nshow-error\nnoproxy = \"*\"\nmax-time = 60\nwrite-out = \"\\n%{http_code}\"\n",
    )
    .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .env("CURL_HOME", &curl_home)
        .env("HOME", &curl_home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .expect("run sh -c curl …");
    // Lossy: a PDF answer is bytes (its binary marker line is not UTF-8).
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl failed ({}): {}\nstdout: {stdout}\ncommand: {command}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("no status line from curl's --write-out: {stdout:?}"));
    let status = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl's --write-out gave {code:?}, not a status code"));
    Some(CurlAnswer {
        status,
        body: body.to_string(),
    })
}

// ------------------------------------------------------------------ seeded events

/// An event in the seed's shape.
#[allow(clippy::too_many_arguments)]
fn ev(
    id: &str,
    ts: &str,
    event_type: &str,
    action: &str,
    status: &str,
    severity: &str,
    user: &str,
    ip: &str,
    resource: Option<(&str, &str)>,
    details: Value,
) -> Value {
    let email = format!(
        "{}@company.com",
        user.trim_start_matches("user-")
            .split('-')
            .next()
            .unwrap_or(user)
    );
    let mut e = json!({
        "event_id": id,
        "timestamp": ts,
        "event_type": event_type,
        "action": action,
        "status": status,
        "severity": severity,
        "actor": {"user_id": user, "email": email, "ip_address": ip},
        "details": details,
    });
    if let Some((kind, rid)) = resource {
        e["resource"] = json!({"type": kind, "id": rid});
    }
    e
}

/// `2024-01-DDTHH:MM:SS.mmmZ` for the `n`th event of a group starting on `day` at `hour`.
fn jan(day: u32, hour: u32, n: u32) -> String {
    format!(
        "2024-01-{day:02}T{hour:02}:{:02}:{:02}.{:03}Z",
        (n / 60) % 60,
        n % 60,
        (n * 7) % 1000
    )
}

const ALICE: &str = "user-alice-001";
const BOB: &str = "user-bob-002";
const CAROL: &str = "user-carol-003";

/// The events every example runs over: for each example some that match and some that miss
/// exactly one of its filters.
fn seeded_events() -> Vec<Value> {
    let mut v = Vec::new();
    let login_failed = || json!({"auth_method": "password", "failure_reason": "invalid_password", "attempts_count": 3});
    // The seed's own example event, as ingested.
    v.push(seed_event("evt_001", 0));
    // Alice's failed password logins in January: 110 of them, so the query by user (limit
    // 100) and the January authentication query have a second page.
    for i in 0..110 {
        v.push(ev(
            &format!("evt_alice_fail_{i:03}"),
            &jan(2 + i % 28, 8, i),
            "authentication",
            "user_login",
            "failed",
            "medium",
            ALICE,
            "203.0.113.42",
            None,
            login_failed(),
        ));
    }
    // Alice's successful logins (not failed/blocked, severity info).
    for i in 0..5 {
        v.push(ev(
            &format!("evt_alice_ok_{i}"),
            &jan(10, 9, i),
            "authentication",
            "user_login",
            "success",
            "info",
            ALICE,
            "203.0.113.42",
            None,
            json!({"auth_method": "sso", "session_id": format!("sess_{i}")}),
        ));
    }
    // The edges of January: just outside, and just inside (the last millisecond of the 31st is
    // inside `end_date=2024-01-31`, a whole day, but after the POST's `23:59:59Z`).
    for (id, ts) in [
        ("evt_alice_dec31", "2023-12-31T23:59:59.999Z"),
        ("evt_alice_feb01", "2024-02-01T00:00:00.000Z"),
        ("evt_alice_jan01", "2024-01-01T00:00:00.000Z"),
        ("evt_alice_jan31_late", "2024-01-31T23:59:59.999Z"),
    ] {
        v.push(ev(
            id,
            ts,
            "authentication",
            "user_login",
            "failed",
            "medium",
            ALICE,
            "203.0.113.42",
            None,
            login_failed(),
        ));
    }
    // Alice failing from outside 203.0.113.0/24, and failing at severity low.
    for i in 0..2 {
        v.push(ev(
            &format!("evt_alice_other_net_{i}"),
            &jan(12, 14, i),
            "authentication",
            "user_login",
            "failed",
            "medium",
            ALICE,
            "198.51.100.20",
            None,
            login_failed(),
        ));
        v.push(ev(
            &format!("evt_alice_low_{i}"),
            &jan(13, 14, i),
            "authentication",
            "user_login",
            "failed",
            "low",
            ALICE,
            "203.0.113.42",
            None,
            login_failed(),
        ));
    }
    // Alice's security events (not authentication or authorization).
    for i in 0..3 {
        v.push(ev(
            &format!("evt_alice_injection_{i}"),
            &jan(18, 11, i),
            "security_event",
            "prompt_injection_attempt",
            "blocked",
            "critical",
            ALICE,
            "203.0.113.42",
            Some(("model", "gpt-4o")),
            json!({"guardrail": "prompt-shield", "score": 0.97}),
        ));
    }
    // Bob's MFA failures (critical).
    for i in 0..2 {
        v.push(ev(
            &format!("evt_bob_mfa_{i}"),
            &jan(20, 7, i),
            "authentication",
            "mfa_verification",
            "failed",
            "critical",
            BOB,
            "203.0.113.5",
            None,
            json!({"mfa_method": "totp"}),
        ));
    }
    // Access denied: high (Bob, in the range), medium (Bob), high (Carol, another network),
    // high (Bob, in 2023).
    for i in 0..8 {
        v.push(ev(
            &format!("evt_bob_denied_high_{i}"),
            &jan(21, 15, i),
            "authorization",
            "access_denied",
            "blocked",
            "high",
            BOB,
            "203.0.113.77",
            Some(("model", "claude-3-opus")),
            json!({"reason": "model_not_allowed", "virtual_key": "vk-team-a"}),
        ));
    }
    for i in 0..3 {
        v.push(ev(
            &format!("evt_bob_denied_medium_{i}"),
            &jan(22, 15, i),
            "authorization",
            "access_denied",
            "blocked",
            "medium",
            BOB,
            "203.0.113.77",
            Some(("provider", "openai")),
            json!({"reason": "provider_not_allowed"}),
        ));
    }
    for i in 0..4 {
        v.push(ev(
            &format!("evt_carol_denied_high_{i}"),
            &jan(23, 16, i),
            "authorization",
            "access_denied",
            "blocked",
            "high",
            CAROL,
            "198.51.100.9",
            Some(("model", "gpt-4o")),
            json!({"reason": "budget_exceeded"}),
        ));
    }
    v.push(ev(
        "evt_bob_denied_2023",
        "2023-11-05T12:00:00.000Z",
        "authorization",
        "access_denied",
        "blocked",
        "high",
        BOB,
        "203.0.113.77",
        Some(("model", "gpt-4o")),
        json!({"reason": "model_not_allowed"}),
    ));
    // High-severity authorization that is not a denial.
    for i in 0..2 {
        v.push(ev(
            &format!("evt_bob_model_access_{i}"),
            &jan(24, 10, i),
            "authorization",
            "model_access",
            "success",
            "high",
            BOB,
            "203.0.113.77",
            Some(("model", "gpt-4o")),
            json!({"tokens": 1234}),
        ));
    }
    // Configuration changes: of virtual keys (in and after January) and of teams; and virtual
    // key usage that is not a configuration change.
    for i in 0..6 {
        v.push(ev(
            &format!("evt_vk_change_{i}"),
            &jan(25, 9, i),
            "configuration_change",
            [
                "virtual_key_created",
                "virtual_key_updated",
                "virtual_key_deleted",
            ][i as usize % 3],
            "success",
            "medium",
            "user-dana-004",
            "203.0.113.10",
            Some(("virtual_key", &format!("vk-{i:03}"))),
            json!({"changes": {"budget": {"old": 100, "new": 200 + i}}}),
        ));
    }
    v.push(ev(
        "evt_vk_change_feb",
        "2024-02-10T09:00:00.000Z",
        "configuration_change",
        "virtual_key_updated",
        "success",
        "medium",
        "user-dana-004",
        "203.0.113.10",
        Some(("virtual_key", "vk-900")),
        json!({"changes": {"rate_limit": {"old": 10, "new": 20}}}),
    ));
    for i in 0..3 {
        v.push(ev(
            &format!("evt_team_change_{i}"),
            &jan(26, 9, i),
            "configuration_change",
            "team_updated",
            "success",
            "low",
            "user-dana-004",
            "203.0.113.10",
            Some(("team", &format!("team-{i}"))),
            json!({"changes": {"name": {"old": "a", "new": "b"}}}),
        ));
        v.push(ev(
            &format!("evt_vk_usage_{i}"),
            &jan(27, 9, i),
            "authorization",
            "virtual_key_usage",
            "success",
            "info",
            BOB,
            "203.0.113.77",
            Some(("virtual_key", "vk-001")),
            json!({"model": "gpt-4o"}),
        ));
    }
    v
}

/// A server with [`seeded_events`] ingested (one JSON array, as the gateway would post it).
fn seeded_server(dir: &Path) -> (Server, Vec<Value>) {
    let s = Server::start(dir, &server::default_config(), &[]);
    let events = seeded_events();
    let r = s.post_json(
        "/api/audit-logs",
        Some(INGESTER),
        &Value::Array(events.clone()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], events.len(), "{}", r.text());
    assert_eq!(r.json()["dropped"], 0, "{}", r.text());
    (s, events)
}

// ------------------------------------------------------------------ checks

fn ts(v: &Value) -> DateTime<Utc> {
    let s = v["timestamp"]
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("timestamp {s:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The seeded events `matches` selects, newest first (ties: later ingested first), as the
/// server must return them.
fn expected(events: &[Value], matches: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut m: Vec<(DateTime<Utc>, usize, String)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches(e))
        .map(|(i, e)| (ts(e), i, e["event_id"].as_str().unwrap().to_string()))
        .collect();
    m.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    m.into_iter().map(|(_, _, id)| id).collect()
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The seed's "Response Format": top-level keys and types, and every event in the seed's
/// event shape, verified, and equal to what was ingested. Returns the events' ids in order.
fn check_seed_shape(page: &Value, ingested: &HashMap<String, Value>) -> Vec<String> {
    let o = page
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {page}"));
    for k in ["total_count", "returned_count", "page"] {
        assert!(o[k].is_u64(), "{k} is not a count: {page}");
    }
    let logs = o["audit_logs"]
        .as_array()
        .unwrap_or_else(|| panic!("audit_logs is not an array: {page}"));
    assert_eq!(o["returned_count"], logs.len(), "returned_count");
    assert!(
        o["total_count"].as_u64().unwrap() >= logs.len() as u64,
        "total_count below returned_count"
    );
    assert_eq!(o["page"], 1, "the first page is page 1");
    let more = o["total_count"].as_u64().unwrap() > logs.len() as u64;
    match &o["next_page"] {
        Value::String(s) => {
            assert!(more, "a next_page ({s}) although every match was returned");
            assert!(
                s.starts_with("/api/audit-logs?"),
                "next_page {s:?} is not a URL of the route that was asked"
            );
        }
        Value::Null => assert!(!more, "no next_page although more events match: {page}"),
        other => panic!("next_page is neither a string nor null: {other}"),
    }
    let mut ids = Vec::new();
    for e in logs {
        let id = e["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("event_id: {e}"));
        for k in ["timestamp", "event_type", "action", "status", "severity"] {
            assert!(e[k].is_string(), "{k} is not a string in {e}");
        }
        ts(e);
        for k in ["user_id", "email", "ip_address"] {
            assert!(
                e["actor"][k].is_string(),
                "actor.{k} is not a string in {e}"
            );
        }
        assert!(e["details"].is_object(), "details is not an object in {e}");
        let v = &e["verification"];
        let hash = v["hash"]
            .as_str()
            .unwrap_or_else(|| panic!("verification.hash is not a string in {e}"));
        let (alg, hex) = hash
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("verification.hash {hash:?} is not ALG:HEX"));
        assert!(
            alg.ends_with("sha256") && hex.len() == 64 && is_hex(hex),
            "verification.hash {hash:?} is not a SHA-256 value"
        );
        assert_eq!(v["verified"], true, "not verified: {e}");
        // Exactly what was ingested (plus `seq` and `verification`).
        let sent = ingested
            .get(id)
            .unwrap_or_else(|| panic!("returned an event that was never ingested: {e}"));
        for (k, want) in sent.as_object().unwrap() {
            if k == "timestamp" {
                assert_eq!(ts(e), ts(sent), "timestamp of {id}");
            } else {
                assert_eq!(&e[k], want, "{k} of {id}");
            }
        }
        ids.push(id.to_string());
    }
    // Newest first (the seed's default order, and `sort.order: desc`).
    for w in logs.windows(2) {
        assert!(
            ts(&w[0]) >= ts(&w[1]),
            "not newest first: {} then {}",
            w[0],
            w[1]
        );
    }
    ids
}

/// Follows `next_page` to the end (with the harness's client) and returns every id.
fn all_pages(s: &Server, first: &Value, ingested: &HashMap<String, Value>) -> Vec<String> {
    let mut ids = check_seed_shape(first, ingested);
    let mut next = first["next_page"].as_str().map(String::from);
    while let Some(url) = next {
        let r = s.get(&url, Some(ADMIN));
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let p = r.json();
        let logs = p["audit_logs"].as_array().unwrap();
        assert_eq!(p["total_count"], first["total_count"], "{url}");
        for e in logs {
            ids.push(e["event_id"].as_str().unwrap().to_string());
        }
        next = p["next_page"].as_str().map(String::from);
    }
    ids
}

fn by_id(events: &[Value]) -> HashMap<String, Value> {
    events
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn no_duplicates(ids: &[String]) {
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), ids.len(), "an event was returned twice");
}

// ------------------------------------------------------------------ the examples

#[test]
fn seed_query_authentication_events() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = seeded_server(dir.path());
    let Some(a) = run_seed_curl(&s, dir.path(), SEED_QUERY_AUTHENTICATION_EVENTS) else {
        return;
    };
    assert_eq!(a.status, 200, "{}", a.body);
    let page = a.json();
    let ingested = by_id(&events);
    // `start_date=2024-01-01&end_date=2024-01-31`: bare dates are whole UTC days.
    let (lo, hi) = (
        utc("2024-01-01T00:00:00Z"),
        utc("2024-01-31T23:59:59.999999999Z"),
    );
    let want = expected(&events, |e| {
        e["event_type"] == "authentication" && ts(e) >= lo && ts(e) <= hi
    });
    assert!(want.len() > 100, "the seeding must need a second page");
    for e in page["audit_logs"].as_array().unwrap() {
        assert_eq!(e["event_type"], "authentication", "{e}");
        assert!(ts(e) >= lo && ts(e) <= hi, "outside January 2024: {e}");
    }
    assert_eq!(page["total_count"], want.len());
    assert_eq!(page["returned_count"], 100, "the default limit is 100");
    let ids = check_seed_shape(&page, &ingested);
    assert_eq!(ids, want[..100]);
    assert!(ids.contains(&"evt_001".to_string()));
    assert!(!ids.contains(&"evt_alice_feb01".to_string()));
    // The seed's example event comes back as the seed shows it.
    let evt = page["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == "evt_001")
        .unwrap();
    for (k, v) in seed_response_event().as_object().unwrap() {
        if k == "timestamp" {
            assert_eq!(ts(evt), utc(v.as_str().unwrap()));
        } else {
            assert_eq!(&evt[k], v, "{k} of the seed's example event");
        }
    }
    // Its next_page leads to the rest, each once.
    let all = all_pages(&s, &page, &ingested);
    no_duplicates(&all);
    assert_eq!(all, want, "every page together");
    assert!(all.contains(&"evt_alice_jan01".to_string()));
    assert!(all.contains(&"evt_alice_jan31_late".to_string()));
    assert!(!all.contains(&"evt_alice_dec31".to_string()));
}

#[test]
fn seed_query_by_user() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = seeded_server(dir.path());
    let Some(a) = run_seed_curl(&s, dir.path(), SEED_QUERY_BY_USER) else {
        return;
    };
    assert_eq!(a.status, 200, "{}", a.body);
    let page = a.json();
    let ingested = by_id(&events);
    let want = expected(&events, |e| e["actor"]["user_id"] == ALICE);
    assert!(want.len() > 100, "the seeding must exceed limit=100");
    for e in page["audit_logs"].as_array().unwrap() {
        assert_eq!(e["actor"]["user_id"], ALICE, "{e}");
    }
    assert_eq!(page["total_count"], want.len());
    assert_eq!(page["returned_count"], 100, "limit=100");
    let ids = check_seed_shape(&page, &ingested);
    assert_eq!(ids, want[..100]);
    let all = all_pages(&s, &page, &ingested);
    no_duplicates(&all);
    assert_eq!(all, want, "every page together");
    // Every kind of event of hers, whatever its type, status or date.
    for id in [
        "evt_alice_dec31",
        "evt_alice_feb01",
        "evt_alice_injection_0",
        "evt_alice_ok_0",
    ] {
        assert!(all.contains(&id.to_string()), "{id} missing");
    }
}

#[test]
fn seed_query_failed_access_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = seeded_server(dir.path());
    let Some(a) = run_seed_curl(&s, dir.path(), SEED_QUERY_FAILED_ACCESS_ATTEMPTS) else {
        return;
    };
    assert_eq!(a.status, 200, "{}", a.body);
    let page = a.json();
    let want = expected(&events, |e| {
        e["action"] == "access_denied" && e["severity"] == "high"
    });
    assert_eq!(want.len(), 8 + 4 + 1);
    for e in page["audit_logs"].as_array().unwrap() {
        assert_eq!(e["action"], "access_denied", "{e}");
        assert_eq!(e["severity"], "high", "{e}");
    }
    assert_eq!(page["total_count"], want.len());
    assert_eq!(page["next_page"], Value::Null);
    let ids = check_seed_shape(&page, &by_id(&events));
    assert_eq!(ids, want);
    assert!(!ids.iter().any(|i| i.starts_with("evt_bob_denied_medium")));
    assert!(!ids.iter().any(|i| i.starts_with("evt_bob_model_access")));
}

#[test]
fn seed_query_configuration_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = seeded_server(dir.path());
    let Some(a) = run_seed_curl(&s, dir.path(), SEED_QUERY_CONFIGURATION_CHANGES) else {
        return;
    };
    assert_eq!(a.status, 200, "{}", a.body);
    let page = a.json();
    let want = expected(&events, |e| {
        e["event_type"] == "configuration_change" && e["resource"]["type"] == "virtual_key"
    });
    assert_eq!(want.len(), 6 + 1);
    for e in page["audit_logs"].as_array().unwrap() {
        assert_eq!(e["event_type"], "configuration_change", "{e}");
        assert_eq!(e["resource"]["type"], "virtual_key", "{e}");
        assert!(e["resource"]["id"].is_string(), "{e}");
    }
    assert_eq!(page["total_count"], want.len());
    assert_eq!(page["next_page"], Value::Null);
    let ids = check_seed_shape(&page, &by_id(&events));
    assert_eq!(ids, want);
    assert!(!ids.iter().any(|i| i.starts_with("evt_team_change")));
    assert!(!ids.iter().any(|i| i.starts_with("evt_vk_usage")));
}

#[test]
fn seed_advanced_filtering() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = seeded_server(dir.path());
    let Some(a) = run_seed_curl(&s, dir.path(), SEED_ADVANCED_FILTERING) else {
        return;
    };
    assert_eq!(a.status, 200, "{}", a.body);
    let page = a.json();
    let (lo, hi) = (utc("2024-01-01T00:00:00Z"), utc("2024-01-31T23:59:59Z"));
    let matches = |e: &Value| {
        ["authentication", "authorization"].contains(&e["event_type"].as_str().unwrap())
            && ts(e) >= lo
            && ts(e) <= hi
            && [ALICE, BOB].contains(&e["actor"]["user_id"].as_str().unwrap())
            && e["actor"]["ip_address"]
                .as_str()
                .unwrap()
                .starts_with("203.0.113.")
            && ["failed", "blocked"].contains(&e["status"].as_str().unwrap())
            && ["medium", "high", "critical"].contains(&e["severity"].as_str().unwrap())
    };
    let want = expected(&events, matches);
    for e in page["audit_logs"].as_array().unwrap() {
        assert!(matches(e), "does not match the example's filters: {e}");
    }
    assert_eq!(page["total_count"], want.len());
    assert_eq!(
        page["returned_count"],
        want.len(),
        "limit 1000 holds them all"
    );
    assert_eq!(page["next_page"], Value::Null);
    let ids = check_seed_shape(&page, &by_id(&events));
    assert_eq!(ids, want);
    for id in [
        "evt_001",
        "evt_alice_jan01",
        "evt_bob_mfa_0",
        "evt_bob_denied_high_0",
        "evt_bob_denied_medium_0",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing");
    }
    for id in [
        "evt_alice_jan31_late", // after 2024-01-31T23:59:59Z
        "evt_alice_dec31",
        "evt_alice_other_net_0", // 198.51.100.20
        "evt_alice_low_0",
        "evt_alice_ok_0",
        "evt_alice_injection_0", // security_event
        "evt_carol_denied_high_0",
        "evt_bob_denied_2023",
        "evt_bob_model_access_0",
    ] {
        assert!(!ids.contains(&id.to_string()), "{id} should not match");
    }
}

/// The seed's `next_page` example, `/api/enterprise/audit-logs?page=2`: the enterprise prefix
/// and a page number (the seed's own link, not a cursor) give page 2 of the query.
#[test]
fn seed_next_page_example_link() {
    let dir = tempfile::tempdir().unwrap();
    let (s, events) = seeded_server(dir.path());
    let r = s.get("/api/enterprise/audit-logs?page=2", Some(ADMIN));
    assert_eq!(r.status, 200, "{}", r.text());
    let p = r.json();
    assert_eq!(p["page"], 2, "{p}");
    let total = p["total_count"].as_u64().unwrap();
    assert!(total >= events.len() as u64, "{total} < {}", events.len());
    assert_eq!(
        p["returned_count"].as_u64().unwrap(),
        (total - 100).min(100),
        "page 2 of 100 per page"
    );
    assert_eq!(
        p["audit_logs"].as_array().unwrap().len() as u64,
        (total - 100).min(100)
    );
    if let Some(n) = p["next_page"].as_str() {
        assert!(n.starts_with("/api/enterprise/audit-logs?"), "{n}");
    }
}

/// Seed, "Compliance Reporting": `POST /api/enterprise/audit-logs/reports`. The seed's command
/// asks for a PDF: with the `pdf` feature (a default) the route answers a PDF file
/// (docs/REPORTS.md); built without it, a JSON error naming `format`, as docs/SERVER.md
/// promises every error. tests/report.rs and tests/report_render.rs check the reports.
#[test]
fn seed_generate_audit_report_answers_its_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = seeded_server(dir.path());
    let Some(a) = run_seed_curl(&s, dir.path(), SEED_GENERATE_AUDIT_REPORT) else {
        return;
    };
    if cfg!(feature = "pdf") {
        assert_eq!(
            a.status, 200,
            "status {} for the seed's pdf report request: {:.400}",
            a.status, a.body
        );
        assert!(
            a.body.starts_with("%PDF-1.7\n"),
            "a PDF file: {:.200}",
            a.body
        );
        assert!(a.body.trim_end().ends_with("%%EOF"), "a complete PDF file");
        for part in ["/Type /Catalog", "/BaseFont /Helvetica", "Page 1 of "] {
            assert!(a.body.contains(part), "the PDF has {part:?}");
        }
        return;
    }
    assert_eq!(
        a.status, 400,
        "status {} for the seed's pdf report request: {}",
        a.status, a.body
    );
    let v: Value = serde_json::from_str(&a.body).unwrap_or_else(|e| {
        panic!(
            "the {} answer is not JSON ({e}): {:?} (docs/SERVER.md: errors are JSON)",
            a.status, a.body
        )
    });
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert_eq!(v["error"]["param"], "format", "{v}");
}
