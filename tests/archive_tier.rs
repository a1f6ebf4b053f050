//! Invariant: archived segments stay verifiable and queryable, damage to them is caught, and
//! an archive run interrupted at any step leaves a log that opens and verifies with every
//! record still there.

use std::fs;
use std::path::Path;

use auditlog::{Durability, Event, FailureKind, HmacKey, Log, Options, Query};
use chrono::{Duration, TimeZone, Utc};

fn key() -> HmacKey {
    HmacKey::from_bytes(&[0x51; 32]).unwrap()
}

fn event(i: u64) -> Event {
    let mut e = Event::new("authentication", "user_login");
    e.event_id = Some(format!("evt_{i:05}"));
    e.timestamp =
        Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::hours(i as i64));
    e.actor.user_id = Some(format!("user-{}", i % 3));
    e.details = serde_json::json!({"i": i, "pad": "x".repeat(200)}).into();
    e
}

fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
        .archive_days(5)
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

fn seqs(log: &Log) -> Vec<u64> {
    log.iter().map(|r| r.unwrap().seq).collect()
}

/// A log of 600 hourly events, archived at 2024-01-26 (segments older than 5 days move).
fn archived_log(dir: &Path) -> (Vec<u64>, Vec<String>) {
    {
        let log = Log::open(dir, opts()).unwrap();
        let events: Vec<Event> = (0..600).map(event).collect();
        log.append_batch(&events).unwrap();
    }
    let log = Log::open(dir, opts()).unwrap();
    let before = seqs(&log);
    let now = Utc.with_ymd_and_hms(2024, 1, 26, 0, 0, 0).unwrap();
    let plan = log.plan_archive(now).unwrap();
    let r = log.archive(now).unwrap();
    assert_eq!(
        plan.archived, r.archived,
        "the dry run names what the run moves"
    );
    assert!(r.archived.len() >= 2, "{r:?}");
    assert!(
        r.bytes_after < r.bytes_before,
        "archived files are compressed: {r:?}"
    );
    assert!(log.verify().unwrap().ok);
    (before, r.archived)
}

#[test]
fn archived_segments_verify_and_answer_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (before, archived) = archived_log(dir.path());
    for name in &archived {
        assert!(
            !dir.path().join(name).exists(),
            "{name} left the data directory"
        );
        assert!(dir
            .path()
            .join("archive")
            .join(format!("{name}.lz4"))
            .exists());
    }
    let ro = Log::open_read_only(dir.path(), key()).unwrap();
    let report = ro.verify().unwrap();
    assert!(report.ok, "{report:?}");
    // Every record is still readable (plus the audit event recording the archive run).
    let after = seqs(&ro);
    assert_eq!(&after[..before.len()], &before[..]);
    let stats = ro.stats().unwrap();
    assert!(stats
        .segment_files
        .iter()
        .any(|f| f.starts_with("archive/")));
    let q = Query::from_params([("user_id", "user-1"), ("order", "asc"), ("limit", "5")]).unwrap();
    let page = ro.query(&q).unwrap();
    assert_eq!(page.total_count, 200);
    assert_eq!(page.audit_logs[0].seq, 1);
    assert!(page.audit_logs.iter().all(|e| e.verification.verified));
    // The archive run is recorded in the log itself.
    let last = ro.iter().last().unwrap().unwrap();
    assert_eq!(last.event.action, "segments_archived");
    // A writer reopens over archived segments and keeps appending.
    drop(ro);
    let log = Log::open(dir.path(), opts()).unwrap();
    log.append(&event(1000)).unwrap();
    assert!(log.verify().unwrap().ok);
}

#[test]
fn damage_to_an_archived_segment_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (_, archived) = archived_log(dir.path());
    let path = dir
        .path()
        .join("archive")
        .join(format!("{}.lz4", archived[0]));
    let mut b = fs::read(&path).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x08;
    fs::write(&path, b).unwrap();
    let ro = Log::open_read_only(dir.path(), key()).unwrap();
    let report = ro.verify().unwrap();
    let f = report.failure.expect("damage caught");
    assert_eq!(f.kind, FailureKind::CorruptFrame);
    assert_eq!(
        f.segment.as_deref(),
        Some(format!("archive/{}.lz4", archived[0]).as_str())
    );
    assert!(
        ro.iter().any(|r| r.is_err()),
        "reading reports the unreadable segment"
    );
}

#[test]
fn interrupted_archive_runs_leave_a_whole_log() {
    let base = tempfile::tempdir().unwrap();
    let (before, archived) = archived_log(base.path());
    let name = &archived[0];

    // A crash while writing the archive file leaves a temporary in archive/: ignored.
    let both = tempfile::tempdir().unwrap();
    copy_dir(base.path(), both.path());
    fs::write(
        both.path().join("archive").join(format!("{name}.lz4.tmp")),
        b"partial",
    )
    .unwrap();
    let ro = Log::open_read_only(both.path(), key()).unwrap();
    assert!(ro.verify().unwrap().ok);
    drop(ro);
    let log = Log::open(both.path(), opts()).unwrap();
    assert_eq!(&seqs(&log)[..before.len()], &before[..]);
    assert!(log.verify().unwrap().ok);
    drop(log);

    // Crash before the archive file was renamed into place: a temporary in archive/ and the
    // original still in the data directory.
    let fresh = tempfile::tempdir().unwrap();
    {
        let log = Log::open(fresh.path(), opts()).unwrap();
        let events: Vec<Event> = (0..600).map(event).collect();
        log.append_batch(&events).unwrap();
    }
    fs::create_dir_all(fresh.path().join("archive")).unwrap();
    let first_seg = fs::read_dir(fresh.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".seg"))
        .min()
        .unwrap();
    fs::write(
        fresh
            .path()
            .join("archive")
            .join(format!("{first_seg}.lz4.tmp")),
        b"partial",
    )
    .unwrap();
    let ro = Log::open_read_only(fresh.path(), key()).unwrap();
    assert!(ro.verify().unwrap().ok);
    assert_eq!(seqs(&ro).len(), 600);
    drop(ro);

    // Crash after the rename, before the original was removed: the original in the data
    // directory wins, the archived copy is ignored (and redone by the next run).
    let dup = tempfile::tempdir().unwrap();
    copy_dir(fresh.path(), dup.path());
    let log = Log::open(dup.path(), opts()).unwrap();
    let now = Utc.with_ymd_and_hms(2024, 1, 26, 0, 0, 0).unwrap();
    let r = log.archive(now).unwrap();
    drop(log);
    let moved = &r.archived[0];
    fs::copy(fresh.path().join(moved), dup.path().join(moved)).unwrap();
    let ro = Log::open_read_only(dup.path(), key()).unwrap();
    assert!(
        ro.stats().unwrap().segment_files.contains(moved),
        "the original is used"
    );
    assert!(ro.verify().unwrap().ok);
    drop(ro);
    let log = Log::open(dup.path(), opts()).unwrap();
    assert!(log.verify().unwrap().ok);
    assert_eq!(&seqs(&log)[..600], &(0..600).collect::<Vec<u64>>()[..]);
}
