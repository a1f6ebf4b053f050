//! Invariant: `compact(now)` drops the expired prefix of the segment that straddles the
//! cutoff without reordering records or changing any chain value, continuing the seq range
//! of the previous removal, and the log verifies; a crash at any step of retention or
//! compaction (signed record written but nothing removed, old segment and its rewrite both
//! present, a half-written `*.tmp`) leaves a log that verifies read-only and that `open`
//! finishes, losing nothing the policy did not remove.

mod common;
mod retention_support;

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::{Event, Log, Receipt, POLICY_FILE};
use chrono::{DateTime, TimeZone, Utc};
use retention_support::*;

const RETENTION_DAYS: u32 = 20;

struct Base {
    dir: PathBuf,
    events: Vec<Event>,
    receipts: Vec<Receipt>,
    ts: Vec<i64>,
    spans: Vec<Span>,
    /// Index in `spans` of the segment the cutoff falls inside.
    k: usize,
    /// First seq at or after the cutoff (inside segment `k`).
    cut_seq: u64,
    cutoff: i64,
}

impl Base {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_nanos(self.cutoff + i64::from(RETENTION_DAYS) * DAY_NS)
    }
    /// A later time at which segment `k` (compacted or not) has wholly expired.
    fn later(&self) -> DateTime<Utc> {
        let s = &self.spans[self.k];
        Utc.timestamp_nanos(
            max_ts(&self.ts, s.first, s.last) + 1 + i64::from(RETENTION_DAYS) * DAY_NS,
        )
    }
    fn whole(&self) -> &[Span] {
        &self.spans[..self.k]
    }
    fn straddling(&self) -> &Span {
        &self.spans[self.k]
    }
    fn rewrite_name(&self) -> String {
        format!("{:020}.seg", self.cut_seq)
    }
    /// A copy of the pristine log.
    fn copy(&self, root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        common::copy_dir(&self.dir, &d);
        d
    }
    /// Every record from `cut_seq` on is present with its original chain value and event.
    fn assert_kept_intact(&self, log: &Log, what: &str) {
        let recs: Vec<auditlog::Record> = log
            .iter_from(self.cut_seq)
            .map(|r| r.unwrap())
            .filter(|r| r.seq < self.receipts.len() as u64)
            .collect();
        assert_eq!(
            recs.len() as u64,
            self.receipts.len() as u64 - self.cut_seq,
            "{what}: every record from seq {} on is kept",
            self.cut_seq
        );
        for (i, r) in recs.iter().enumerate() {
            let seq = self.cut_seq + i as u64;
            assert_eq!(r.seq, seq, "{what}: order");
            assert_eq!(
                r.hash, self.receipts[seq as usize].hash,
                "{what}: chain value of {seq}"
            );
            assert_eq!(r.event.details, self.events[seq as usize].details, "{what}");
        }
    }
}

/// 40 days x 48 events; the cutoff is put in the middle of the 4th segment.
fn base(root: &Path) -> Base {
    let dir = root.join("pristine");
    let events = spread(1..=40, 48);
    let receipts = write(&dir, &events);
    let ts: Vec<i64> = events.iter().map(|e| ns(e.timestamp.unwrap())).collect();
    let spans = spans(&dir);
    assert!(spans.len() >= 7, "{spans:?}");
    let k = 3;
    let s = &spans[k];
    assert!(s.sealed);
    let cut_seq = (s.first + s.last) / 2;
    let cutoff = ts[cut_seq as usize];
    assert!(ts[cut_seq as usize - 1] < cutoff && ts[s.first as usize] < cutoff);
    assert!(spans[..k]
        .iter()
        .all(|p| max_ts(&ts, p.first, p.last) < cutoff));
    Base {
        dir,
        events,
        receipts,
        ts,
        spans,
        k,
        cut_seq,
        cutoff,
    }
}

/// Runs `compact` (or plain retention) at `b.now()` on a copy and returns that directory.
fn real_run(b: &Base, root: &Path, name: &str, compact: bool) -> PathBuf {
    let d = b.copy(root, name);
    let log = reopen(&d, RETENTION_DAYS);
    let r = if compact {
        log.compact(b.now()).unwrap()
    } else {
        log.apply_retention(b.now()).unwrap()
    };
    assert!(r.removed.is_some());
    assert_eq!(r.compacted.is_some(), compact);
    d
}

