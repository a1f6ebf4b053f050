//! Invariant: a per-event-type override (`retention_override(event_type, days)`) redacts the
//! content (details, scope `Content`) of exactly the sealed events of that type older than
//! its own cutoff — other types, newer events, metadata, actors and chain values untouched,
//! legal holds respected, the log still verifying — and `retention_interval` makes the
//! background worker apply retention without being asked.

mod common;
mod retention_support;

use std::time::{Duration, Instant};

use auditlog::{
    Event, HoldScope, Log, PolicyEntry, Query, RedactionScope, RetentionRun, POLICY_FILE,
};
use retention_support::*;

const OVERRIDE_DAYS: u32 = 3;

/// 24 days of events; at `now` = day 25 00:00 the content cutoff is day 22 00:00, while
/// `retention_days(30)` removes nothing.
fn setup(dir: &std::path::Path) -> (Vec<Event>, Vec<auditlog::Receipt>) {
    let evs = spread(1..=24, 48);
    let receipts = write(dir, &evs);
    (evs, receipts)
}

fn opts() -> auditlog::Options {
    write_opts()
        .retention_days(30)
        .retention_override("authentication", OVERRIDE_DAYS)
}

#[test]
fn override_redacts_old_content_of_one_event_type_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, receipts) = setup(&dir);
    let sp = spans(&dir);
    let active_first = sp.last().unwrap().first;
    let now = at(25, 0);
    let cutoff = ns(now) - i64::from(OVERRIDE_DAYS) * DAY_NS;
    let expected: Vec<u64> = evs
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            e.event_type == "authentication"
                && ns(e.timestamp.unwrap()) < cutoff
                && (*i as u64) < active_first
        })
        .map(|(i, _)| i as u64)
        .collect();
    assert!(expected.len() > 100, "{}", expected.len());
    assert!(
        evs.iter()
            .any(|e| e.event_type == "authentication" && ns(e.timestamp.unwrap()) >= cutoff),
        "some authentication events are newer than the override"
    );

    let log = Log::open(&dir, opts()).unwrap();
    let external = log.checkpoint().unwrap();
    let snap = common::snapshot(&dir);
    let plan = log.plan_retention(now).unwrap();
    assert_eq!(plan.content_redacted, expected.len() as u64);
    assert_eq!(common::snapshot(&dir), snap, "the dry run changes nothing");

    let report = log.apply_retention(now).unwrap();
    assert!(
        report.removed.is_none(),
        "metadata is kept 30 days: {report:?}"
    );
    assert_eq!(report.content_redacted, expected.len() as u64);

    for r in log.iter() {
        let r = r.unwrap();
        let Some(orig) = evs.get(r.seq as usize) else {
            continue;
        };
        assert_eq!(
            r.hash, receipts[r.seq as usize].hash,
            "chain value of {}",
            r.seq
        );
        // Metadata is always kept.
        assert_eq!(r.event.event_type, orig.event_type);
        assert_eq!(r.event.action, orig.action);
        assert_eq!(r.event.timestamp, orig.timestamp);
        assert_eq!(
            r.event.actor, orig.actor,
            "the actor is kept (content scope)"
        );
        assert_eq!(
            r.event.event_id.as_ref(),
            Some(&receipts[r.seq as usize].event_id)
        );
        if expected.binary_search(&r.seq).is_ok() {
            let info = r
                .redacted
                .as_ref()
                .unwrap_or_else(|| panic!("seq {} redacted", r.seq));
            assert_eq!(info.scope, RedactionScope::Content);
            assert!(info.reason.contains("authentication"), "{}", info.reason);
            assert!(
                r.event.details.is_null(),
                "content of seq {} dropped",
                r.seq
            );
        } else {
            assert!(r.redacted.is_none(), "seq {} must keep its content", r.seq);
            assert_eq!(r.event.details, orig.details);
        }
    }
    let last = log.iter().last().unwrap().unwrap();
    assert_eq!(last.event.action, "retention_applied");
    assert_eq!(
        last.event.details.to_value()["content_redacted"],
        serde_json::json!(expected.len())
    );
    assert_ok(
        &log.verify_with(std::slice::from_ref(&external)).unwrap(),
        "after content redaction",
    );

    // Idempotent: nothing left to redact at the same time.
    let again = log.apply_retention(now).unwrap();
    assert_eq!(again.content_redacted, 0);
    drop(log);
    assert_ok(&verify_ro(&dir), "after content redaction, read-only");
}

