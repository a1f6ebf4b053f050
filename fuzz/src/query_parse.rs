//! Query parameters as the GET API and `auditlog query` take them: the input, split into
//! `name=value` pairs on `&` and newlines, through `Query::from_params`, which may refuse
//! but never panics. An accepted query runs on a small pre-populated log (three segments,
//! sealed and active, with IPv6, IPv4-mapped and upper-case addresses, events without actor
//! or resource, equal timestamps, and a redacted record) and its page is exactly what a
//! model of the log's records says: `total_count`, the page's events in order (filters,
//! time bounds, order, limit, page number), `next_page`, every MAC rechecked. The export of
//! the same query yields the same events in log order.
//!
//! The cursor decoder: a `cursor` (or non-numeric `page`) value starting with `@` stands for
//! the real `next_page` of the same query's first page, with its last characters replaced by
//! the rest of the value. A cursor the log accepts must continue exactly after that first
//! page; any other is refused as a bad `cursor`.
//!
//! Shared with `tests/fuzz_corpus_smoke.rs`, which includes this file by path: it may only
//! use `auditlog`'s public API, `serde_json`, `chrono` and `tempfile`.

use std::path::Path;
use std::sync::OnceLock;

use auditlog::sample::Generator;
use auditlog::{
    Actor, Durability, Error, Event, ExportFormat, HmacKey, Log, Options, Order, Page, Query,
    Record, Resource, Severity,
};
use chrono::{TimeZone, Utc};

const KEY: &[u8] = b"query_parse fuzz key, thirty-two bytes at the least";
/// At most this many parameters are taken from one input.
const MAX_PARAMS: usize = 24;

struct Fixture {
    log: Log,
    records: Vec<Record>,
    _tmp: tempfile::TempDir,
}

/// A temporary directory for this process's shared log, in memory where the machine has a
/// tmpfs. A static is never dropped, so the directory outlives the process: directories of
/// processes that are gone are removed first.
fn process_scratch(target: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("auditlog-fuzz-{target}-");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(&prefix)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(&parent)
        .unwrap()
}

fn options() -> Options {
    Options::new(HmacKey::from_bytes(KEY).unwrap())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
}

/// Events that the generator does not make.
fn odd_events(base_ns: i64) -> Vec<Event> {
    let at = |k: i64| Some(Utc.timestamp_nanos(base_ns + k * 1_000_000_000));
    let mut v = Vec::new();
    let mut e = Event::new("authentication", "user_login");
    e.timestamp = at(0);
    e.actor = Actor {
        user_id: Some("User-Mixed".into()),
        email: Some("Mixed.Case@Example.COM".into()),
        ip_address: Some("2001:db8::17".parse().unwrap()),
    };
    v.push(e.clone());
    // The same timestamp: ties sort by seq.
    e.actor.ip_address = Some("::ffff:198.51.100.7".parse().unwrap());
    e.severity = Severity::Critical;
    v.push(e.clone());
    e.actor.ip_address = Some("198.51.100.8".parse().unwrap());
    e.status = "failed".into();
    v.push(e);
    let mut bare = Event::new("system", "health_check");
    bare.timestamp = at(1);
    v.push(bare.clone());
    bare.resource = Some(Resource {
        kind: "service".into(),
        id: None,
    });
    bare.details = serde_json::json!({"ok": true, "nested": {"a": [1, 2.5, null]}}).into();
    v.push(bare);
    let mut weird = Event::new("data,access", " padded ");
    weird.timestamp = at(-86_400 * 400);
    weird.actor.user_id = Some("comma,user".into());
    weird.resource = Some(Resource {
        kind: "file".into(),
        id: Some("a=b&c".into()),
    });
    v.push(weird);
    v
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = process_scratch("query_parse");
        let dir = tmp.path();
        let start = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        {
            let log = Log::open(dir, options()).unwrap();
            let mut gen = Generator::new(11, 5, start);
            let first: Vec<Event> = (0..250).map(|_| gen.next_event()).collect();
            log.append_batch(&first).unwrap();
            log.append_batch(&odd_events(start + 3_000_000_000))
                .unwrap();
            let more: Vec<Event> = (0..250).map(|_| gen.next_event()).collect();
            log.append_batch(&more).unwrap();
        }
        {
            // Reopened first: `redact` of a record in a segment that was rolled but not yet
            // sealed by the worker fails (see fuzz/README.md, findings).
            let log = Log::open(dir, options()).unwrap();
            log.redact(7, "fuzz fixture").unwrap();
            log.append_batch(&odd_events(start + 9_000_000_000))
                .unwrap();
        }
        // Reopened: the rolled segments are sealed (with index files), the last is active.
        let log = Log::open(dir, options()).unwrap();
        let records: Vec<Record> = log.iter().map(|r| r.unwrap()).collect();
        assert!(
            log.stats().unwrap().segments >= 3,
            "the fixture should span segments"
        );
        Fixture {
            log,
            records,
            _tmp: tmp,
        }
    })
}

