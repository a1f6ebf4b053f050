//! Shared helpers for the retention, compaction, legal-hold and redaction tests: events with
//! explicit timestamps spread over many days, logs of many small sealed segments, and the
//! expected effect of a retention run computed from what was appended.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use auditlog::{Checkpoint, Durability, Event, HmacKey, Log, Options, Receipt, VerifyReport};
use chrono::{DateTime, TimeZone, Utc};

use crate::common;

/// The key as text, so that the CLI can get it from `AUDIT_HMAC_KEY`.
pub const KEY: &str = "retention-test-key-0123456789-abcdefghijklmn";

pub fn key() -> HmacKey {
    HmacKey::from_bytes(KEY.as_bytes()).expect("key of at least 32 bytes")
}

pub const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// `2024-01-01 00:00:00 UTC` plus `day - 1` days plus `secs` seconds.
pub fn at(day: u32, secs: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
        + chrono::Duration::days(i64::from(day) - 1)
        + chrono::Duration::seconds(i64::from(secs))
}

pub fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().expect("in range")
}

/// One event of day `day`, the `j`-th of `per_day` (spread evenly over the day). Actors
/// cycle through user-0..user-4; even events are `authentication/user_login`, odd ones
/// `data_access/read`; every event has an email, an IP and details.
pub fn event(day: u32, j: u32, per_day: u32) -> Event {
    let (ty, action) = if j.is_multiple_of(2) {
        ("authentication", "user_login")
    } else {
        ("data_access", "read")
    };
    let mut e = Event::new(ty, action);
    e.timestamp = Some(at(day, j * (86_400 / per_day)));
    let u = (day * per_day + j) % 5;
    e.actor.user_id = Some(format!("user-{u}"));
    e.actor.email = Some(format!("user-{u}@example.com"));
    e.actor.ip_address = Some(format!("10.0.{day}.{}", j % 250).parse().unwrap());
    e.details = serde_json::json!({"day": day, "j": j, "pad": "p".repeat(200)}).into();
    e
}

/// `per_day` events for every day of `days`, oldest first.
pub fn spread(days: std::ops::RangeInclusive<u32>, per_day: u32) -> Vec<Event> {
    days.flat_map(|d| (0..per_day).map(move |j| event(d, j, per_day)))
        .collect()
}

/// Writer options of the test logs: buffered, 64 KiB segments.
pub fn write_opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(common::SMALL_SEGMENT)
}

/// Creates a log in `dir` with `events` (appended in batches) and closes it, so that every
/// rolled segment is sealed. Returns the receipts.
pub fn write(dir: &Path, events: &[Event]) -> Vec<Receipt> {
    let log = Log::open(dir, write_opts()).expect("open for writing");
    let mut out = Vec::with_capacity(events.len());
    for chunk in events.chunks(64) {
        out.extend(log.append_batch(chunk).expect("append batch"));
    }
    drop(log);
    out
}

/// Reopens `dir` for writing with `retention_days(days)` (and the test options).
pub fn reopen(dir: &Path, days: u32) -> Log {
    Log::open(dir, write_opts().retention_days(days)).expect("reopen for writing")
}

pub fn verify_ro(dir: &Path) -> VerifyReport {
    verify_ro_with(dir, &[])
}

pub fn verify_ro_with(dir: &Path, external: &[Checkpoint]) -> VerifyReport {
    Log::open_read_only(dir, key())
        .expect("open read-only")
        .verify_with(external)
        .expect("verify runs")
}

pub fn assert_ok(r: &VerifyReport, what: &str) {
    assert!(
        r.ok,
        "{what}: verify must pass, got {:?} (warnings {:?})",
        r.failure, r.warnings
    );
}

/// A segment file as seen on disk: name, seq range, and whether it is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub name: String,
    pub path: PathBuf,
    pub first: u64,
    pub last: u64,
    pub sealed: bool,
}

pub fn spans(dir: &Path) -> Vec<Span> {
    common::layouts(dir)
        .into_iter()
        .filter(|l| !l.frames.is_empty())
        .map(|l| Span {
            first: l.first_seq(),
            last: l.last_seq(),
            sealed: l.footer.is_some(),
            name: l.name,
            path: l.path,
        })
        .collect()
}

/// Newest timestamp (ns) among the events of seqs `first..=last`, where `ts[seq]` is the
/// timestamp of seq `seq`.
pub fn max_ts(ts: &[i64], first: u64, last: u64) -> i64 {
    ts[first as usize..=last as usize]
        .iter()
        .copied()
        .max()
        .expect("non-empty range")
}

/// The segments a retention run at `cutoff_ns` must remove: the longest prefix of sealed
/// segments (never the newest one) whose newest event is older than the cutoff.
pub fn expected_removed(spans: &[Span], ts: &[i64], cutoff_ns: i64) -> Vec<Span> {
    let n = spans.len();
    spans[..n - 1]
        .iter()
        .take_while(|s| s.sealed && max_ts(ts, s.first, s.last) < cutoff_ns)
        .cloned()
        .collect()
}

/// Seqs of every record, in iteration order.
pub fn seqs(log: &Log) -> Vec<u64> {
    log.iter().map(|r| r.expect("record reads").seq).collect()
}

/// Names of the files in `dir` with extension `ext`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    v
}