#[test]
fn override_skips_records_under_legal_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, _) = setup(&dir);
    let log = Log::open(&dir, opts()).unwrap();
    log.add_hold(
        HoldScope::Actor {
            user_id: "user-2".into(),
        },
        "investigation",
    )
    .unwrap();
    let report = log.apply_retention(at(25, 0)).unwrap();
    assert!(report.content_redacted > 0);
    let mut held_checked = 0;
    for r in log.iter() {
        let r = r.unwrap();
        if r.event.actor.user_id.as_deref() == Some("user-2") && (r.seq as usize) < evs.len() {
            assert!(r.redacted.is_none(), "held seq {} keeps its content", r.seq);
            assert_eq!(r.event.details, evs[r.seq as usize].details);
            held_checked += 1;
        }
    }
    assert!(held_checked > 100);
    assert_ok(&log.verify().unwrap(), "override under a hold");
}

#[test]
fn scheduler_applies_retention_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    setup(&dir);
    let before = spans(&dir);
    // The events are from January 2024, so at the real now every sealed segment is expired.
    let sealed: Vec<Span> = before.iter().filter(|s| s.sealed).cloned().collect();
    assert!(sealed.len() >= 4 && !before.last().unwrap().sealed);

    let log = Log::open(
        &dir,
        write_opts()
            .retention_days(10)
            .retention_interval(Some(Duration::from_millis(200))),
    )
    .unwrap();
    // The run's audit event is appended after the files are deleted: wait for it.
    let applied = Query::from_params([("action", "retention_applied")]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    while log.query(&applied).unwrap().total_count == 0 {
        assert!(
            Instant::now() < deadline,
            "the background worker never applied retention"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Later scheduled runs find nothing more to remove; the first one removed every
    // expired sealed segment.
    let last = log
        .stats()
        .unwrap()
        .last_retention
        .expect("stats shows the last run");
    assert_eq!(last.retention_days, 10);
    let policy = std::fs::read_to_string(dir.join(POLICY_FILE)).unwrap();
    let runs: Vec<RetentionRun> = policy
        .lines()
        .map(
            |l| match serde_json::from_str(l.split_once(' ').unwrap().1).unwrap() {
                PolicyEntry::Retention(r) => r,
                other => panic!("only retention runs were recorded: {other:?}"),
            },
        )
        .collect();
    assert!(runs.contains(&last));
    let removed = runs[0]
        .removed
        .clone()
        .expect("the first scheduled run removed the expired segments");
    assert!(runs[1..].iter().all(|r| r.removed.is_none()), "{runs:?}");
    let files: Vec<&str> = removed.segments.iter().map(|s| s.file.as_str()).collect();
    let want: Vec<&str> = sealed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(files, want);
    for s in &sealed {
        assert!(!s.path.exists(), "{} removed", s.name);
    }
    assert_eq!(log.iter().next().unwrap().unwrap().seq, removed.to_seq + 1);
    assert_ok(&log.verify().unwrap(), "after a scheduled run");
    drop(log);
    assert_ok(&verify_ro(&dir), "after a scheduled run, read-only");
}

#[test]
fn without_an_interval_retention_runs_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    setup(&dir);
    let segs = files_with_ext(&dir, ".seg");
    let log = Log::open(&dir, write_opts().retention_days(10)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(log.last_retention_run().is_none());
    assert_eq!(files_with_ext(&dir, ".seg"), segs);
}
