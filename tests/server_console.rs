//! The web console's server side over real HTTP: the embedded page and its policy, cookie
//! logins, CSRF on every state change made with a cookie, roles of a session, logout, the
//! status route, "verify now", and the live tail (server-sent events), including that an
//! open tail does not hold up a graceful shutdown. The browser itself is driven by
//! `tests/console/run.sh` (Playwright with Debian's Chromium, in `.ci/run`).
#![cfg(feature = "server")]

mod common;
#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::*;

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json("", "\"lockout_threshold\": 0");
    let s = Server::start(dir.path(), &cfg, &[]);
    (dir, s)
}

/// A request with extra headers and an optional body, no bearer token.
fn send(s: &Server, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    request(s.addr, method, path, None, headers, Some(body))
}

struct Login {
    cookie: String,
    csrf: String,
    body: Value,
    set_cookie: String,
}

fn login(s: &Server, token: &str) -> Login {
    let r = s.post_json("/console/login", None, &json!({"token": token}));
    assert_eq!(r.status, 200, "{}", r.text());
    let set_cookie = r.header("set-cookie").expect("set-cookie").to_string();
    let pair = set_cookie.split(';').next().unwrap().trim().to_string();
    let body = r.json();
    Login {
        cookie: pair,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        body,
        set_cookie,
    }
}

impl Login {
    /// A POST made with this session: its cookie and its CSRF token, as the console sends it.
    fn post(&self, s: &Server, path: &str) -> Response {
        send(
            s,
            "POST",
            path,
            &[("Cookie", &self.cookie), ("X-CSRF-Token", &self.csrf)],
            b"",
        )
    }
}

fn ingest(s: &Server, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let r = s.post(
        "/api/audit-logs",
        Some(ADMIN),
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_page_and_its_assets_are_embedded_and_served_under_a_strict_policy() {
    let (_d, s) = start();
    let page = s.get("/", None);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").expect("CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let html = page.text();
    assert!(html.contains("/console/app.js") && html.contains("/console/app.css"));
    // Nothing from elsewhere: no CDN script, style or font.
    for bad in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "@import",
    ] {
        assert!(!html.contains(bad), "the page loads {bad}…");
    }
    let js = s.get("/console/app.js", None);
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.body.len() > 1000, "app.js is {} bytes", js.body.len());
    assert!(
        !js.text().contains("eval("),
        "no eval under script-src 'self'"
    );
    let css = s.get("/console/app.css", None);
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(!css.text().contains("@import"));
}

#[test]
fn login_gives_an_http_only_strict_cookie_with_the_token_roles() {
    let (_d, s) = start();
    ingest(&s, &[seed_event("evt_1", 1)]);
    let l = login(&s, READER);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(l.set_cookie.contains(flag), "{}", l.set_cookie);
    }
    assert!(
        !l.set_cookie.contains("Secure"),
        "no TLS here: {}",
        l.set_cookie
    );
    assert_eq!(l.body["name"], "auditor");
    assert_eq!(l.body["roles"], json!(["read"]));
    assert_eq!(l.csrf.len(), 64);
    // The cookie alone authenticates reads, with the token's roles.
    let q = send(&s, "GET", "/api/audit-logs", &[("Cookie", &l.cookie)], b"");
    assert_eq!(q.status, 200, "{}", q.text());
    let who = send(&s, "GET", "/console/session", &[("Cookie", &l.cookie)], b"");
    assert_eq!(who.json()["csrf_token"], l.csrf.as_str());
    let export = send(
        &s,
        "GET",
        "/api/audit-logs/export?format=jsonl",
        &[("Cookie", &l.cookie)],
        b"",
    );
    assert_eq!(export.status, 403, "a read session cannot export");
    // The login is itself an event, attributed to the token's name, without the token.
    let logins = s
        .get("/api/audit-logs?action=console_login", Some(ADMIN))
        .json();
    assert_eq!(logins["total_count"], 1);
    assert_eq!(logins["audit_logs"][0]["actor"]["user_id"], "auditor");
    let all = s
        .get("/api/audit-logs/export?format=jsonl", Some(ADMIN))
        .text();
    assert!(!all.contains(READER) && !all.contains(&l.cookie[COOKIE_PREFIX.len()..]));
    // No session: 401.
    let none = s.get("/console/session", None);
    assert_eq!(none.status, 401);
}

