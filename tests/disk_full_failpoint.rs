//! A full disk, injected: with every step that needs new space failing with ENOSPC, appends
//! fail with a clean `Error::Io` (or `BatchInterrupted` carrying one) that says "No space left
//! on device" and names the file, the log is never poisoned, acknowledged events are kept,
//! and appends succeed again once the failpoints are removed. The same checks as
//! `disk_full.rs` on a real small file system, for machines that cannot mount one.
//!
//! Three phases, for `Sync` and `Buffered`, single appends and batches:
//! - A: only the side files fail (`checkpoint.write`, `index.write`, `policy.write`):
//!   segments still roll and seal, appends succeed, periodic checkpoints and index side files
//!   are skipped; an explicit `checkpoint` and `add_hold` fail cleanly.
//! - B: segment creation fails too (`segment.create`, `segment.preallocate`): the append
//!   that needs a new segment fails, and every one after it (but those small enough for what
//!   is left of the active segment); with only the zero fill failing, as on a real disk, the
//!   error says "preallocating segment".
//! - C: every point removed: appends, checkpoints and holds succeed in the same process.
//!
//! Then the log is closed and reopened: exactly the acknowledged records are there, with
//! their hashes, and `verify` passes (also through a read-only open).
#![cfg(feature = "failpoints")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use auditlog::failpoints::{self, cfg, hits, remove, scenario};
use auditlog::sample::Generator;
use auditlog::{Durability, Error, Event, Hash, HmacKey, HoldScope, Log, Options, Receipt};

const SIDE_FILES: &[&str] = &["checkpoint.write", "index.write", "policy.write"];
const SEGMENT_SPACE: &[&str] = &["segment.create", "segment.preallocate"];

fn key() -> HmacKey {
    HmacKey::from_bytes(&[11u8; 32]).unwrap()
}

fn options(durability: Durability) -> Options {
    Options::new(key())
        .durability(durability)
        .segment_bytes(64 * 1024)
        // Periodic checkpoints are attempted (and fail quietly) during phase A.
        .checkpoint_every(100)
}

/// The receipts a failed append still carries and its message, after checking that it is
/// the clean "no space" error naming a file of the log (never `Poisoned`).
fn expect_enospc(err: Error, dir: &Path, what: &str) -> (Vec<Receipt>, String) {
    let (appended, inner) = match err {
        Error::BatchInterrupted { appended, source } => (appended, *source),
        other => (Vec::new(), other),
    };
    let msg = inner.to_string();
    match &inner {
        Error::Io { path, source, .. } => {
            assert_eq!(source.raw_os_error(), Some(28), "{what}: ENOSPC: {msg}");
            assert!(
                path.starts_with(dir) && path != dir,
                "{what}: the error names a file of the log: {msg}"
            );
        }
        Error::Poisoned(_) => panic!("{what}: the log poisoned itself on a full disk: {msg}"),
        other => panic!("{what}: expected Error::Io with ENOSPC, got {other:?}: {msg}"),
    }
    assert!(msg.contains("No space left on device"), "{what}: {msg}");
    (appended, msg)
}

struct Run {
    log: Log,
    gen: Generator,
    acked: BTreeMap<u64, Hash>,
}

impl Run {
    fn events(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.gen.next_event()).collect()
    }

    fn ack(&mut self, rs: &[Receipt]) {
        for r in rs {
            assert!(self.acked.insert(r.seq, r.hash).is_none(), "seq {}", r.seq);
        }
    }

    /// `n` events, one `append` each or in one `append_batch`.
    fn append(&mut self, n: usize, batch: bool) -> Result<(), Error> {
        let events = self.events(n);
        if batch {
            let rs = self.log.append_batch(&events)?;
            self.ack(&rs);
        } else {
            for e in &events {
                let r = self.log.append(e)?;
                self.ack(&[r]);
            }
        }
        Ok(())
    }
}

