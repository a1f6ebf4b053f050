//! Invariant: `apply_retention(now)` removes exactly the longest prefix of whole sealed
//! segments whose newest event is older than `now - retention_days` (never the active
//! segment), records it in the signed `policy.log` and in `stats`, and leaves a log that
//! verifies with every checkpoint while serving every remaining event; a dry run and
//! `retention_days = 0` change nothing; and any removal beyond the policy (one more segment, a
//! middle segment, an edited, forged or deleted policy record) makes `verify` fail.

mod common;
mod retention_support;

use std::fs;
use std::path::Path;

use auditlog::{Chain, Checkpoint, Event, FailureKind, Log, Query, POLICY_FILE};
use chrono::{DateTime, TimeZone, Utc};
use retention_support::*;

const DAYS: u32 = 40;
const PER_DAY: u32 = 48;
const RETENTION_DAYS: u32 = 20;

fn now() -> DateTime<Utc> {
    // 2024-02-11 00:00: the cutoff is 2024-01-22 00:00.
    at(42, 0)
}

fn cutoff_ns() -> i64 {
    ns(now()) - i64::from(RETENTION_DAYS) * DAY_NS
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    assert_eq!(s.len(), 2 * N, "{s:?} is not {N} hex bytes");
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digit");
    }
    out
}

/// The log of this file: 40 days x 48 events, closed (every rolled segment sealed).
struct Base {
    events: Vec<Event>,
    receipts: Vec<auditlog::Receipt>,
    ts: Vec<i64>,
    log_id: [u8; 16],
}

fn base(dir: &Path) -> Base {
    let events = spread(1..=DAYS, PER_DAY);
    let receipts = write(dir, &events);
    let ts = events
        .iter()
        .map(|e| ns(e.timestamp.expect("explicit timestamp")))
        .collect();
    let log_id = unhex::<16>(&Log::open_read_only(dir, key()).unwrap().log_id());
    Base {
        events,
        receipts,
        ts,
        log_id,
    }
}

fn failure_kind_seq(dir: &Path) -> (FailureKind, Option<u64>) {
    let r = verify_ro(dir);
    let (kind, seq, _, _) = common::failure_of(&r);
    (kind, seq)
}

/// Signs `json` as the next policy line after `prev` (the previous line's MAC), as only a
/// holder of the key can.
fn signed_policy_line(log_id: &[u8; 16], prev: &[u8; 32], json: &str) -> (String, [u8; 32]) {
    let mac = Chain::new(&key()).sign(b"auditlog/policy/v1", &[log_id, prev, json.as_bytes()]);
    (format!("{} {json}\n", auditlog::hex(&mac)), mac)
}

