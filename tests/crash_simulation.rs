//! Simulated power loss at every step (feature `failpoints`).
//!
//! Each scenario runs against a real directory while `failpoints::trace` records every
//! durable change the engine makes (writes, `set_len`, syncs, creates, renames, removes,
//! directory syncs) and the test marks each acknowledgement. `failpoints::crash` then rebuilds,
//! for a crash after every recorded change, every state the disk could be left in: synced
//! bytes and synced directory entries survive; of the rest, none, all, an in-order prefix
//! with the next write torn at sampled bytes (every byte of writes up to `CUTS` long), or only
//! the latest change. Each state is written to a fresh directory and opened: it must open,
//! hold every event acknowledged before the crash with the same chain value, and verify.
//!
//! `AUDITLOG_CRASH_CUTS=N` raises the number of tear positions per write (default 12).
#![cfg(feature = "failpoints")]

mod common;
mod retention_support;

use std::collections::BTreeMap;
use std::path::Path;

use auditlog::failpoints::{self, crash::Trace, trace::Recorder};
use auditlog::{Durability, Event, Hash, Log, Options, Receipt};

fn cuts() -> usize {
    std::env::var("AUDITLOG_CRASH_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// Events of about `pad` bytes, so a 64 KiB segment holds a handful and rolls are frequent.
fn padded(n: usize, pad: usize, seed: u64) -> Vec<Event> {
    common::events(seed, n)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.details = serde_json::json!({"i": i, "pad": "x".repeat(pad)}).into();
            e
        })
        .collect()
}

/// What must hold in every crash state of a scenario.
struct Expect<'a> {
    /// Receipts in acknowledgement order; the trace's marks count how many were acknowledged.
    acked: &'a [Receipt],
    /// Events with seq below this may have been removed by retention (only as a prefix).
    may_be_removed_below: u64,
    /// From which mark on the removal is acknowledged, and which seqs it removed.
    removal_acked: Option<(u64, u64)>,
}

/// Rebuilds every crash state of `trace`, opens each and checks it; returns how many states.
fn check_all(trace: &Trace, opts: &dyn Fn() -> Options, expect: &Expect) -> usize {
    check_all_cut(trace, opts, expect, cuts())
}