/// `name=value` pairs of the input, split on `&` and newlines.
pub fn params(text: &str) -> Vec<(&str, &str)> {
    text.split(['&', '\n'])
        .filter(|p| !p.is_empty())
        .take(MAX_PARAMS)
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn is_cursor_param(name: &str, value: &str) -> bool {
    (name == "cursor" || name == "page") && value.trim().starts_with('@')
}

/// Whether record `r` matches every filter of `q` (values of one filter OR-ed).
fn matches(q: &Query, r: &Record) -> bool {
    let e = &r.event;
    let any = |vals: &[String], v: Option<&str>| {
        vals.is_empty() || v.is_some_and(|v| vals.iter().any(|x| x == v))
    };
    let email = e.actor.email.as_ref().map(|m| m.to_ascii_lowercase());
    let emails: Vec<String> = q.emails.iter().map(|m| m.to_ascii_lowercase()).collect();
    q.start.is_none_or(|t| r.timestamp_ns >= t)
        && q.end.is_none_or(|t| r.timestamp_ns <= t)
        && any(&q.event_types, Some(&e.event_type))
        && any(&q.actions, Some(&e.action))
        && any(&q.statuses, Some(&e.status))
        && (q.severities.is_empty() || q.severities.contains(&e.severity))
        && any(&q.user_ids, e.actor.user_id.as_deref())
        && any(&emails, email.as_deref())
        && (q.ips.is_empty()
            || e.actor
                .ip_address
                .is_some_and(|ip| q.ips.iter().any(|n| n.contains(ip))))
        && any(
            &q.resource_types,
            e.resource.as_ref().map(|r| r.kind.as_str()),
        )
        && any(
            &q.resource_ids,
            e.resource.as_ref().and_then(|r| r.id.as_deref()),
        )
}

/// The records matching `q`, in its sort order.
fn expected<'a>(f: &'a Fixture, q: &Query) -> Vec<&'a Record> {
    let mut v: Vec<&Record> = f.records.iter().filter(|r| matches(q, r)).collect();
    v.sort_by_key(|r| (r.timestamp_ns, r.seq));
    if q.order == Order::Desc {
        v.reverse();
    }
    v
}

/// The page holds exactly `want[from..]` up to the limit.
fn check_page(q: &Query, page: &Page, want: &[&Record], from: usize) {
    let to = (from + q.limit).min(want.len()).max(from.min(want.len()));
    let slice = &want[from.min(want.len())..to];
    assert_eq!(page.total_count, want.len() as u64, "total_count of {q:?}");
    assert_eq!(page.returned_count, page.audit_logs.len());
    assert!(page.audit_logs.len() <= q.limit, "limit exceeded");
    assert_eq!(
        page.audit_logs.iter().map(|a| a.seq).collect::<Vec<_>>(),
        slice.iter().map(|r| r.seq).collect::<Vec<_>>(),
        "events of {q:?}"
    );
    for (got, r) in page.audit_logs.iter().zip(slice) {
        assert!(got.verification.verified, "seq {} did not verify", got.seq);
        assert_eq!(
            got.verification.hash,
            format!("hmac-sha256:{}", auditlog::hex(&r.hash))
        );
        let mut want = r.event.clone();
        if !q.include_details {
            want.details = auditlog::Details::none();
        }
        assert_eq!(got.event, want, "event {}", got.seq);
        assert_eq!(got.redacted, r.redacted, "redaction of {}", got.seq);
    }
    assert_eq!(
        page.next_page.is_some(),
        to < want.len(),
        "next_page of {q:?} at {from}..{to} of {}",
        want.len()
    );
}

