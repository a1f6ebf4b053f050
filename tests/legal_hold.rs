//! Invariant: a legal hold — by actor, by time range, or global — stops retention (and
//! compaction, and redaction) from removing anything it covers; holds are stored durably in
//! the signed `policy.log`, listed by `holds()`, `stats` and `auditlog hold list`, and survive
//! reopen; lifting one is recorded (policy line and an `audit_log` event), after which
//! retention proceeds; a malformed hold is refused naming the bad parameter.

mod common;
mod retention_support;

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::{Error, Event, HoldScope, Log, Query, Receipt, POLICY_FILE};
use chrono::{DateTime, TimeZone, Utc};
use retention_support::*;

const RETENTION_DAYS: u32 = 20;
/// The only actor whose events all fall on one day (day 12).
const HELD_USER: &str = "user-held";
const HELD_DAY: u32 = 12;

fn now() -> DateTime<Utc> {
    // The cutoff is 2024-01-22 00:00.
    at(42, 0)
}

fn cutoff() -> i64 {
    ns(now()) - i64::from(RETENTION_DAYS) * DAY_NS
}

struct Base {
    dir: PathBuf,
    receipts: Vec<Receipt>,
    ts: Vec<i64>,
    spans: Vec<Span>,
    held_seqs: Vec<u64>,
}

impl Base {
    fn copy(&self, root: &Path, name: &str) -> PathBuf {
        let d = root.join(name);
        common::copy_dir(&self.dir, &d);
        d
    }
    /// Segments retention removes without any hold.
    fn expired(&self) -> Vec<Span> {
        expected_removed(&self.spans, &self.ts, cutoff())
    }
    /// Index of the segment holding `seq`.
    fn seg_of(&self, seq: u64) -> usize {
        self.spans
            .iter()
            .position(|s| (s.first..=s.last).contains(&seq))
            .unwrap()
    }
}

fn base(root: &Path) -> Base {
    let dir = root.join("pristine");
    let mut events: Vec<Event> = spread(1..=40, 48);
    let mut held_seqs = Vec::new();
    for (i, e) in events.iter_mut().enumerate() {
        if e.details.to_value()["day"] == serde_json::json!(HELD_DAY) && i.is_multiple_of(7) {
            e.actor.user_id = Some(HELD_USER.into());
            held_seqs.push(i as u64);
        }
    }
    assert!(held_seqs.len() >= 3);
    let receipts = write(&dir, &events);
    let ts = events.iter().map(|e| ns(e.timestamp.unwrap())).collect();
    let b = Base {
        spans: spans(&dir),
        dir,
        receipts,
        ts,
        held_seqs,
    };
    let held_seg = b.seg_of(b.held_seqs[0]);
    assert!(
        held_seg >= 2 && held_seg + 2 <= b.expired().len(),
        "the held actor's segment must be inside the expired prefix: {held_seg} of {}",
        b.expired().len()
    );
    b
}

fn names(spans: &[Span]) -> Vec<String> {
    spans.iter().map(|s| s.name.clone()).collect()
}

fn removed_files(r: &auditlog::RetentionReport) -> Vec<String> {
    r.removed
        .as_ref()
        .map(|r| r.segments.iter().map(|s| s.file.clone()).collect())
        .unwrap_or_default()
}