/// As `check_all`, tearing each pending write at up to `cuts` positions.
fn check_all_cut(trace: &Trace, opts: &dyn Fn() -> Options, expect: &Expect, cuts: usize) -> usize {
    let scratch = scratch_dir();
    let mut states = 0usize;
    for k in 0..trace.points() {
        let mark = trace.mark_before(k).unwrap_or(0);
        for (i, st) in trace.crash_states(k, cuts).into_iter().enumerate() {
            states += 1;
            let dir = scratch.path().join(format!("s{k}-{i}"));
            std::fs::create_dir(&dir).unwrap();
            st.materialize(&dir).unwrap();
            let ctx = || format!("{}; files {:?}", st.label, st.listing());
            check_state(&dir, opts, expect, mark, &ctx);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    states
}

fn check_state(
    dir: &Path,
    opts: &dyn Fn() -> Options,
    expect: &Expect,
    mark: u64,
    ctx: &dyn Fn() -> String,
) {
    let acked_n = (mark as usize).min(expect.acked.len());
    let removed_upto = match expect.removal_acked {
        Some((at_mark, upto)) if mark >= at_mark => upto,
        _ => 0,
    };
    for round in 0..2 {
        let log = Log::open(dir, opts())
            .unwrap_or_else(|e| panic!("open failed (round {round}): {e}\n{}", ctx()));
        let mut have: BTreeMap<u64, Hash> = BTreeMap::new();
        let mut prev: Option<u64> = None;
        for r in log.iter() {
            let r = r.unwrap_or_else(|e| panic!("read failed: {e}\n{}", ctx()));
            if let Some(p) = prev {
                assert_eq!(r.seq, p + 1, "records skip a seq\n{}", ctx());
            }
            prev = Some(r.seq);
            have.insert(r.seq, r.hash);
        }
        let first = have.keys().next().copied();
        for rc in &expect.acked[..acked_n] {
            match have.get(&rc.seq) {
                Some(h) => {
                    assert_eq!(h, &rc.hash, "seq {} changed\n{}", rc.seq, ctx());
                    assert!(
                        rc.seq >= removed_upto,
                        "seq {} should be gone: retention that removed it was acknowledged\n{}",
                        rc.seq,
                        ctx()
                    );
                }
                None => assert!(
                    rc.seq < expect.may_be_removed_below && first.is_none_or(|f| rc.seq < f),
                    "acknowledged seq {} lost ({} acknowledged, log holds {:?}..{:?})\n{}",
                    rc.seq,
                    acked_n,
                    first,
                    prev,
                    ctx()
                ),
            }
        }
        let report = log
            .verify()
            .unwrap_or_else(|e| panic!("verify failed: {e}\n{}", ctx()));
        assert!(report.ok, "verify: {report:?}\n{}", ctx());
        drop(log);
    }
}

/// Crash states are opened from memory-backed storage when there is some: each open and close
/// syncs several times, and the states are many.
fn scratch_dir() -> tempfile::TempDir {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

fn record(f: impl FnOnce(&Path, &Recorder)) -> Trace {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::start(dir.path());
    f(dir.path(), &rec);
    rec.finish()
}

#[test]
fn power_loss_at_every_step() {
    let _scenario = failpoints::scenario();

    // 1. Durable appends (pwrite + fdatasync), batches, rolls, seals, a checkpoint, close.
    let sync_opts = || {
        Options::new(common::key())
            .durability(Durability::Sync)
            .segment_bytes(64 * 1024)
    };
    let mut acked = Vec::new();
    let trace = record(|dir, rec| {
        let log = Log::open(dir, sync_opts()).unwrap();
        let events = padded(40, 2500, 7);
        for (i, e) in events.iter().enumerate() {
            if i % 10 == 9 {
                acked.extend(log.append_batch(&events[i - 1..=i]).unwrap());
            } else if i % 10 != 8 {
                acked.push(log.append(e).unwrap());
            }
            rec.mark(acked.len() as u64);
            if i == 20 {
                log.checkpoint().unwrap();
            }
        }
        drop(log);
        rec.mark(acked.len() as u64);
    });
    let states = check_all(
        &trace,
        &sync_opts,
        &Expect {
            acked: &acked,
            may_be_removed_below: 0,
            removal_acked: None,
        },
    );
    eprintln!(
        "sync: {} events, {} recorded changes, {states} crash states",
        acked.len(),
        trace.ops.len()
    );

    // 2. Buffered appends through the map, acknowledged by flush(); rolls sync the map.
    let buf_opts = || {
        Options::new(common::key())
            .durability(Durability::Buffered)
            .segment_bytes(64 * 1024)
    };
    let mut acked = Vec::new();
    let trace = record(|dir, rec| {
        let log = Log::open(dir, buf_opts()).unwrap();
        let events = padded(36, 3000, 8);
        for chunk in events.chunks(6) {
            let mut pending = Vec::new();
            for e in chunk {
                pending.push(log.append(e).unwrap());
            }
            log.flush().unwrap();
            acked.extend(pending);
            rec.mark(acked.len() as u64);
        }
        drop(log);
    });
    let states = check_all(
        &trace,
        &buf_opts,
        &Expect {
            acked: &acked,
            may_be_removed_below: 0,
            removal_acked: None,
        },
    );
    eprintln!(
        "buffered: {} events, {} recorded changes, {states} crash states",
        acked.len(),
        trace.ops.len()
    );

    // 3. Retention: whole expired segments removed, the straddling one compacted.
    let ret_opts = || retention_support::write_opts().retention_days(3);
    let mut acked = Vec::new();
    let mut removed_upto = 0;
    let mut done_mark = 0;
    let trace = record(|dir, rec| {
        let log = Log::open(dir, retention_support::write_opts()).unwrap();
        let events = retention_support::spread(1..=8, 24);
        for chunk in events.chunks(48) {
            acked.extend(log.append_batch(chunk).unwrap());
            log.flush().unwrap();
            rec.mark(acked.len() as u64);
        }
        drop(log);
        let log = Log::open(dir, ret_opts()).unwrap();
        let now = retention_support::at(11, 0);
        let report = log.apply_retention(now).unwrap();
        let kept_from = log.iter().next().unwrap().unwrap().seq;
        log.compact(now).unwrap();
        removed_upto = log.iter().next().unwrap().unwrap().seq;
        assert!(removed_upto > 0, "retention removed nothing: {report:?}");
        assert!(kept_from <= removed_upto);
        done_mark = acked.len() as u64 + 1;
        rec.mark(done_mark);
        drop(log);
    });
    let states = check_all(
        &trace,
        &ret_opts,
        &Expect {
            acked: &acked,
            may_be_removed_below: removed_upto,
            removal_acked: Some((done_mark, removed_upto)),
        },
    );
    eprintln!(
        "retention: {} events, removed below seq {removed_upto}, {} recorded changes, \
         {states} crash states",
        acked.len(),
        trace.ops.len()
    );

    // 4. Group commit: four threads appending durably at once, so one sync covers several
    //    frames written by different threads (and a crash can keep a later one only).
    let mut acked = Vec::new();
    let trace = record(|dir, rec| {
        let log = Log::open(dir, sync_opts()).unwrap();
        let shared = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (log, shared) = (&log, &shared);
                s.spawn(move || {
                    for e in padded(10, 1500, 100 + t) {
                        let r = log.append(&e).unwrap();
                        let mut g = shared.lock().unwrap();
                        g.push(r);
                        rec.mark(g.len() as u64);
                    }
                });
            }
        });
        acked = shared.into_inner().unwrap();
        drop(log);
    });
    let states = check_all(
        &trace,
        &sync_opts,
        &Expect {
            acked: &acked,
            may_be_removed_below: 0,
            removal_acked: None,
        },
    );
    eprintln!(
        "group commit: {} events, {} recorded changes, {states} crash states",
        acked.len(),
        trace.ops.len()
    );

    // 5. Policy work on a durable log: a legal hold, a redaction (a rewrite of a sealed
    //    segment), the archive tier (LZ4 copies, originals removed), the hold released.
    let arc_opts = || retention_support::write_opts().archive_days(3);
    let mut acked = Vec::new();
    let trace = record(|dir, rec| {
        let log = Log::open(dir, arc_opts()).unwrap();
        for chunk in retention_support::spread(1..=6, 48).chunks(96) {
            acked.extend(log.append_batch(chunk).unwrap());
            log.flush().unwrap();
            rec.mark(acked.len() as u64);
        }
        let hold = log
            .add_hold(
                auditlog::HoldScope::Actor {
                    user_id: "user-1".into(),
                },
                "case 7",
            )
            .unwrap();
        // acked[4] is user-2's (acked[3], user-1's, is under the hold).
        assert!(matches!(
            log.redact(acked[3].seq, "erasure request"),
            Err(auditlog::Error::Held { .. })
        ));
        log.redact(acked[4].seq, "erasure request").unwrap();
        let report = log.archive(retention_support::at(12, 0)).unwrap();
        assert!(!report.archived.is_empty(), "{report:?}");
        log.remove_hold(&hold.id, "case closed").unwrap();
        rec.mark(acked.len() as u64);
        drop(log);
    });
    let states = check_all(
        &trace,
        &arc_opts,
        &Expect {
            acked: &acked,
            may_be_removed_below: 0,
            removal_acked: None,
        },
    );
    eprintln!(
        "hold, redaction, archive: {} events, {} recorded changes, {states} crash states",
        acked.len(),
        trace.ops.len()
    );
}

/// Small records, every one torn at every byte: a crash after any change, with the unsynced
/// write cut after each of its bytes.
#[test]
fn power_loss_tearing_every_byte_of_small_records() {
    let _scenario = failpoints::scenario();
    let opts = || {
        Options::new(common::key())
            .durability(Durability::Sync)
            .segment_bytes(64 * 1024)
    };
    let mut acked = Vec::new();
    let trace = record(|dir, rec| {
        let log = Log::open(dir, opts()).unwrap();
        let events = common::events(11, 8);
        for e in &events[..5] {
            acked.push(log.append(e).unwrap());
            rec.mark(acked.len() as u64);
        }
        acked.extend(log.append_batch(&events[5..]).unwrap());
        rec.mark(acked.len() as u64);
        log.checkpoint().unwrap();
        drop(log);
    });
    let states = check_all_cut(
        &trace,
        &opts,
        &Expect {
            acked: &acked,
            may_be_removed_below: 0,
            removal_acked: None,
        },
        usize::MAX,
    );
    eprintln!(
        "every byte: {} events, {} recorded changes, {states} crash states",
        acked.len(),
        trace.ops.len()
    );
}