#[test]
fn retention_removes_exactly_the_expired_sealed_prefix_and_the_rest_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let b = base(&dir);
    let before = spans(&dir);
    assert!(
        before.len() >= 6,
        "the test log must span many segments: {before:?}"
    );
    assert!(
        !before.last().unwrap().sealed,
        "the newest segment is active"
    );
    let expect = expected_removed(&before, &b.ts, cutoff_ns());
    assert!(
        expect.len() >= 3 && expect.len() + 2 <= before.len(),
        "the cutoff must fall inside the log: {} of {} segments expire",
        expect.len(),
        before.len()
    );
    let to = expect.last().unwrap().last;
    let kept_first = &before[expect.len()];
    let kept_bytes: Vec<(String, Vec<u8>)> = before[expect.len()..before.len() - 1]
        .iter()
        .map(|s| (s.name.clone(), fs::read(&s.path).unwrap()))
        .collect();

    let log = reopen(&dir, RETENTION_DAYS);
    // An external checkpoint taken before retention, of the newest record.
    let external = log.checkpoint().unwrap();
    assert_eq!(external.seq, b.receipts.len() as u64 - 1);

    // A dry run reports what would go and changes nothing on disk.
    let snap = common::snapshot(&dir);
    let plan = log.plan_retention(now()).unwrap();
    assert!(plan.dry_run);
    assert_eq!(
        common::snapshot(&dir),
        snap,
        "plan_retention must not touch the directory"
    );
    assert!(log.last_retention_run().is_none());
    assert!(log.stats().unwrap().last_retention.is_none());
    assert!(
        !dir.join(POLICY_FILE).exists(),
        "a dry run writes no policy record"
    );

    let report = log.apply_retention(now()).unwrap();
    assert!(!report.dry_run);
    assert_eq!(report.retention_days, RETENTION_DAYS);
    assert_eq!(
        report.cutoff.as_deref(),
        Some(auditlog::format_ts(cutoff_ns()).as_str())
    );
    assert!(report.held_back.is_empty());
    assert!(report.compacted.is_none(), "apply_retention never compacts");
    let removed = report
        .removed
        .clone()
        .expect("expired segments are removed");
    assert_eq!(plan.removed, report.removed, "the dry run named what went");
    assert_eq!(removed.from_seq, 0);
    assert_eq!(removed.to_seq, to);
    assert_eq!(removed.count, to + 1);
    assert!(!removed.compacted);
    assert_eq!(
        removed.last_hash,
        auditlog::hex(&b.receipts[to as usize].hash),
        "the retention record signs the chain value of its last removed record"
    );
    let names: Vec<&str> = removed.segments.iter().map(|s| s.file.as_str()).collect();
    let want: Vec<&str> = expect.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, want, "exactly the expired prefix goes");
    for (rs, s) in removed.segments.iter().zip(&expect) {
        assert_eq!((rs.first_seq, rs.last_seq), (s.first, s.last));
        assert_eq!(rs.max_ts, max_ts(&b.ts, s.first, s.last));
        assert!(rs.max_ts < cutoff_ns());
    }
    // The first kept segment holds events newer than the cutoff; if it also holds older
    // ones it is reported as straddling.
    assert!(max_ts(&b.ts, kept_first.first, kept_first.last) >= cutoff_ns());
    let straddles = b.ts[kept_first.first as usize] < cutoff_ns();
    assert_eq!(
        report.straddling.as_deref(),
        straddles.then_some(kept_first.name.as_str())
    );

    // On disk: the removed files (and their index side files) are gone, the rest untouched.
    for s in &expect {
        assert!(!s.path.exists(), "{} must be deleted", s.name);
        assert!(!s.path.with_extension("idx").exists());
    }
    for (name, bytes) in &kept_bytes {
        assert_eq!(
            &fs::read(dir.join(name)).unwrap(),
            bytes,
            "{name} must be left as it was"
        );
    }
    assert!(
        before.last().unwrap().path.exists(),
        "the active segment stays"
    );

    // What went is recorded: the policy record, stats, and an audit event.
    let run = log.last_retention_run().expect("the run is recorded");
    assert_eq!(run.removed.as_ref(), Some(&removed));
    assert_eq!(run.retention_days, RETENTION_DAYS);
    assert_eq!(run.cutoff_ns, cutoff_ns());
    assert_eq!(run.time_ns, ns(now()));
    let st = log.stats().unwrap();
    assert_eq!(st.last_retention.as_ref(), Some(&run));
    assert_eq!(st.first_seq, Some(to + 1));
    assert!(st.holds.is_empty());
    assert!(
        st.segment_files.iter().all(|f| !want.contains(&f.as_str())),
        "stats lists no removed segment: {:?}",
        st.segment_files
    );
    let stats_json = serde_json::to_value(&st).unwrap();
    assert_eq!(
        stats_json["last_retention"]["removed"]["to_seq"],
        serde_json::json!(to)
    );
    let last = log.iter().last().unwrap().unwrap();
    assert_eq!(
        (last.event.event_type.as_str(), last.event.action.as_str()),
        ("audit_log", "retention_applied")
    );
    assert_eq!(
        last.event.details.to_value()["removed"]["to_seq"],
        serde_json::json!(to)
    );
    let policy_text = fs::read_to_string(dir.join(POLICY_FILE)).unwrap();
    assert_eq!(policy_text.lines().count(), 1);

    // Every remaining event is there, unchanged, in order.
    let recs: Vec<auditlog::Record> = log.iter().map(|r| r.unwrap()).collect();
    let n = b.events.len() as u64;
    assert_eq!(recs.first().unwrap().seq, to + 1);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.seq, to + 1 + i as u64, "seqs stay contiguous");
        if r.seq < n {
            let rc = &b.receipts[r.seq as usize];
            assert_eq!(r.hash, rc.hash, "chain value of seq {}", r.seq);
            assert_eq!(r.event.event_id.as_ref(), Some(&rc.event_id));
            assert_eq!(r.event.timestamp, b.events[r.seq as usize].timestamp);
            assert_eq!(r.event.details, b.events[r.seq as usize].details);
            assert!(r.redacted.is_none());
        }
    }
    assert_eq!(recs.len() as u64, n - (to + 1) + 1, "plus one audit event");
    assert_eq!(log.get(to).unwrap(), None, "a removed record is gone");
    assert_eq!(
        log.get(to + 1).unwrap().unwrap().hash,
        b.receipts[to as usize + 1].hash
    );
    // Queries agree: everything remaining, nothing from the removed range.
    let all = log.query(&Query::new()).unwrap();
    assert_eq!(all.total_count, recs.len() as u64);
    let q_old = Query::from_params([
        ("start", "2024-01-01"),
        ("end", auditlog::format_ts(b.ts[to as usize]).as_str()),
    ])
    .unwrap();
    let old_expected = recs
        .iter()
        .filter(|r| r.timestamp_ns <= b.ts[to as usize])
        .count();
    assert_eq!(log.query(&q_old).unwrap().total_count, old_expected as u64);
    let q_user = Query::from_params([("user_id", "user-1")]).unwrap();
    let user_expected = recs
        .iter()
        .filter(|r| r.event.actor.user_id.as_deref() == Some("user-1"))
        .count();
    assert!(user_expected > 0);
    assert_eq!(
        log.query(&q_user).unwrap().total_count,
        user_expected as u64
    );

    // It verifies, with the in-directory checkpoints and the external one.
    let r = log.verify_with(std::slice::from_ref(&external)).unwrap();
    assert_ok(&r, "after retention (writer)");
    assert_eq!(r.first_seq, Some(to + 1));
    assert!(r.checkpoints_checked >= 1);
    drop(log);
    let r = verify_ro_with(&dir, std::slice::from_ref(&external));
    assert_ok(&r, "after retention (read-only)");
    assert_eq!(r.records, recs.len() as u64);

    // A checkpoint of the last removed record (signed by the key holder) agrees with the
    // retention record; one with another chain value does not.
    let chain = Chain::new(&key());
    let at_end = Checkpoint::sign(&chain, &b.log_id, to, &b.receipts[to as usize].hash, 1);
    let r = verify_ro_with(&dir, &[at_end]);
    assert_ok(&r, "checkpoint at the end of the removed range");
    let wrong = Checkpoint::sign(&chain, &b.log_id, to, &b.receipts[0].hash, 1);
    let r = verify_ro_with(&dir, &[wrong]);
    assert_eq!(
        common::failure_of(&r).0,
        FailureKind::CheckpointMismatch,
        "{r:?}"
    );

    // Reopened, it still verifies, and the same run again removes nothing more.
    let log = reopen(&dir, RETENTION_DAYS);
    assert_eq!(log.iter().next().unwrap().unwrap().seq, to + 1);
    let again = log.apply_retention(now()).unwrap();
    assert!(again.removed.is_none(), "{again:?}");
    assert_eq!(spans(&dir).first().unwrap().first, to + 1);
    assert_ok(&log.verify().unwrap(), "after a second run");
}