/// Applies retention under `scope`, checks that exactly the segments before the first one
/// the hold covers go (that one is `held_back`), lifts the hold, and checks that retention
/// then removes the rest of the expired prefix.
fn hold_stops_retention(b: &Base, root: &Path, name: &str, scope: HoldScope, first_held: usize) {
    let d = b.copy(root, name);
    let log = reopen(&d, RETENTION_DAYS);
    let hold = log.add_hold(scope.clone(), "litigation 2024-17").unwrap();
    assert!(hold.id.starts_with("hold-"), "{hold:?}");
    assert_eq!(hold.scope, scope);
    assert_eq!(log.holds(), vec![hold.clone()]);
    assert_eq!(log.stats().unwrap().holds, vec![hold.clone()]);

    let plan = log.plan_retention(now()).unwrap();
    let report = log.apply_retention(now()).unwrap();
    assert_eq!(plan.held_back, report.held_back);
    let expired = b.expired();
    assert_eq!(
        report.held_back,
        vec![expired[first_held].name.clone()],
        "{name}: the first covered segment is held back"
    );
    assert_eq!(
        removed_files(&report),
        names(&expired[..first_held]),
        "{name}: only the segments before it go"
    );
    for s in &expired[first_held..] {
        assert!(d.join(&s.name).exists(), "{name}: {} is kept", s.name);
    }
    let run = log.last_retention_run().unwrap();
    assert_eq!(run.held_back, report.held_back);
    assert_ok(&log.verify().unwrap(), name);

    // A second run under the hold removes nothing more.
    let again = log.apply_retention(now()).unwrap();
    assert!(again.removed.is_none(), "{name}: {again:?}");
    assert_eq!(again.held_back, report.held_back);

    // Lifting it is recorded, then retention proceeds.
    assert!(matches!(
        log.remove_hold(&hold.id, " "),
        Err(Error::InvalidEvent(_))
    ));
    log.remove_hold(&hold.id, "case closed").unwrap();
    assert!(log.holds().is_empty());
    assert!(log.stats().unwrap().holds.is_empty());
    let policy = fs::read_to_string(d.join(POLICY_FILE)).unwrap();
    let lifted: Vec<&str> = policy
        .lines()
        .filter(|l| l.contains("\"kind\":\"hold_removed\""))
        .collect();
    assert_eq!(lifted.len(), 1, "{policy}");
    assert!(lifted[0].contains(&hold.id) && lifted[0].contains("case closed"));
    let ev = Query::from_params([
        ("event_type", "audit_log"),
        ("action", "legal_hold_removed"),
    ])
    .unwrap();
    let page = log.query(&ev).unwrap();
    assert_eq!(page.total_count, 1);
    let e = &page.audit_logs[0].event;
    assert_eq!(e.details.to_value()["id"], serde_json::json!(hold.id));
    assert_eq!(
        e.details.to_value()["reason"],
        serde_json::json!("case closed")
    );
    let added = Query::from_params([("action", "legal_hold_added")]).unwrap();
    assert_eq!(log.query(&added).unwrap().total_count, 1);

    let after = log.apply_retention(now()).unwrap();
    assert!(after.held_back.is_empty());
    assert_eq!(removed_files(&after), names(&expired[first_held..]));
    assert_eq!(
        after.removed.as_ref().unwrap().from_seq,
        expired[first_held].first
    );
    for s in &expired {
        assert!(!d.join(&s.name).exists());
    }
    assert_ok(&log.verify().unwrap(), name);
    drop(log);
    assert_ok(&verify_ro(&d), name);
}

#[test]
fn actor_hold_keeps_the_segments_holding_that_actor() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let first = b.seg_of(b.held_seqs[0]);
    hold_stops_retention(
        &b,
        tmp.path(),
        "actor",
        HoldScope::Actor {
            user_id: HELD_USER.into(),
        },
        first,
    );
}

#[test]
fn time_range_hold_keeps_the_segments_it_overlaps() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let (start, end) = (ns(at(16, 3600)), ns(at(17, 0)));
    let first = b
        .spans
        .iter()
        .position(|s| {
            let min = b.ts[s.first as usize..=s.last as usize]
                .iter()
                .min()
                .unwrap();
            *min <= end && max_ts(&b.ts, s.first, s.last) >= start
        })
        .unwrap();
    assert!(first >= 2);
    hold_stops_retention(
        &b,
        tmp.path(),
        "time_range",
        HoldScope::TimeRange {
            start_ns: start,
            end_ns: end,
        },
        first,
    );
}

#[test]
fn global_hold_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    hold_stops_retention(&b, tmp.path(), "global", HoldScope::Global, 0);

    // Nor does compaction remove anything under a global hold.
    let d = b.copy(tmp.path(), "global_compact");
    let log = reopen(&d, RETENTION_DAYS);
    log.add_hold(HoldScope::Global, "freeze").unwrap();
    let r = log.compact(now()).unwrap();
    assert!(r.removed.is_none() && r.compacted.is_none(), "{r:?}");
    assert_eq!(log.iter().next().unwrap().unwrap().seq, 0);
    assert_eq!(files_with_ext(&d, ".seg"), files_with_ext(&b.dir, ".seg"));
}

#[test]
fn hold_inside_the_straddling_segment_stops_compaction_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let expired = b.expired();
    let s = &b.spans[expired.len()];
    assert!(
        b.ts[s.first as usize] < cutoff(),
        "the next segment straddles the cutoff"
    );
    let cut = (s.first..=s.last)
        .find(|&q| b.ts[q as usize] >= cutoff())
        .unwrap();
    assert!(cut - s.first >= 4);
    let held = s.first + 2;
    let d = b.copy(tmp.path(), "log");
    let log = reopen(&d, RETENTION_DAYS);
    log.add_hold(
        HoldScope::TimeRange {
            start_ns: b.ts[held as usize],
            end_ns: b.ts[held as usize],
        },
        "one record",
    )
    .unwrap();
    let r = log.compact(now()).unwrap();
    assert_eq!(removed_files(&r), names(&expired));
    let c = r
        .compacted
        .expect("the prefix before the held record is compacted");
    assert_eq!((c.from_seq, c.to_seq), (s.first, held - 1));
    assert_eq!(log.iter().next().unwrap().unwrap().seq, held);
    assert_eq!(
        log.get(held).unwrap().unwrap().hash,
        b.receipts[held as usize].hash
    );
    assert_ok(&log.verify().unwrap(), "compaction stopped by a hold");
}