/// What became of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reached {
    NotUtf8,
    /// `Query::from_params` refused it.
    Refused,
    /// The log refused its cursor.
    BadCursor,
    /// It ran and matched the model.
    Ran,
    /// It ran with a cursor the log accepted, and matched the model.
    RanWithCursor,
}

pub fn run(data: &[u8]) -> Reached {
    let Ok(text) = std::str::from_utf8(data) else {
        return Reached::NotUtf8;
    };
    let ps = params(text);
    let f = fixture();
    // A real cursor of the same query, when one is asked for.
    let mut owned: Vec<(String, String)> = Vec::new();
    let mut first_page_len = None;
    if ps.iter().any(|(n, v)| is_cursor_param(n, v)) {
        let base: Vec<(&str, &str)> = ps
            .iter()
            .copied()
            .filter(|(n, v)| !is_cursor_param(n, v))
            .collect();
        let real = Query::from_params(base)
            .ok()
            .and_then(|q| f.log.query(&q).ok())
            .and_then(|p| p.next_page.map(|c| (c, p.audit_logs.len())));
        for (n, v) in &ps {
            let v = match (&real, is_cursor_param(n, v)) {
                (Some((c, len)), true) => {
                    first_page_len = Some(*len);
                    let tail = &v.trim()[1..];
                    let keep = c.len().saturating_sub(tail.len());
                    format!("{}{tail}", &c[..keep])
                }
                _ => v.to_string(),
            };
            owned.push((n.to_string(), v));
        }
    }
    let q = if owned.is_empty() {
        Query::from_params(ps)
    } else {
        Query::from_params(owned.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    };
    let Ok(q) = q else {
        return Reached::Refused;
    };
    let want = expected(f, &q);
    let page = match f.log.query(&q) {
        Ok(p) => p,
        Err(Error::InvalidQuery { param, .. }) if param == "cursor" && q.cursor.is_some() => {
            return Reached::BadCursor
        }
        Err(e) => panic!("an accepted query failed: {e}: {q:?}"),
    };
    let reached = match (&q.cursor, q.page) {
        (Some(_), _) => {
            // Only the real cursor (up to hex case) is accepted: it continues after the
            // first page it came from.
            let from = first_page_len.expect("an accepted cursor that was not the log's");
            check_page(&q, &page, &want, from);
            assert_eq!(page.page, 2);
            Reached::RanWithCursor
        }
        (None, p) => {
            let p = p.unwrap_or(1);
            check_page(&q, &page, &want, (p as usize - 1) * q.limit);
            assert_eq!(page.page, p.min(u64::from(u32::MAX)));
            Reached::Ran
        }
    };
    // Export: every match, in log order or reverse log order.
    let mut out = Vec::new();
    let summary = f
        .log
        .export(&q, ExportFormat::Jsonl, &mut out)
        .unwrap_or_else(|e| panic!("export of {q:?}: {e}"));
    let mut seqs: Vec<u64> = want.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    if q.order == Order::Desc {
        seqs.reverse();
    }
    let got: Vec<u64> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("export line is JSON");
            v["seq"].as_u64().expect("seq in export line")
        })
        .collect();
    assert_eq!(got, seqs, "export of {q:?}");
    assert_eq!(summary.records, seqs.len() as u64);
    assert_eq!(summary.verified, summary.records);
    reached
}