fn wait_for_hit(point: &str, above: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while hits(point) <= above {
        assert!(Instant::now() < deadline, "{point} was never reached");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn one_case(durability: Durability, batch: bool) {
    let ctx = format!(
        "{durability:?}, {}",
        if batch { "batches" } else { "single appends" }
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut run = Run {
        log: Log::open(&dir, options(durability)).unwrap(),
        gen: Generator::standard(7),
        acked: BTreeMap::new(),
    };
    run.append(20, batch).unwrap();

    // A: no room for side files. Segments still roll and seal.
    for p in SIDE_FILES {
        cfg(p, "return(enospc)").unwrap();
    }
    let index_before = hits("index.write");
    let checkpoint_before = hits("checkpoint.write");
    for _ in 0..20 {
        // About six 64 KiB segments.
        run.append(60, batch)
            .unwrap_or_else(|e| panic!("{ctx}: append with only side files failing: {e}"));
    }
    wait_for_hit("index.write", index_before);
    wait_for_hit("checkpoint.write", checkpoint_before);
    let err = run.log.checkpoint().unwrap_err();
    let (_, msg) = expect_enospc(err, &dir, &format!("{ctx}: checkpoint"));
    assert!(msg.contains(auditlog::CHECKPOINT_FILE), "{ctx}: {msg}");
    let err = run.log.add_hold(HoldScope::Global, "audit").unwrap_err();
    let (_, msg) = expect_enospc(err, &dir, &format!("{ctx}: add_hold"));
    assert!(msg.contains(auditlog::POLICY_FILE), "{ctx}: {msg}");
    let report = run.log.verify().unwrap();
    assert!(report.ok, "{ctx}: verify in phase A: {:?}", report.failure);
    assert_eq!(report.records, run.acked.len() as u64, "{ctx}");
    let after_a = run.acked.len();

    // B: no room for a new segment either.
    for p in SEGMENT_SPACE {
        cfg(p, "return(enospc)").unwrap();
    }
    let create_before = hits("segment.create") + hits("segment.preallocate");
    let first = loop {
        assert!(
            run.acked.len() < after_a + 10_000,
            "{ctx}: no append ever needed a new segment"
        );
        // Batches larger than a segment: the roll that fails comes in the middle of one.
        match run.append(if batch { 400 } else { 1 }, batch) {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    let (kept, first_msg) = expect_enospc(first, &dir, &format!("{ctx}: first failure"));
    if batch {
        assert!(
            !kept.is_empty(),
            "{ctx}: a batch spanning the failed roll keeps what it wrote before it"
        );
    }
    let kept_n = kept.len();
    run.ack(&kept);
    let acked_at_first = run.acked.len();
    assert!(
        first_msg.contains(".seg"),
        "{ctx}: names the segment: {first_msg}"
    );
    assert!(
        hits("segment.create") + hits("segment.preallocate") > create_before,
        "{ctx}"
    );
    // Later appends fail the same way (a smaller event may still fit in what is left of
    // the active segment: so until five fail in a row), and the log stays usable for reads
    // and syncs.
    let (mut in_a_row, mut attempts) = (0, 0);
    while in_a_row < 5 {
        attempts += 1;
        assert!(
            attempts < 1000,
            "{ctx}: appends keep succeeding on a full disk"
        );
        match run.append(if batch { 3 } else { 1 }, batch) {
            Ok(()) => in_a_row = 0,
            Err(e) => {
                let what = format!("{ctx}: append {attempts} after the first failure");
                let (kept, _) = expect_enospc(e, &dir, &what);
                run.ack(&kept);
                in_a_row += 1;
            }
        }
    }
    // A real disk fails the zero fill rather than the creation of the file.
    remove("segment.create");
    let fill_before = hits("segment.preallocate");
    let err = loop {
        match run.append(if batch { 3 } else { 1 }, batch) {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    let (kept, msg) = expect_enospc(err, &dir, &format!("{ctx}: zero fill"));
    run.ack(&kept);
    assert!(msg.contains("preallocating segment"), "{ctx}: {msg}");
    assert!(hits("segment.preallocate") > fill_before, "{ctx}");
    cfg("segment.create", "return(enospc)").unwrap();
    let acked_when_full = run.acked.len();
    run.log.flush().unwrap();
    let err = run.log.checkpoint().unwrap_err();
    expect_enospc(err, &dir, &format!("{ctx}: checkpoint when full"));
    let report = run.log.verify().unwrap();
    assert!(report.ok, "{ctx}: verify when full: {:?}", report.failure);
    assert_eq!(report.records, acked_when_full as u64, "{ctx}");

    // C: space again.
    for p in SIDE_FILES.iter().chain(SEGMENT_SPACE) {
        remove(p);
    }
    run.append(400, batch)
        .unwrap_or_else(|e| panic!("{ctx}: append once space is back: {e}"));
    run.log.checkpoint().unwrap();
    let seq = run.log.next_seq();
    run.log.add_hold(HoldScope::Global, "audit").unwrap();
    // A hold is itself recorded as an audit event.
    let held = run.log.get(seq).unwrap().expect("the hold's audit event");
    run.acked.insert(held.seq, held.hash);
    run.append(20, batch).unwrap();
    eprintln!(
        "disk_full_failpoint [{ctx}]: {after_a} acknowledged with side files failing, \
         {acked_at_first} when segment creation first failed ({kept_n} of them kept from an \
         interrupted batch): {first_msg}; {} more acknowledged before five failures in a row \
         (smaller events that still fit, or a spare segment the worker finished); {} in all",
        acked_when_full - acked_at_first,
        run.acked.len()
    );

    // Reopen: exactly what was acknowledged, with the same hashes.
    let Run { log, acked, .. } = run;
    drop(log);
    let log = Log::open(&dir, options(durability)).unwrap();
    let found: BTreeMap<u64, Hash> = log
        .iter()
        .map(|r| {
            let r = r.unwrap();
            (r.seq, r.hash)
        })
        .collect();
    assert_eq!(found, acked, "{ctx}: records after reopen");
    let report = log.verify().unwrap();
    assert!(
        report.ok,
        "{ctx}: verify after reopen: {:?}",
        report.failure
    );
    drop(log);
    let report = Log::open_read_only(&dir, key()).unwrap().verify().unwrap();
    assert!(report.ok, "{ctx}: read-only verify: {:?}", report.failure);
    assert_eq!(report.records, acked.len() as u64, "{ctx}");
}

// One test: failpoints are process-wide, and the scenario is held throughout.
#[test]
fn enospc_on_every_space_needing_step_is_clean_and_recoverable() {
    let _scenario = scenario();
    assert!(failpoints::POINTS
        .iter()
        .any(|(n, _)| *n == "segment.preallocate"));
    for durability in [Durability::Sync, Durability::Buffered] {
        for batch in [false, true] {
            one_case(durability, batch);
        }
    }
}