const COOKIE_PREFIX: &str = "auditlog_session=";

#[test]
fn login_refuses_bad_tokens_tokens_without_read_and_non_json_bodies() {
    let (_d, s) = start();
    let bad = s.post_json("/console/login", None, &json!({"token": "guess"}));
    assert_eq!(bad.status, 401, "{}", bad.text());
    assert!(bad.header("set-cookie").is_none());
    // Recorded like any failed authentication, naming the console's route.
    let rejected = s
        .get("/api/audit-logs?action=api_token_rejected", Some(ADMIN))
        .json();
    assert_eq!(rejected["total_count"], 1, "{rejected}");
    assert_eq!(
        rejected["audit_logs"][0]["resource"]["id"],
        "/console/login"
    );
    let ingest_only = s.post_json("/console/login", None, &json!({"token": INGESTER}));
    assert_eq!(ingest_only.status, 403);
    // A cross-site form can only send form bodies: refused.
    let form = s.post(
        "/console/login",
        None,
        "application/x-www-form-urlencoded",
        format!("token={ADMIN}").as_bytes(),
    );
    assert_eq!(form.status, 415, "{}", form.text());
    let junk = s.post("/console/login", None, "application/json", b"{\"tok\": 1}");
    assert_eq!(junk.status, 400);
    assert_eq!(junk.json()["error"]["param"], "token");
}

