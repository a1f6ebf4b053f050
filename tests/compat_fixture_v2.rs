//! Invariant: a log written by format version 2 (the committed fixture in `tests/fixtures/v2`,
//! with a retention removal in `policy.log`, a redacted record and archived segments) keeps
//! opening, verifying and answering queries in every later build.

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::{Durability, Event, HmacKey, Log, Options, Query};
use chrono::{Duration, TimeZone, Utc};

const FIXTURE_EVENTS: u64 = 600;
/// Values recorded when the fixture was generated (see `generate_fixture_v2`).
const FIXTURE_LOG_ID: &str = "fca2bdd6ad414d4f4a6e5dad671cb8d6";
const FIXTURE_LAST_HASH: &str = "bca522b935d679db1d2f27ba61253753381887fde98f99e8beeab304a56c0fa8";
const FIXTURE_FIRST_SEQ: u64 = 340;
const REDACTED_SEQ: u64 = 590;

fn key() -> HmacKey {
    HmacKey::from_bytes(&[0x43; 32]).unwrap()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            fs::copy(&p, &dst).unwrap();
        }
    }
}

fn fixture_copy() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), t.path());
    t
}

fn event(i: u64) -> Event {
    let mut e = Event::new(
        if i.is_multiple_of(3) {
            "security_event"
        } else {
            "authentication"
        },
        "user_login",
    );
    e.event_id = Some(format!("evt_{i:04}"));
    e.timestamp =
        Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::hours(i as i64));
    e.actor.user_id = Some(format!("user-{}", i % 4));
    e.details = serde_json::json!({"i": i, "note": "fixture ".repeat(30)}).into();
    e
}

#[test]
#[ignore = "regenerates the committed fixture; run by hand only for a new format version"]
fn generate_fixture_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
        .retention_days(5)
        .archive_days(3);
    {
        let log = Log::open(tmp.path(), opts.clone()).unwrap();
        let events: Vec<Event> = (0..FIXTURE_EVENTS).map(event).collect();
        for chunk in events.chunks(50) {
            log.append_batch(chunk).unwrap();
        }
    }
    let log = Log::open(tmp.path(), opts).unwrap();
    let now = Utc.with_ymd_and_hms(2024, 1, 26, 0, 0, 0).unwrap();
    let r = log.apply_retention(now).unwrap();
    assert!(r.removed.is_some(), "{r:?}");
    log.redact(REDACTED_SEQ, "fixture erasure").unwrap();
    let a = log.archive(now).unwrap();
    assert!(!a.archived.is_empty(), "{a:?}");
    let last = log.iter().last().unwrap().unwrap();
    println!("log_id {}", log.log_id());
    println!("last seq {} hash {}", last.seq, auditlog::hex(&last.hash));
    println!("first seq {}", log.iter().next().unwrap().unwrap().seq);
    drop(log);
    let out = fixture_dir();
    if out.exists() {
        fs::remove_dir_all(&out).unwrap();
    }
    copy_dir(tmp.path(), &out);
    let _ = fs::remove_file(out.join("LOCK"));
    for entry in fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "idx") {
            fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn v2_fixture_verifies_and_answers() {
    let dir = fixture_copy();
    let meta = fs::read(dir.path().join(auditlog::META_FILE)).unwrap();
    assert_eq!(
        u16::from_le_bytes([meta[8], meta[9]]),
        2,
        "the fixture's meta says version 2"
    );
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    assert_eq!(log.log_id(), FIXTURE_LOG_ID);
    let report = log.verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.first_seq, Some(FIXTURE_FIRST_SEQ));
    let stats = log.stats().unwrap();
    assert!(
        stats
            .segment_files
            .iter()
            .any(|f| f.starts_with("archive/")),
        "{:?}",
        stats.segment_files
    );
    let run = stats.last_retention.expect("a retention run is recorded");
    let removed = run.removed.expect("it removed a prefix");
    assert_eq!(removed.from_seq, 0);
    assert_eq!(removed.to_seq + 1, FIXTURE_FIRST_SEQ);
    let records: Vec<_> = log.iter().map(|r| r.unwrap()).collect();
    assert_eq!(records.first().unwrap().seq, FIXTURE_FIRST_SEQ);
    // The original events, then the audit events of the redaction and the archive run.
    let last_original = records.iter().rfind(|r| r.seq < FIXTURE_EVENTS).unwrap();
    assert_eq!(last_original.event.event_id.as_deref(), Some("evt_0599"));
    assert_eq!(
        auditlog::hex(&records.last().unwrap().hash),
        FIXTURE_LAST_HASH
    );
    for r in records.iter().filter(|r| r.seq < FIXTURE_EVENTS) {
        let want = event(r.seq);
        assert_eq!(r.event.event_id, want.event_id);
        assert_eq!(r.event.timestamp, want.timestamp);
        if r.seq == REDACTED_SEQ {
            let red = r.redacted.as_ref().expect("the redacted seq is marked");
            assert_eq!(red.reason, "fixture erasure");
            assert_eq!(r.event.actor.user_id, None);
            assert!(r.event.details.is_null());
        } else {
            assert!(r.redacted.is_none());
            assert_eq!(r.event.actor.user_id, want.actor.user_id);
            assert_eq!(r.event.details, want.details);
        }
    }
    // Queries reach archived segments too.
    let q = Query::from_params([("user_id", "user-1"), ("order", "asc"), ("limit", "1")]).unwrap();
    let page = log.query(&q).unwrap();
    let expected = (FIXTURE_FIRST_SEQ..FIXTURE_EVENTS)
        .filter(|i| i % 4 == 1 && *i != REDACTED_SEQ)
        .count();
    assert_eq!(page.total_count as usize, expected);
    assert!(page.audit_logs[0].verification.verified);
}

#[test]
fn v2_fixture_opens_for_writing_and_damage_is_caught() {
    let dir = fixture_copy();
    {
        let log = Log::open(dir.path(), Options::new(key())).unwrap();
        log.append(&event(1000)).unwrap();
        assert!(log.verify().unwrap().ok);
    }
    assert!(
        Log::open_read_only(dir.path(), key())
            .unwrap()
            .verify()
            .unwrap()
            .ok
    );
    // Flip one byte of an archived segment's compressed body: caught.
    let archived = fs::read_dir(dir.path().join("archive"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = fs::read(&archived).unwrap();
    let at = b.len() - 10;
    b[at] ^= 0x40;
    fs::write(&archived, b).unwrap();
    let report = Log::open_read_only(dir.path(), key())
        .unwrap()
        .verify()
        .unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.failure.unwrap().kind,
        auditlog::FailureKind::CorruptFrame
    );
}