#[test]
fn compaction_drops_the_expired_prefix_and_keeps_every_chain_value() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let dir = b.copy(tmp.path(), "log");
    let log = reopen(&dir, RETENTION_DAYS);
    let external = log.checkpoint().unwrap();

    let report = log.compact(b.now()).unwrap();

    let removed = report.removed.clone().unwrap();
    let s = b.straddling();
    assert_eq!((removed.from_seq, removed.to_seq), (0, s.first - 1));
    assert_eq!(report.straddling.as_deref(), Some(s.name.as_str()));
    let c = report
        .compacted
        .clone()
        .expect("the straddling segment is compacted");
    assert!(c.compacted);
    assert_eq!(
        c.from_seq, s.first,
        "compaction continues the previous removal"
    );
    assert_eq!(c.to_seq, b.cut_seq - 1);
    assert_eq!(c.count, b.cut_seq - s.first);
    assert_eq!(
        c.last_hash,
        auditlog::hex(&b.receipts[b.cut_seq as usize - 1].hash)
    );
    assert_eq!(c.segments.len(), 1);
    assert_eq!(c.segments[0].file, s.name);
    assert_eq!(
        (c.segments[0].first_seq, c.segments[0].last_seq),
        (s.first, b.cut_seq - 1)
    );
    assert_eq!(c.segments[0].max_ts, max_ts(&b.ts, s.first, b.cut_seq - 1));
    assert!(c.segments[0].max_ts < b.cutoff);

    // Files: the whole segments and the old straddling one are gone, the rewrite is named
    // by its new first seq, later segments are untouched.
    for w in b.whole() {
        assert!(!dir.join(&w.name).exists());
    }
    assert!(
        !dir.join(&s.name).exists(),
        "the superseded segment is deleted"
    );
    assert!(dir.join(b.rewrite_name()).exists());
    for later in &b.spans[b.k + 1..b.spans.len() - 1] {
        assert_eq!(
            fs::read(dir.join(&later.name)).unwrap(),
            fs::read(b.dir.join(&later.name)).unwrap()
        );
    }
    assert!(files_with_ext(&dir, ".tmp").is_empty());
    let after = spans(&dir);
    assert_eq!(after[0].first, b.cut_seq);
    assert!(after[0].sealed);
    assert_eq!(after[0].last, s.last);

    // Records: strictly increasing, contiguous from the cutoff, chain values unchanged.
    let seqs = seqs(&log);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "never reordered");
    assert_eq!(seqs[0], b.cut_seq);
    b.assert_kept_intact(&log, "after compaction");
    assert_eq!(log.get(b.cut_seq - 1).unwrap(), None);
    assert_eq!(log.stats().unwrap().first_seq, Some(b.cut_seq));

    // Recorded twice in policy.log (the whole segments, then the compaction), once in the log.
    let policy = fs::read_to_string(dir.join(POLICY_FILE)).unwrap();
    assert_eq!(policy.lines().count(), 2, "{policy}");
    assert_eq!(log.last_retention_run().unwrap().removed, Some(c.clone()));
    let last = log.iter().last().unwrap().unwrap();
    assert_eq!(last.event.action, "retention_applied");
    assert_eq!(
        last.event.details.to_value()["compacted"]["to_seq"],
        serde_json::json!(b.cut_seq - 1)
    );

    let r = log.verify_with(std::slice::from_ref(&external)).unwrap();
    assert_ok(&r, "after compaction");
    assert_eq!(r.first_seq, Some(b.cut_seq));
    drop(log);
    assert_ok(
        &verify_ro_with(&dir, std::slice::from_ref(&external)),
        "after compaction, read-only",
    );

    // Reopened: the same records; compaction again at the same time does nothing.
    let log = reopen(&dir, RETENTION_DAYS);
    b.assert_kept_intact(&log, "reopened");
    let again = log.compact(b.now()).unwrap();
    assert!(
        again.removed.is_none() && again.compacted.is_none(),
        "{again:?}"
    );
    // Later the compacted segment expires whole and goes: removals stay one contiguous range.
    let later = log.apply_retention(b.later()).unwrap();
    let r2 = later.removed.unwrap();
    assert_eq!(r2.from_seq, b.cut_seq);
    assert_eq!(r2.segments[0].file, b.rewrite_name());
    assert_ok(&log.verify().unwrap(), "after the compacted segment went");
    drop(log);
    assert_ok(
        &verify_ro(&dir),
        "after the compacted segment went, read-only",
    );
}