#[test]
fn old_timestamps_are_accepted_after_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let _b = base(&dir);
    let log = reopen(&dir, RETENTION_DAYS);
    log.apply_retention(now()).unwrap().removed.unwrap();
    for t in [
        at(2, 0),
        Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(1971, 6, 1, 12, 0, 0).unwrap(),
    ] {
        let mut e = Event::new("authentication", "user_login");
        e.timestamp = Some(t);
        let rc = log.append(&e).expect("an old timestamp is never rejected");
        let back = log.get(rc.seq).unwrap().unwrap();
        assert_eq!(back.event.timestamp, Some(t));
    }
    // Another run keeps them: they are in the active segment.
    log.apply_retention(now()).unwrap();
    assert_eq!(
        log.iter()
            .filter(|r| r.as_ref().unwrap().event.timestamp
                == Some(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()))
            .count(),
        1
    );
    assert_ok(&log.verify().unwrap(), "with old timestamps appended");
    drop(log);
    assert_ok(&verify_ro(&dir), "with old timestamps appended, reopened");
}

#[test]
fn retention_days_zero_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let b = base(&dir);
    let segs_before = files_with_ext(&dir, ".seg");
    let log = reopen(&dir, 0);
    let far = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    for report in [
        log.plan_retention(far).unwrap(),
        log.apply_retention(far).unwrap(),
        log.compact(far).unwrap(),
    ] {
        assert_eq!(report.retention_days, 0);
        assert!(report.cutoff.is_none(), "{report:?}");
        assert!(
            report.removed.is_none() && report.compacted.is_none(),
            "{report:?}"
        );
    }
    assert_eq!(files_with_ext(&dir, ".seg"), segs_before);
    assert_eq!(log.iter().count(), b.events.len());
    assert!(log.last_retention_run().is_none());
    assert!(log.stats().unwrap().last_retention.is_none());
    assert_ok(&log.verify().unwrap(), "retention_days 0");
}

