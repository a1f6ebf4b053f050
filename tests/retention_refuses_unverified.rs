//! Invariant: retention and compaction only ever remove records from segments that verify:
//! a footer edited (with a valid CRC) to make recent events look expired makes the run fail
//! and removes nothing.

use std::fs;
use std::path::Path;

use auditlog::{Durability, Error, Event, HmacKey, Log, Options};
use chrono::{Duration, TimeZone, Utc};

fn key() -> HmacKey {
    HmacKey::from_bytes(&[0x61; 32]).unwrap()
}

fn event(i: u64) -> Event {
    let mut e = Event::new("authentication", "user_login");
    e.timestamp =
        Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::hours(i as i64));
    e.actor.user_id = Some(format!("user-{}", i % 3));
    e.details = serde_json::json!({"pad": "y".repeat(200)}).into();
    e
}

fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
        .retention_days(5)
}

fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn an_edited_footer_never_gets_recent_events_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), opts()).unwrap();
        let events: Vec<Event> = (0..600).map(event).collect();
        log.append_batch(&events).unwrap();
    }
    let now = Utc.with_ymd_and_hms(2024, 1, 26, 0, 0, 0).unwrap();
    let straddling = {
        let log = Log::open(dir.path(), opts()).unwrap();
        let plan = log.plan_retention(now).unwrap();
        plan.straddling.expect("a segment straddles the cutoff")
    };
    // Make the straddling segment's footer claim all its events are from 2024-01-01.
    let path = dir.path().join(&straddling);
    let mut b = fs::read(&path).unwrap();
    let f = b.len() - 128;
    let old = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    b[f + 40..f + 48].copy_from_slice(&old.to_le_bytes());
    b[f + 48..f + 56].copy_from_slice(&old.to_le_bytes());
    let crc = crc32fast::hash(&b[f..f + 124]);
    b[f + 124..f + 128].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, b).unwrap();

    let before = listing(dir.path());
    let log = Log::open(dir.path(), opts()).unwrap();
    for run in [log.apply_retention(now), log.compact(now)] {
        match run {
            Err(Error::Corrupt { file, detail, .. }) => {
                assert_eq!(file, path, "{detail}");
                assert!(detail.contains("does not verify"), "{detail}");
            }
            other => panic!("retention must refuse, got {other:?}"),
        }
    }
    drop(log);
    assert_eq!(
        listing(dir.path()),
        before,
        "nothing was removed or rewritten"
    );
    assert!(
        !dir.path().join(auditlog::POLICY_FILE).exists() || {
            let log = Log::open_read_only(dir.path(), key()).unwrap();
            log.last_retention_run().is_none_or(|r| r.removed.is_none())
        }
    );
}