#[test]
fn crash_after_retention_record_before_any_deletion_is_finished_by_open() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let done = real_run(&b, tmp.path(), "done", false);
    // The state right after the signed record was written: every file still there.
    let d = b.copy(tmp.path(), "crashed");
    fs::copy(done.join(POLICY_FILE), d.join(POLICY_FILE)).unwrap();

    let r = verify_ro(&d);
    assert_ok(&r, "interrupted retention, read-only");
    assert_eq!(r.first_seq, Some(b.straddling().first));

    let log = reopen(&d, RETENTION_DAYS);
    for w in b.whole() {
        assert!(!d.join(&w.name).exists(), "open removes {}", w.name);
    }
    assert_eq!(
        log.iter().next().unwrap().unwrap().seq,
        b.straddling().first
    );
    b.assert_kept_intact(&log, "after open finished the run");
    assert_ok(&log.verify().unwrap(), "after open finished the run");
    // And a later run continues from there.
    log.apply_retention(b.later()).unwrap().removed.unwrap();
    assert_ok(&log.verify().unwrap(), "a later run");
    drop(log);
    assert_ok(&verify_ro(&d), "a later run, read-only");
}

/// The state right after both signed records of a compaction were written, before anything
/// was deleted or rewritten.
fn compaction_recorded_nothing_done(b: &Base, root: &Path) -> PathBuf {
    let done = real_run(b, root, "done", true);
    let d = b.copy(root, "crashed");
    fs::copy(done.join(POLICY_FILE), d.join(POLICY_FILE)).unwrap();
    d
}

#[test]
fn crash_after_compaction_record_before_rewrite_verifies_and_open_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let d = compaction_recorded_nothing_done(&b, tmp.path());
    assert_ok(&verify_ro(&d), "interrupted compaction, read-only");

    let log = reopen(&d, RETENTION_DAYS);
    for w in b.whole() {
        assert!(!d.join(&w.name).exists(), "open removes {}", w.name);
    }
    assert_ok(&log.verify().unwrap(), "after open");
    b.assert_kept_intact(&log, "after open");
    drop(log);
    assert_ok(&verify_ro(&d), "after open, read-only");

    // `policy.log` says seqs up to cut_seq - 1 were removed: once open has finished the
    // run, the log no longer serves them.
    let log = reopen(&d, RETENTION_DAYS);
    assert_eq!(
        log.iter().next().unwrap().unwrap().seq,
        b.cut_seq,
        "records the signed compaction record says were removed are still served after open"
    );
}

#[test]
fn crash_after_compaction_record_before_rewrite_later_runs_still_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let d = compaction_recorded_nothing_done(&b, tmp.path());
    let log = reopen(&d, RETENTION_DAYS);
    assert_ok(&log.verify().unwrap(), "after open");
    // A later retention run, once the straddling segment has wholly expired.
    let r = log.apply_retention(b.later()).unwrap();
    assert!(r.removed.is_some(), "{r:?}");
    let v = log.verify().unwrap();
    assert_ok(&v, "a retention run after an interrupted compaction");
    drop(log);
    assert_ok(
        &verify_ro(&d),
        "a retention run after an interrupted compaction, read-only",
    );
}