/// The log of this file after a retention run, closed; returns it with the removed range end.
fn after_retention(root: &Path) -> (std::path::PathBuf, Base, u64) {
    let dir = root.join("after");
    let b = base(&dir);
    let log = reopen(&dir, RETENTION_DAYS);
    let to = log.apply_retention(now()).unwrap().removed.unwrap().to_seq;
    drop(log);
    assert_ok(&verify_ro(&dir), "untouched copy");
    (dir, b, to)
}

fn copy_of(src: &Path, root: &Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    common::copy_dir(src, &d);
    d
}

#[test]
fn removals_beyond_the_policy_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, b, to) = after_retention(tmp.path());
    let remaining = spans(&dir);
    assert!(remaining.len() >= 4, "{remaining:?}");
    assert_eq!(remaining[0].first, to + 1);

    // One more segment than the policy removed (the next one).
    let d = copy_of(&dir, tmp.path(), "one_more");
    fs::remove_file(d.join(&remaining[0].name)).unwrap();
    assert_eq!(
        failure_kind_seq(&d),
        (FailureKind::MissingSegment, Some(to + 1))
    );

    // A segment in the middle.
    let d = copy_of(&dir, tmp.path(), "middle");
    let mid = &remaining[remaining.len() / 2];
    assert!(mid.first > remaining[0].first && mid.sealed);
    fs::remove_file(d.join(&mid.name)).unwrap();
    assert_eq!(
        failure_kind_seq(&d),
        (FailureKind::MissingSegment, Some(mid.first))
    );

    // The policy record edited (a number changed).
    let d = copy_of(&dir, tmp.path(), "policy_edited");
    let text = fs::read_to_string(d.join(POLICY_FILE)).unwrap();
    let needle = format!("\"retention_days\":{RETENTION_DAYS}");
    assert!(text.contains(&needle), "{text}");
    fs::write(
        d.join(POLICY_FILE),
        text.replacen(&needle, "\"retention_days\":21", 1),
    )
    .unwrap();
    assert_eq!(failure_kind_seq(&d).0, FailureKind::PolicyTampered);
    assert!(
        Log::open(&d, write_opts()).is_err(),
        "a writer refuses a tampered policy log"
    );

    // The removed range's end edited in the record: another seq range.
    let d = copy_of(&dir, tmp.path(), "policy_range_edited");
    let needle = format!("\"to_seq\":{to}");
    assert!(text.contains(&needle));
    fs::write(
        d.join(POLICY_FILE),
        text.replacen(&needle, &format!("\"to_seq\":{}", to + 1), 1),
    )
    .unwrap();
    assert_eq!(failure_kind_seq(&d).0, FailureKind::PolicyTampered);

    // The policy record removed: the whole file, or its only line.
    let d = copy_of(&dir, tmp.path(), "policy_deleted");
    fs::remove_file(d.join(POLICY_FILE)).unwrap();
    assert_eq!(failure_kind_seq(&d).0, FailureKind::MissingSegment);
    let d = copy_of(&dir, tmp.path(), "policy_emptied");
    fs::write(d.join(POLICY_FILE), "").unwrap();
    assert_eq!(failure_kind_seq(&d).0, FailureKind::MissingSegment);

    // A key holder forging a record that removes one more segment than the cutoff allows
    // (the next segment holds newer events) and deleting that segment.
    let d = copy_of(&dir, tmp.path(), "forged_beyond_cutoff");
    let mut entry: serde_json::Value =
        serde_json::from_str(text.trim_end().split_once(' ').unwrap().1).unwrap();
    let next = &remaining[0];
    let next_max = max_ts(&b.ts, next.first, next.last);
    assert!(next_max >= cutoff_ns());
    {
        let r = &mut entry["removed"];
        r["to_seq"] = serde_json::json!(next.last);
        r["count"] = serde_json::json!(next.last + 1);
        r["last_hash"] = serde_json::json!(auditlog::hex(&b.receipts[next.last as usize].hash));
        r["segments"].as_array_mut().unwrap().push(serde_json::json!({
            "file": next.name, "first_seq": next.first, "last_seq": next.last, "max_ts": next_max
        }));
    }
    let (line, _) = signed_policy_line(&b.log_id, &[0u8; 32], &entry.to_string());
    fs::write(d.join(POLICY_FILE), line).unwrap();
    fs::remove_file(d.join(&next.name)).unwrap();
    let r = verify_ro(&d);
    assert_eq!(
        common::failure_of(&r).0,
        FailureKind::RemovedBeyondPolicy,
        "{r:?}"
    );

    // A forged record whose removed range does not start where the log started.
    let d = copy_of(&dir, tmp.path(), "forged_not_prefix");
    let mut entry: serde_json::Value =
        serde_json::from_str(text.trim_end().split_once(' ').unwrap().1).unwrap();
    entry["removed"]["from_seq"] = serde_json::json!(5);
    entry["removed"]["count"] = serde_json::json!(to + 1 - 5);
    let (line, _) = signed_policy_line(&b.log_id, &[0u8; 32], &entry.to_string());
    fs::write(d.join(POLICY_FILE), line).unwrap();
    let r = verify_ro(&d);
    assert_eq!(
        common::failure_of(&r).0,
        FailureKind::RemovedBeyondPolicy,
        "{r:?}"
    );

    // Control: re-signing the unchanged record gives the same file, which verifies.
    let d = copy_of(&dir, tmp.path(), "resigned");
    let json = text.trim_end().split_once(' ').unwrap().1;
    let (line, _) = signed_policy_line(&b.log_id, &[0u8; 32], json);
    assert_eq!(line, text, "the policy line format is understood");
    assert_ok(&verify_ro(&d), "re-signed unchanged policy record");
}

#[test]
fn dry_run_reports_exactly_what_apply_retention_does() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let b = base(&dir);
    let sp = spans(&dir);
    let expect = expected_removed(&sp, &b.ts, cutoff_ns());
    assert!(
        b.ts[sp[expect.len()].first as usize] < cutoff_ns(),
        "the first kept segment straddles the cutoff"
    );
    let log = reopen(&dir, RETENTION_DAYS);
    let plan = log.plan_retention(now()).unwrap();
    let report = log.apply_retention(now()).unwrap();
    assert!(
        report.compacted.is_none(),
        "apply_retention does not compact"
    );
    // `plan_retention` is documented as "what apply_retention would do at now".
    assert_eq!(
        (&plan.removed, &plan.straddling, &plan.held_back),
        (&report.removed, &report.straddling, &report.held_back)
    );
    assert_eq!(
        plan.compacted, report.compacted,
        "the dry run (and `auditlog retention --dry-run`) announces a compaction that \
         apply_retention (`auditlog retention` without --compact) does not do"
    );
}