#[test]
fn redacting_a_held_record_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let d = b.copy(tmp.path(), "log");
    let log = reopen(&d, RETENTION_DAYS);
    let hold = log
        .add_hold(
            HoldScope::Actor {
                user_id: HELD_USER.into(),
            },
            "subpoena",
        )
        .unwrap();
    let seq = b.held_seqs[1];
    match log.redact(seq, "erasure request") {
        Err(Error::Held { seq: s, hold: h }) => {
            assert_eq!((s, h.as_str()), (seq, hold.id.as_str()));
        }
        other => panic!("expected Error::Held, got {other:?}"),
    }
    assert!(matches!(
        log.redact_actor(HELD_USER, "erasure request"),
        Err(Error::Held { .. })
    ));
    // Nothing was redacted; a record the hold does not cover can be.
    for &q in &b.held_seqs {
        let r = log.get(q).unwrap().unwrap();
        assert!(r.redacted.is_none());
        assert_eq!(r.event.actor.user_id.as_deref(), Some(HELD_USER));
    }
    let other = b.held_seqs[0] + 1;
    assert_eq!(
        log.redact(other, "erasure request").unwrap().redacted,
        vec![other]
    );
    log.remove_hold(&hold.id, "released").unwrap();
    assert_eq!(
        log.redact(seq, "erasure request").unwrap().redacted,
        vec![seq]
    );
    assert_ok(&log.verify().unwrap(), "after redactions");
}

#[test]
fn holds_survive_reopen_and_are_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let b = base(tmp.path());
    let d = b.copy(tmp.path(), "log");
    let log = reopen(&d, RETENTION_DAYS);
    let h1 = log
        .add_hold(
            HoldScope::Actor {
                user_id: HELD_USER.into(),
            },
            "a",
        )
        .unwrap();
    let h2 = log
        .add_hold(
            HoldScope::TimeRange {
                start_ns: ns(at(3, 0)),
                end_ns: ns(at(4, 0)),
            },
            "b",
        )
        .unwrap();
    let h3 = log.add_hold(HoldScope::Global, "c").unwrap();
    log.remove_hold(&h2.id, "lifted").unwrap();
    let want = vec![h1.clone(), h3.clone()];
    assert_eq!(log.holds(), want);
    drop(log);

    let ro = Log::open_read_only(&d, key()).unwrap();
    assert_eq!(ro.holds(), want);
    assert_eq!(ro.stats().unwrap().holds, want);
    drop(ro);
    let log = reopen(&d, RETENTION_DAYS);
    assert_eq!(log.holds(), want, "holds survive reopen");
    // And still apply: the global one keeps everything.
    let r = log.apply_retention(now()).unwrap();
    assert!(r.removed.is_none());
    assert_eq!(r.held_back, vec![b.spans[0].name.clone()]);
    assert_ok(&log.verify().unwrap(), "with holds");
    drop(log);

    #[cfg(feature = "cli")]
    {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditlog"))
            .env_remove("AUDITLOG_DATA")
            .env("AUDIT_HMAC_KEY", KEY)
            .arg("--data")
            .arg(&d)
            .args(["hold", "list"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![h1.id.as_str(), h3.id.as_str()]);
        assert_eq!(listed[0]["scope"]["type"], "actor");
        assert_eq!(listed[0]["scope"]["user_id"], HELD_USER);
        assert_eq!(listed[1]["scope"]["type"], "global");
        assert_eq!(listed[1]["reason"], "c");
    }
}

#[test]
fn malformed_holds_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    write(&dir, &spread(1..=2, 10));
    let log = reopen(&dir, RETENTION_DAYS);
    match log.add_hold(
        HoldScope::TimeRange {
            start_ns: ns(at(10, 0)),
            end_ns: ns(at(5, 0)),
        },
        "backwards",
    ) {
        Err(Error::InvalidQuery { param, message }) => {
            assert_eq!(param, "end");
            assert!(message.contains("before its start"), "{message}");
        }
        other => panic!("expected InvalidQuery naming `end`, got {other:?}"),
    }
    assert!(matches!(
        log.add_hold(HoldScope::Global, "  "),
        Err(Error::InvalidEvent(_))
    ));
    match log.remove_hold("hold-nope", "x") {
        Err(Error::InvalidQuery { param, .. }) => assert_eq!(param, "hold"),
        other => panic!("expected InvalidQuery naming `hold`, got {other:?}"),
    }
    assert!(log.holds().is_empty());
    assert!(
        !dir.join(POLICY_FILE).exists(),
        "nothing is recorded for a refused hold"
    );
    // A single-instant range is fine.
    let t = ns(Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap());
    log.add_hold(
        HoldScope::TimeRange {
            start_ns: t,
            end_ns: t,
        },
        "instant",
    )
    .unwrap();
    assert_eq!(log.holds().len(), 1);
    // Read-only logs refuse to change holds.
    drop(log);
    let ro = Log::open_read_only(&dir, key()).unwrap();
    assert!(matches!(
        ro.add_hold(HoldScope::Global, "x"),
        Err(Error::ReadOnly)
    ));
}