#[test]
fn state_changes_made_with_the_cookie_need_the_csrf_token() {
    let (_d, s) = start();
    let l = login(&s, ADMIN);
    let event = seed_event("evt_csrf", 5).to_string();
    let no_token = send(
        &s,
        "POST",
        "/api/audit-logs",
        &[("Cookie", &l.cookie), ("Content-Type", "application/json")],
        event.as_bytes(),
    );
    assert_eq!(no_token.status, 403, "{}", no_token.text());
    assert_eq!(no_token.json()["error"]["code"], "csrf");
    let wrong = send(
        &s,
        "POST",
        "/api/audit-logs",
        &[
            ("Cookie", &l.cookie),
            ("Content-Type", "application/json"),
            ("X-CSRF-Token", "0000"),
        ],
        event.as_bytes(),
    );
    assert_eq!(wrong.status, 403);
    // Nothing was stored by the refused requests.
    let found = s
        .get("/api/audit-logs?action=user_login", Some(ADMIN))
        .json();
    assert_eq!(found["total_count"], 0);
    let ok = send(
        &s,
        "POST",
        "/api/audit-logs",
        &[
            ("Cookie", &l.cookie),
            ("Content-Type", "application/json"),
            ("X-CSRF-Token", &l.csrf),
        ],
        event.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    // A bearer request carries its credential explicitly: no CSRF token needed.
    let bearer = s.post(
        "/api/audit-logs/verify/run",
        Some(ADMIN),
        "application/json",
        b"",
    );
    assert_eq!(bearer.status, 200, "{}", bearer.text());
}

#[test]
fn a_read_session_cannot_run_admin_actions_and_verify_now_sets_the_status() {
    let (_d, s) = start();
    ingest(&s, &[seed_event("evt_1", 1), seed_event("evt_2", 2)]);
    let reader = login(&s, READER);
    let denied = reader.post(&s, "/api/audit-logs/verify/run");
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert_eq!(denied.json()["error"]["code"], "forbidden");
    let st = s.get("/api/audit-logs/status", Some(READER)).json();
    assert_eq!(st["last_verify"], Value::Null);
    let admin = login(&s, ADMIN);
    let run = admin.post(&s, "/api/audit-logs/verify/run");
    assert_eq!(run.status, 200, "{}", run.text());
    assert_eq!(run.json()["ok"], true);
    let st = s.get("/api/audit-logs/status", Some(READER)).json();
    assert_eq!(st["last_verify"]["ok"], true, "{st}");
    assert!(st["last_verify"]["records"].as_u64().unwrap() >= 2);
    // Denials by a session are recorded like a token's.
    let denials = s
        .get("/api/audit-logs?action=permission_denied", Some(ADMIN))
        .json();
    assert_eq!(denials["total_count"], 1);
    assert_eq!(denials["audit_logs"][0]["actor"]["user_id"], "auditor");
}

#[test]
fn logout_ends_the_session_and_needs_the_csrf_token() {
    let (_d, s) = start();
    let l = login(&s, READER);
    let forged = send(&s, "POST", "/console/logout", &[("Cookie", &l.cookie)], b"");
    assert_eq!(forged.status, 403, "a cross-site logout is refused");
    let still = send(&s, "GET", "/api/audit-logs", &[("Cookie", &l.cookie)], b"");
    assert_eq!(still.status, 200);
    let out = l.post(&s, "/console/logout");
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = send(&s, "GET", "/api/audit-logs", &[("Cookie", &l.cookie)], b"");
    assert_eq!(after.status, 401);
    assert_eq!(after.json()["error"]["code"], "session_expired");
    let forged_cookie = send(
        &s,
        "GET",
        "/api/audit-logs",
        &[("Cookie", "auditlog_session=00ff")],
        b"",
    );
    assert_eq!(forged_cookie.status, 401);
}

#[test]
fn status_reports_size_checkpoint_retention_and_takes_no_parameters() {
    let (_d, s) = start();
    ingest(
        &s,
        &(0..5)
            .map(|i| seed_event(&format!("evt_{i}"), i))
            .collect::<Vec<_>>(),
    );
    let st = s.get("/api/audit-logs/status", Some(READER)).json();
    assert_eq!(st["events"], 5);
    assert_eq!(st["first_seq"], 0);
    assert_eq!(st["last_seq"], 4);
    assert!(st["segments"].as_u64().unwrap() >= 1);
    assert!(st["data_bytes"].as_u64().unwrap() > 0);
    assert_eq!(st["retention"]["retention_days"], 365);
    assert_eq!(st["retention"]["holds"], json!([]));
    assert_eq!(st["sinks"], Value::Null);
    let cp = s.get("/api/audit-logs/checkpoint", Some(READER)).json();
    let st = s
        .get("/api/enterprise/audit-logs/status", Some(READER))
        .json();
    assert_eq!(st["last_checkpoint"]["seq"], cp["seq"], "{st}");
    let bad = s.get("/api/audit-logs/status?verbose=1", Some(READER));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["param"], "verbose");
    assert_eq!(s.get("/api/audit-logs/status", None).status, 401);
}

/// Reads a streamed response until `want` appears in it (or fails after 10 s).
fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(want) {
        assert!(
            Instant::now() < deadline,
            "{want:?} not in the stream: {}",
            String::from_utf8_lossy(seen)
        );
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "stream ended before {want:?}: {}",
                String::from_utf8_lossy(seen)
            ),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the stream: {e}"),
        }
    }
}

fn open_tail(s: &Server, query: &str, auth: (&str, &str)) -> TcpStream {
    let mut t = TcpStream::connect(s.addr).unwrap();
    t.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        t,
        "GET /api/audit-logs/tail{query} HTTP/1.1\r\nHost: {}\r\n{}: {}\r\n\r\n",
        s.addr, auth.0, auth.1
    )
    .unwrap();
    t
}