#[test]
fn crash_with_old_segment_and_its_rewrite_both_present() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let done = real_run(&b, tmp.path(), "done", true);
    let rewrite = done.join(b.rewrite_name());
    assert!(rewrite.exists());
    // Realistic order: whole segments deleted, compaction recorded, rewrite renamed into
    // place, old segment not yet deleted. Also the state with nothing deleted at all.
    for whole_still_there in [false, true] {
        let d = b.copy(tmp.path(), &format!("both_{whole_still_there}"));
        fs::copy(done.join(POLICY_FILE), d.join(POLICY_FILE)).unwrap();
        fs::copy(&rewrite, d.join(b.rewrite_name())).unwrap();
        if !whole_still_there {
            for w in b.whole() {
                fs::remove_file(d.join(&w.name)).unwrap();
            }
        }
        assert!(d.join(&b.straddling().name).exists());
        let r = verify_ro(&d);
        assert_ok(&r, "old segment and rewrite both present, read-only");
        assert_eq!(
            r.first_seq,
            Some(b.cut_seq),
            "verify skips the superseded segment"
        );

        let log = reopen(&d, RETENTION_DAYS);
        assert!(
            !d.join(&b.straddling().name).exists(),
            "open deletes the superseded segment"
        );
        for w in b.whole() {
            assert!(!d.join(&w.name).exists());
        }
        assert_eq!(spans(&d)[0].first, b.cut_seq);
        assert_eq!(seqs(&log)[0], b.cut_seq);
        b.assert_kept_intact(&log, "after open");
        assert_ok(&log.verify().unwrap(), "after open");
        log.apply_retention(b.later()).unwrap();
        assert_ok(&log.verify().unwrap(), "a later run");
        drop(log);
        assert_ok(&verify_ro(&d), "after open and a later run, read-only");
    }
}

#[test]
fn leftover_tmp_of_an_interrupted_rewrite_is_ignored_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let done = real_run(&b, tmp.path(), "done", true);
    let rewrite = fs::read(done.join(b.rewrite_name())).unwrap();
    // Whole segments deleted, compaction recorded, the rewrite half written under its
    // temporary name.
    let d = b.copy(tmp.path(), "crashed");
    fs::copy(done.join(POLICY_FILE), d.join(POLICY_FILE)).unwrap();
    for w in b.whole() {
        fs::remove_file(d.join(&w.name)).unwrap();
    }
    let tmp_name = format!("{}.tmp", b.rewrite_name());
    fs::write(d.join(&tmp_name), &rewrite[..rewrite.len() / 2]).unwrap();

    assert_ok(&verify_ro(&d), "with a leftover .tmp, read-only");
    assert!(d.join(&tmp_name).exists(), "a read-only open never writes");
    let log = reopen(&d, RETENTION_DAYS);
    assert!(!d.join(&tmp_name).exists(), "open removes the leftover");
    assert!(files_with_ext(&d, ".tmp").is_empty());
    b.assert_kept_intact(&log, "after open");
    assert_ok(&log.verify().unwrap(), "after open");
    drop(log);
    assert_ok(&verify_ro(&d), "after open, read-only");

    // A stray .tmp in a log with no retention at all is also just removed.
    let d = b.copy(tmp.path(), "stray");
    fs::write(d.join("00000000000000000000.seg.tmp"), b"partial").unwrap();
    assert_ok(&verify_ro(&d), "stray .tmp, read-only");
    let log = reopen(&d, 0);
    assert!(!d.join("00000000000000000000.seg.tmp").exists());
    assert_eq!(log.iter().count(), b.events.len());
    assert_ok(&log.verify().unwrap(), "stray .tmp, after open");
}

#[test]
fn crash_while_writing_the_retention_record_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let done = real_run(&b, tmp.path(), "done", false);
    let line = fs::read_to_string(done.join(POLICY_FILE)).unwrap();
    // The signed record cut short by the crash: nothing was deleted yet.
    let d = b.copy(tmp.path(), "torn");
    fs::write(d.join(POLICY_FILE), &line[..line.len() / 2]).unwrap();
    let r = verify_ro(&d);
    assert_ok(&r, "torn policy record, read-only");
    assert_eq!(r.first_seq, Some(0));
    assert!(
        r.warnings.iter().any(|w| w.contains(POLICY_FILE)),
        "the torn line is reported: {:?}",
        r.warnings
    );
    let log = reopen(&d, RETENTION_DAYS);
    assert_eq!(
        log.iter().next().unwrap().unwrap().seq,
        0,
        "nothing was removed"
    );
    assert_eq!(files_with_ext(&d, ".seg"), files_with_ext(&b.dir, ".seg"));
    // The run is simply done again.
    let again = log.apply_retention(b.now()).unwrap();
    assert_eq!(
        again.removed.unwrap().segments.len(),
        b.whole().len(),
        "the rerun removes the expired segments"
    );
    assert_ok(&log.verify().unwrap(), "rerun after a torn record");
    drop(log);
    let text = fs::read_to_string(d.join(POLICY_FILE)).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "the torn line was replaced: {text}"
    );
    assert_ok(&verify_ro(&d), "rerun after a torn record, read-only");
}