#[test]
fn the_tail_streams_records_appended_meanwhile_and_resumes_after_a_seq() {
    let (_d, s) = start();
    ingest(&s, &[seed_event("evt_before", 1)]);
    let l = login(&s, READER);
    let mut t = open_tail(&s, "", ("Cookie", &l.cookie));
    let mut seen = Vec::new();
    read_until(&mut t, &mut seen, "event: hello");
    let head = String::from_utf8_lossy(&seen).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    ingest(
        &s,
        &[seed_event("evt_live_1", 2), seed_event("evt_live_2", 3)],
    );
    read_until(&mut t, &mut seen, "evt_live_2");
    let text = String::from_utf8_lossy(&seen).to_string();
    assert!(text.contains("event: audit"), "{text}");
    assert!(
        text.contains("evt_live_1"),
        "in order, nothing skipped: {text}"
    );
    assert!(
        !text.contains("evt_before"),
        "without after_seq only new records come"
    );
    // Every data line is an entry with its MAC rechecked.
    let entry: Value = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["event_id"] == "evt_live_2")
        .expect("the entry as JSON on one data line");
    assert_eq!(entry["verification"]["verified"], true);
    let seq = entry["seq"].as_u64().unwrap();
    assert!(text.contains(&format!("id: {seq}\n")));
    drop(t);
    // From the start, with a bearer token.
    let mut t = open_tail(
        &s,
        "?after_seq=0",
        ("Authorization", &format!("Bearer {ADMIN}")),
    );
    let mut seen = Vec::new();
    read_until(&mut t, &mut seen, "evt_live_2");
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.contains("evt_before"), "seq 0 itself is not after 0");
    assert!(text.contains("evt_live_1"));
    drop(t);
    let bad = s.get("/api/audit-logs/tail?after_seq=x", Some(READER));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["param"], "after_seq");
    // Each tail opened is one data_access event.
    let tails = s.get("/api/audit-logs?action=log_tail", Some(ADMIN)).json();
    assert_eq!(tails["total_count"], 2);
}

#[test]
fn an_open_tail_does_not_hold_up_a_graceful_shutdown() {
    let (_d, s) = start();
    let mut t = open_tail(&s, "", ("Authorization", &format!("Bearer {READER}")));
    let mut seen = Vec::new();
    read_until(&mut t, &mut seen, "event: hello");
    // `terminate` fails the test if the server is still running 30 s after SIGTERM.
    let status = s.terminate();
    assert!(status.success(), "{status}");
    drop(t);
}

#[test]
fn a_failed_verification_is_in_the_status_with_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_json("", "\"lockout_threshold\": 0");
    let s = Server::start(dir.path(), &cfg, &[]);
    ingest(
        &s,
        &(0..6)
            .map(|i| seed_event(&format!("evt_{i}"), i))
            .collect::<Vec<_>>(),
    );
    let data = s.data.clone();
    assert!(s.terminate().success());
    // One byte of a record's payload changed, its frame CRC recomputed: only the MAC can tell.
    let seg = common::layouts(&data).pop().expect("a segment");
    let mut bytes = std::fs::read(&seg.path).unwrap();
    let at = bytes
        .windows(b"alice@company.com".len())
        .rposition(|w| w == b"alice@company.com")
        .expect("the email in a payload");
    bytes[at] = b'A';
    let frame = seg.frame_containing(at).expect("inside a frame");
    common::fix_frame_crc(&mut bytes, frame);
    std::fs::write(&seg.path, &bytes).unwrap();
    let s = Server::start(dir.path(), &cfg, &[]);
    let run = s.post(
        "/api/audit-logs/verify/run",
        Some(ADMIN),
        "application/json",
        b"",
    );
    assert_eq!(run.status, 200, "{}", run.text());
    assert_eq!(run.json()["ok"], false);
    let st = s.get("/api/audit-logs/status", Some(READER)).json();
    assert_eq!(st["last_verify"]["ok"], false, "{st}");
    let failure = st["last_verify"]["failure"]
        .as_str()
        .expect("the failure, described");
    assert!(
        failure.contains(&format!("seq {}", frame.seq)),
        "names the tampered record's seq {}: {failure}",
        frame.seq
    );
}
