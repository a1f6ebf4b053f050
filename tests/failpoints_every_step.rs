//! Invariant: at every named failpoint of `auditlog::failpoints::POINTS`, an injected I/O
//! error (and, where it makes sense, a panic) gives the caller an error naming the step and
//! the file (for the worker's steps: poisons the log, or for the derived index, nothing),
//! poisons the log exactly when its in-memory state may no longer match the disk, loses no
//! acknowledged event, and leaves a directory that reopens (for writing and read-only) and
//! verifies. A failpoint added to `POINTS` without a case here fails
//! `every_failpoint_has_a_case`.
#![cfg(feature = "failpoints")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auditlog::failpoints::{self, POINTS};
use auditlog::sample::Generator;
use auditlog::{Durability, Error, Event, Log, Options, Query, Receipt, WritePath};
use chrono::{DateTime, TimeZone, Utc};

const EIO: &str = "os error 5";
const ENOSPC: &str = "os error 28";
/// A case that runs longer than this is a hang (a deadlock after an injected failure).
const CASE_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a worker failure may take to poison the log.
const POISON_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The cases: one test per failpoint. The macro also lists them, so that the coverage test can
// compare the list with `POINTS`.

macro_rules! cases {
    ($($point:literal => $name:ident),* $(,)?) => {
        /// Every failpoint with a case in this file.
        const CASES: &[&str] = &[$($point),*];
        $(
            #[test]
            fn $name() {
                run_case($point, case::$name);
            }
        )*
    };
}

cases! {
    "dir.create" => dir_create,
    "lock.open" => lock_open,
    "meta.write" => meta_write,
    "segment.create" => segment_create,
    "segment.preallocate" => segment_preallocate,
    "segment.header" => segment_header,
    "segment.install" => segment_install,
    "frame.write" => frame_write,
    "frame.copy" => frame_copy,
    "append.sync" => append_sync,
    "roll.sync" => roll_sync,
    "seal.footer" => seal_footer,
    "seal.trim" => seal_trim,
    "index.write" => index_write,
    "checkpoint.write" => checkpoint_write,
    "policy.write" => policy_write,
    "dir.sync" => dir_sync,
    "recovery.cut" => recovery_cut,
    "recovery.staging" => recovery_staging,
    "staging.create" => staging_create,
    "retention.delete" => retention_delete,
    "compaction.write" => compaction_write,
    "compaction.swap" => compaction_swap,
    "archive.write" => archive_write,
    "merkle.round" => merkle_round,
    "leftover.remove" => leftover_remove,
}

#[test]
fn every_failpoint_has_a_case() {
    let names: BTreeSet<&str> = POINTS.iter().map(|(n, _)| *n).collect();
    let cased: BTreeSet<&str> = CASES.iter().copied().collect();
    let missing: Vec<_> = names.difference(&cased).collect();
    assert!(
        missing.is_empty(),
        "failpoints without a case in tests/failpoints_every_step.rs: {missing:?}"
    );
    let unknown: Vec<_> = cased.difference(&names).collect();
    assert!(
        unknown.is_empty(),
        "cases for unknown failpoints: {unknown:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The harness.

/// How often each point was reached while armed, in the current case.
static FIRED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

fn fired() -> std::sync::MutexGuard<'static, BTreeMap<&'static str, u64>> {
    FIRED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one case under a failpoint scenario (which serializes the cases of this binary and
/// clears every point at the end), on its own thread so that a hang fails instead of blocking
/// the run; then checks that the case's own point was reached while armed.
fn run_case(point: &'static str, case: fn()) {
    let _scenario = failpoints::scenario();
    fired().clear();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::Builder::new()
        .name(format!("case {point}"))
        .spawn(move || {
            case();
            let _ = tx.send(());
        })
        .expect("spawn case thread");
    match rx.recv_timeout(CASE_TIMEOUT) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("case {point} did not finish within {CASE_TIMEOUT:?}: the engine hangs")
        }
    }
    let n = fired().get(point).copied().unwrap_or(0);
    assert!(
        n > 0,
        "case {point} never reached its failpoint while armed"
    );
}

/// A configured failpoint; `disarm` turns it off and checks it was reached meanwhile.
struct Armed {
    point: &'static str,
    action: String,
    before: u64,
}

/// The last failpoint armed, for failure messages.
static LAST_ARMED: Mutex<String> = Mutex::new(String::new());

fn last_armed() -> String {
    LAST_ARMED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn arm(point: &'static str, action: &str) -> Armed {
    *LAST_ARMED.lock().unwrap_or_else(|e| e.into_inner()) = format!("{point}={action}");
    let before = failpoints::hits(point);
    failpoints::cfg(point, action).unwrap_or_else(|e| panic!("cfg {point}={action}: {e}"));
    Armed {
        point,
        action: action.to_string(),
        before,
    }
}

impl Armed {
    fn disarm(self) {
        failpoints::remove(self.point);
        let n = failpoints::hits(self.point) - self.before;
        assert!(
            n > 0,
            "failpoint {} ({}) was never reached: the workload misses its step",
            self.point,
            self.action
        );
        *fired().entry(self.point).or_default() += n;
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Runs `f`, catching a panic (returned as its message).
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(panic_text)
}

/// Asserts that `e` is an I/O error whose message names every one of `parts` (the step, the
/// file, the OS error).
#[track_caller]
fn assert_io(e: &Error, parts: &[&str]) {
    let s = e.to_string();
    assert!(matches!(e, Error::Io { .. }), "expected an I/O error: {s}");
    for p in parts {
        assert!(s.contains(p), "error {s:?} should mention {p:?}");
    }
}

/// Asserts that `r` panicked at failpoint `point`.
#[track_caller]
fn assert_panicked<T: std::fmt::Debug>(r: Result<T, String>, point: &str) {
    match r {
        Err(msg) => assert!(msg.contains(point), "panic {msg:?} should name {point}"),
        Ok(v) => panic!("expected the injected panic at {point}, got {v:?}"),
    }
}

fn key() -> auditlog::HmacKey {
    common::key()
}

/// Durable appends into minimum-size (64 KiB) segments; the default write path under `Sync`
/// is `Pwrite`.
fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Sync)
        .segment_bytes(64 * 1024)
        .max_event_bytes(1 << 20)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// The retention workloads' clock: hourly events from `t0` (event `i` at hour `i`), 400 of
/// them, a 5-day policy evaluated on 2024-01-15, so the cutoff (2024-01-10, hour 216) falls in
/// the middle of the log.
const HOURLY_EVENTS: usize = 400;
const DAYS: u32 = 5;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 15, 0, 0, 0).unwrap()
}

fn cutoff_ns() -> i64 {
    (now() - chrono::Duration::days(i64::from(DAYS)))
        .timestamp_nanos_opt()
        .unwrap()
}

/// What retention may remove: records older than the cutoff.
fn expired(r: &Receipt) -> bool {
    r.timestamp_ns < cutoff_ns()
}

fn nothing(_: &Receipt) -> bool {
    false
}

/// The outcome of one append.
#[derive(Debug)]
enum Attempt {
    Acked,
    Failed(Error),
    Panicked(String),
}

/// A log under test and everything it acknowledged.
struct Work {
    dir: PathBuf,
    opts: Options,
    log: Option<Log>,
    gen: Generator,
    hourly: bool,
    n: u64,
    /// Every receipt returned Ok: these records must survive.
    acked: BTreeMap<u64, Receipt>,
    /// How many records may be present without a receipt: appends that failed or panicked
    /// (even with `Poisoned`: an appender that wrote its record and then found the log
    /// poisoned while waiting for the group commit's sync gets that error), and the audit
    /// events of maintenance runs.
    unacked_allowed: usize,
}

impl Drop for Work {
    fn drop(&mut self) {
        // A failing assertion unwinds through here with points still armed: turn them off
        // before the log closes, or a second (injected) panic would abort the test binary.
        if std::thread::panicking() {
            for (p, _) in POINTS {
                failpoints::remove(p);
            }
        }
    }
}

impl Work {
    fn open(dir: &Path, opts: Options) -> Work {
        let log =
            Log::open(dir, opts.clone()).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
        Work {
            dir: dir.to_path_buf(),
            opts,
            log: Some(log),
            gen: Generator::standard(0x5eed),
            hourly: false,
            n: 0,
            acked: BTreeMap::new(),
            unacked_allowed: 0,
        }
    }

    /// A log of `HOURLY_EVENTS` hourly events in `dir`, reopened so that every rolled segment
    /// is sealed (retention, compaction and archive only touch sealed segments).
    fn hourly(dir: &Path, opts: Options) -> Work {
        let mut w = Work::open(dir, opts);
        w.hourly = true;
        w.batch_ok(HOURLY_EVENTS);
        w.reopen();
        assert!(
            w.log().stats().unwrap().segments >= 5,
            "the retention workload spans several segments"
        );
        w
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("the log is open")
    }

    /// The next event: realistic, every 7th one padded to ~6 KiB so that 64 KiB segments
    /// roll every few dozen events; hourly events (retention workloads) carry 700 bytes of
    /// padding and timestamp `t0 + n hours`.
    fn event(&mut self) -> Event {
        let mut e = self.gen.next_event();
        let pad = if self.hourly {
            e.timestamp = Some(t0() + chrono::Duration::hours(self.n as i64));
            700
        } else if self.n % 7 == 6 {
            6000
        } else {
            0
        };
        self.n += 1;
        if pad > 0 {
            let mut d = e.details.to_value();
            d.as_object_mut()
                .expect("details object")
                .insert("pad".into(), "x".repeat(pad).into());
            e.details = d.into();
        }
        e
    }

    /// An event larger than a whole segment: its roll needs a file of its own size, so no
    /// spare fits and the roll creates the file on the appender's thread.
    fn big_event(&mut self) -> Event {
        let mut e = self.event();
        let mut d = e.details.to_value();
        d.as_object_mut()
            .expect("details object")
            .insert("pad".into(), "y".repeat(100_000).into());
        e.details = d.into();
        e
    }

    fn attempt(&mut self, e: Event) -> Attempt {
        let log = self.log().clone();
        match catch(|| log.append(&e)) {
            Ok(Ok(r)) => {
                self.acked.insert(r.seq, r);
                Attempt::Acked
            }
            Ok(Err(e)) => {
                self.unacked_allowed += 1;
                Attempt::Failed(e)
            }
            Err(p) => {
                self.unacked_allowed += 1;
                Attempt::Panicked(p)
            }
        }
    }

    fn append(&mut self) -> Attempt {
        let e = self.event();
        self.attempt(e)
    }

    #[track_caller]
    fn append_ok(&mut self, n: usize) {
        for _ in 0..n {
            match self.append() {
                Attempt::Acked => {}
                other => panic!("append must succeed: {other:?}"),
            }
        }
    }

    #[track_caller]
    fn batch_ok(&mut self, n: usize) {
        let events: Vec<Event> = (0..n).map(|_| self.event()).collect();
        for chunk in events.chunks(50) {
            for r in self.log().append_batch(chunk).expect("append batch") {
                self.acked.insert(r.seq, r);
            }
        }
    }

    /// Appends until one append does not succeed (at most `max`).
    #[track_caller]
    fn until_failure(&mut self, max: usize) -> Attempt {
        for _ in 0..max {
            match self.append() {
                Attempt::Acked => continue,
                other => return other,
            }
        }
        panic!("no append failed within {max} appends")
    }

    /// The poison reason, if the log is poisoned (an empty batch only checks the flag).
    fn poison(&self) -> Option<String> {
        match self.log().append_batch(&[]) {
            Err(Error::Poisoned(r)) => Some(r),
            Err(e) => panic!("an empty batch fails only when poisoned: {e}"),
            Ok(_) => None,
        }
    }

    #[track_caller]
    fn assert_poisoned(&self) -> String {
        self.poison().expect("the log must be poisoned")
    }

    #[track_caller]
    fn assert_not_poisoned(&self) {
        if let Some(r) = self.poison() {
            panic!("the log must not be poisoned, but is: {r}");
        }
    }

    /// Appends one at a time until the worker's failure poisons the log, keeping every
    /// acknowledged append (appends that fail otherwise count as in flight); returns the
    /// poison reason.
    #[track_caller]
    fn append_until_poisoned(&mut self, max: usize) -> String {
        for _ in 0..max {
            if let Some(r) = self.poison() {
                return r;
            }
            match self.append() {
                Attempt::Failed(Error::Poisoned(r)) => return r,
                Attempt::Panicked(p) => panic!("a background failure panicked the appender: {p}"),
                _ => {}
            }
        }
        self.wait_poisoned()
    }

    #[track_caller]
    fn wait_poisoned(&self) -> String {
        let deadline = Instant::now() + POISON_WAIT;
        loop {
            if let Some(r) = self.poison() {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "the worker's failure did not poison the log within {POISON_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A maintenance call (checkpoint, retention, compaction, archive); its audit event, if
    /// it writes one, is a record without a receipt.
    fn maintain<T>(
        &mut self,
        f: impl FnOnce(&Log) -> auditlog::Result<T>,
    ) -> Result<auditlog::Result<T>, String> {
        self.unacked_allowed += 1;
        let log = self.log().clone();
        catch(|| f(&log))
    }

    fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    fn close(&mut self) {
        self.log.take();
    }

    fn reopen(&mut self) {
        self.close();
        self.log = Some(
            Log::open(&self.dir, self.opts.clone())
                .unwrap_or_else(|e| panic!("reopen {}: {e}", self.dir.display())),
        );
    }

    /// Closes the log, then: a read-only open (before any recovery), an open for writing
    /// (recovery; it still takes an append), and a read-only open again must each hold every
    /// acknowledged record with its chain value (but those `may_lose` allows retention to
    /// have removed), no more unacknowledged records than were in flight, contiguous seqs,
    /// and verify.
    #[track_caller]
    fn check(mut self, may_lose: fn(&Receipt) -> bool) {
        self.close();
        let ro = Log::open_read_only(&self.dir, key())
            .unwrap_or_else(|e| panic!("read-only open of {}: {e}", self.dir.display()));
        self.check_log(&ro, "read-only open before recovery", may_lose);
        drop(ro);
        let log = Log::open(&self.dir, self.opts.clone())
            .unwrap_or_else(|e| panic!("reopen {} for writing: {e}", self.dir.display()));
        self.check_log(&log, "reopened for writing", may_lose);
        self.log = Some(log);
        self.append_ok(1);
        self.close();
        let ro = Log::open_read_only(&self.dir, key()).expect("read-only open after reopen");
        self.check_log(&ro, "read-only open after reopen", may_lose);
    }

    /// A read-only open beside the live writer (as `auditlog query`, `export` and `verify`
    /// do) sees every acknowledged record once, and verifies.
    #[track_caller]
    fn check_read_only_beside(&self, may_lose: fn(&Receipt) -> bool) {
        let ro = Log::open_read_only(&self.dir, key()).expect("read-only open beside the writer");
        self.check_log(&ro, "read-only open beside the live writer", may_lose);
    }

    #[track_caller]
    fn check_log(&self, log: &Log, what: &str, may_lose: fn(&Receipt) -> bool) {
        let what = &format!("after {}: {what}", last_armed());
        let mut present = BTreeMap::new();
        let mut prev: Option<u64> = None;
        for r in log.iter() {
            let r = r.unwrap_or_else(|e| panic!("{what}: a record does not read: {e}"));
            if let Some(p) = prev {
                assert_eq!(r.seq, p + 1, "{what}: seqs are contiguous");
            }
            prev = Some(r.seq);
            present.insert(r.seq, (r.hash, r.event.event_id.clone()));
        }
        for (seq, rc) in &self.acked {
            match present.get(seq) {
                Some((hash, id)) => {
                    assert_eq!(
                        hash, &rc.hash,
                        "{what}: chain value of acknowledged seq {seq}"
                    );
                    assert_eq!(
                        id.as_deref(),
                        Some(rc.event_id.as_str()),
                        "{what}: seq {seq}"
                    );
                }
                None => assert!(
                    may_lose(rc),
                    "{what}: acknowledged seq {seq} is lost ({} records present, seqs {:?}..={:?})",
                    present.len(),
                    present.keys().next(),
                    present.keys().last()
                ),
            }
        }
        let extra = present
            .keys()
            .filter(|s| !self.acked.contains_key(s))
            .count();
        assert!(
            extra <= self.unacked_allowed,
            "{what}: {extra} records without a receipt, at most {} were in flight",
            self.unacked_allowed
        );
        let report = log
            .verify()
            .unwrap_or_else(|e| panic!("{what}: verify: {e}"));
        assert!(
            report.ok,
            "{what}: verify must pass: {:?} (warnings {:?})",
            report.failure, report.warnings
        );
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------

mod case {
    use super::*;

    /// Creating the data directory (open) or `archive/` (archive run). At open there is no
    /// log yet to poison: the open fails, holds no lock, and the next one succeeds.
    pub fn dir_create() {
        let tmp = tempdir();
        let dir = tmp.path().join("nested").join("audit");
        // Open: an error naming the directory, nothing created, no lock held afterwards.
        let a = arm("dir.create", "return");
        let e = Log::open(&dir, opts()).err().expect("open must fail");
        assert_io(&e, &["creating data directory", "nested/audit", EIO]);
        assert!(!dir.exists());
        a.disarm();
        let a = arm("dir.create", "panic");
        assert_panicked(catch(|| Log::open(&dir, opts()).map(|_| ())), "dir.create");
        a.disarm();
        let mut w = Work::open(&dir, opts());
        w.append_ok(20);
        w.check(nothing);

        // Archive: the run fails naming archive/, nothing moves, the log goes on (an archive
        // run is maintenance beside the log, not a write of its records: no poison).
        let dir = tmp.path().join("archived");
        let mut w = Work::hourly(&dir, opts().archive_days(DAYS));
        let before = w.log().stats().unwrap().segment_files;
        let a = arm("dir.create", "return");
        let e = w.maintain(|l| l.archive(now())).unwrap().unwrap_err();
        assert_io(&e, &["creating", "archive", EIO]);
        a.disarm();
        assert_eq!(w.log().stats().unwrap().segment_files, before);
        w.assert_not_poisoned();
        w.append_ok(2);
        let r = w.maintain(|l| l.archive(now())).unwrap().unwrap();
        assert!(!r.archived.is_empty(), "{r:?}");
        w.check(nothing);
    }

    /// Opening the LOCK file: open fails naming it (no log to poison); nothing else is
    /// touched.
    pub fn lock_open() {
        let tmp = tempdir();
        let fresh = tmp.path().join("fresh");
        std::fs::create_dir(&fresh).unwrap();
        let a = arm("lock.open", "return");
        let e = Log::open(&fresh, opts()).err().expect("open must fail");
        assert_io(&e, &["opening lock file", "LOCK", EIO]);
        a.disarm();
        assert!(files_ending(&fresh, "").is_empty(), "nothing was created");

        let dir = tmp.path().join("existing");
        let mut w = Work::open(&dir, opts());
        w.append_ok(30);
        w.close();
        let a = arm("lock.open", "return");
        let e = Log::open(&dir, opts()).err().expect("open must fail");
        assert_io(&e, &["opening lock file", "LOCK", EIO]);
        a.disarm();
        let a = arm("lock.open", "panic");
        assert_panicked(catch(|| Log::open(&dir, opts()).map(|_| ())), "lock.open");
        a.disarm();
        w.reopen();
        w.append_ok(5);
        w.check(nothing);
    }

    /// Writing `auditlog.meta` of a new log (temp file, write, fsync, rename): open fails
    /// naming it (no log to poison), and a later open creates the log (removing the
    /// temporary).
    pub fn meta_write() {
        let tmp = tempdir();
        let dir = tmp.path().join("log");
        for action in [
            "return",
            "1*off->return",
            "2*off->return",
            "3*off->return",
            "panic",
        ] {
            let a = arm("meta.write", action);
            match catch(|| Log::open(&dir, opts()).map(|_| ())) {
                Ok(Err(e)) => assert_io(&e, &["writing", "auditlog.meta", EIO]),
                Ok(Ok(())) => panic!("{action}: open must fail"),
                Err(p) => {
                    assert_eq!(action, "panic", "unexpected panic: {p}");
                    assert!(p.contains("meta.write"), "{p}");
                }
            }
            a.disarm();
            assert!(
                !dir.join("auditlog.meta").exists(),
                "{action}: no meta until its rename"
            );
            assert!(
                files_ending(&dir, ".seg").is_empty(),
                "{action}: no segment without a meta"
            );
        }
        let mut w = Work::open(&dir, opts());
        assert!(w.log().recovery().created);
        assert!(files_ending(&dir, ".tmp").is_empty());
        w.append_ok(20);
        w.check(nothing);
    }

    /// Creating a segment file: at open, on a roll (the appender gets the error, naming the
    /// file; the log is NOT poisoned, because nothing was written: the active segment is
    /// unchanged and the next append retries the roll), and in the worker's spare preparation
    /// (silent: the roll then creates its own file).
    pub fn segment_create() {
        creation_point_cases("segment.create", "creating segment");
        // A roll by age runs on the worker: its failure poisons the log (there is no caller
        // to hand the error to, and no append would retry it).
        let tmp = tempdir();
        let mut w = Work::open(
            tmp.path(),
            opts()
                .segment_max_age(Duration::from_millis(1))
                .checkpoint_interval(Duration::from_millis(10)),
        );
        let a = arm("segment.create", "return");
        // (The worker may poison the log while this append waits for its sync.)
        match w.append() {
            Attempt::Acked | Attempt::Failed(Error::Poisoned(_)) => {}
            other => panic!("{other:?}"),
        }
        let reason = w.wait_poisoned();
        a.disarm();
        assert!(
            reason.contains("creating segment") && reason.contains(EIO),
            "{reason}"
        );
        w.check(nothing);
    }

    /// Zero-filling a new segment and its fsync: as `segment.create`.
    pub fn segment_preallocate() {
        creation_point_cases("segment.preallocate", "preallocating segment");
        // The fill succeeds and its fsync fails.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(3);
        let a = arm("segment.preallocate", "1*off->return");
        match w.until_failure(2000) {
            Attempt::Failed(e) => assert_io(&e, &["preallocating segment", ".seg", EIO]),
            other => panic!("{other:?}"),
        }
        a.disarm();
        w.assert_not_poisoned();
        w.append_ok(100);
        w.check(nothing);
    }

    fn creation_point_cases(point: &'static str, step: &str) {
        // A fresh directory: open creates the first segment.
        let tmp = tempdir();
        let dir = tmp.path().join("fresh");
        let a = arm(point, "return");
        let e = Log::open(&dir, opts()).err().expect("open must fail");
        assert_io(&e, &[step, ".seg", EIO]);
        a.disarm();
        let mut w = Work::open(&dir, opts());
        w.append_ok(10);
        w.check(nothing);

        // A roll, with EIO and with a full disk.
        for (action, os) in [("return", EIO), ("return(enospc)", ENOSPC)] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts());
            w.append_ok(5);
            let a = arm(point, action);
            match w.until_failure(2000) {
                Attempt::Failed(e) => assert_io(&e, &[step, ".seg", os]),
                other => panic!("{action}: {other:?}"),
            }
            // Not poisoned: the next append retries the roll (and fails again while the
            // disk is still full).
            w.assert_not_poisoned();
            // (An event bigger than a segment always needs a roll: a small one might still fit
            // where the failed one did not.)
            let big = w.big_event();
            match w.attempt(big) {
                Attempt::Failed(e) => assert_io(&e, &[step, os]),
                other => panic!("{action}: the retry must fail while armed: {other:?}"),
            }
            a.disarm();
            w.assert_not_poisoned();
            w.append_ok(100);
            w.check(nothing);
        }

        // A panic on the appender's thread (an event bigger than a segment: no spare fits):
        // caught by the caller; the log is poisoned, since a panic under the writer lock may
        // have left the writer's state out of step with the files.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(3);
        let a = arm(point, "panic");
        let big = w.big_event();
        match w.attempt(big) {
            Attempt::Panicked(p) => assert!(p.contains(point), "{p}"),
            other => panic!("the roll must panic: {other:?}"),
        }
        a.disarm();
        w.assert_poisoned();
        assert!(matches!(w.append(), Attempt::Failed(Error::Poisoned(_))));
        w.check(nothing);

        // A panic in the worker's spare preparation (or in the roll, whichever comes first):
        // the log is poisoned either way.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        let a = arm(point, "panic");
        let mut reason = None;
        for _ in 0..2000 {
            match w.append() {
                Attempt::Acked => {}
                Attempt::Panicked(p) => {
                    assert!(p.contains(point), "{p}");
                    reason = Some(w.assert_poisoned());
                    break;
                }
                Attempt::Failed(Error::Poisoned(r)) => {
                    reason = Some(r);
                    break;
                }
                Attempt::Failed(e) => panic!("{e}"),
            }
        }
        a.disarm();
        let reason = reason.expect("the panic must poison the log");
        assert!(reason.contains("panicked"), "{reason}");
        w.check(nothing);
    }

    /// Writing a new segment's header and its fsync (a spare's, or a fresh file's): as a
    /// failed creation, an error naming the segment and no poison.
    pub fn segment_header() {
        install_point_cases("segment.header");
    }

    /// Renaming a prepared segment to its name: as `segment.header`.
    pub fn segment_install() {
        install_point_cases("segment.install");
    }

    fn install_point_cases(point: &'static str) {
        for action in ["return", "1*off->return"] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts());
            w.append_ok(3);
            let a = arm(point, action);
            match w.until_failure(2000) {
                Attempt::Failed(e) => assert_io(&e, &["installing segment", ".seg", EIO]),
                other => panic!("{action}: {other:?}"),
            }
            a.disarm();
            w.assert_not_poisoned();
            w.append_ok(100);
            w.check(nothing);
        }
        // Through the spare-less path, on the appender's thread: a panic poisons.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(3);
        let a = arm(point, "panic");
        let big = w.big_event();
        match w.attempt(big) {
            Attempt::Panicked(p) => assert!(p.contains(point), "{p}"),
            other => panic!("the roll must panic: {other:?}"),
        }
        a.disarm();
        w.assert_poisoned();
        w.check(nothing);
    }

    /// A failed write of a record (or a panic) poisons: the writer cannot know what reached
    /// the file, so nothing more may be appended in this process.
    fn write_point_cases(point: &'static str, path: WritePath) {
        for action in ["return", "panic"] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts().write_path(path));
            w.append_ok(10);
            let a = arm(point, action);
            match (action, w.append()) {
                ("return", Attempt::Failed(e)) => {
                    assert_io(&e, &["writing record to", ".seg", EIO])
                }
                ("panic", Attempt::Panicked(p)) => assert!(p.contains(point), "{p}"),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            let reason = w.assert_poisoned();
            if action == "return" {
                assert!(reason.contains(EIO), "{reason}");
            }
            assert!(matches!(w.append(), Attempt::Failed(Error::Poisoned(_))));
            assert!(matches!(w.log().checkpoint(), Err(Error::Poisoned(_))));
            w.check(nothing);
        }
    }

    pub fn frame_write() {
        write_point_cases("frame.write", WritePath::Pwrite);
    }

    pub fn frame_copy() {
        write_point_cases("frame.copy", WritePath::Mmap);
    }

    /// The group commit's fdatasync (Pwrite) or msync (Mmap): a failure poisons (the page
    /// cache may have dropped the dirty pages: what is on disk is unknown); the record whose
    /// sync failed is not acknowledged and may or may not survive.
    pub fn append_sync() {
        for (path, action) in [
            (WritePath::Pwrite, "return"),
            (WritePath::Mmap, "return"),
            (WritePath::Pwrite, "panic"),
            (WritePath::Mmap, "panic"),
        ] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts().write_path(path));
            w.append_ok(10);
            let a = arm("append.sync", action);
            match (action, w.append()) {
                ("return", Attempt::Failed(e)) => assert_io(&e, &["syncing", ".seg", EIO]),
                ("panic", Attempt::Panicked(p)) => assert!(p.contains("append.sync"), "{p}"),
                (_, other) => panic!("{path:?} {action}: {other:?}"),
            }
            a.disarm();
            w.assert_poisoned();
            assert!(matches!(w.append(), Attempt::Failed(Error::Poisoned(_))));
            w.check(nothing);
        }
        // Concurrent appenders (group commit): the leader's failed (or panicking) sync fails
        // it and wakes every waiter, who then fail too; nobody hangs; every record
        // acknowledged before survives.
        for action in ["return", "panic"] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts());
            w.append_ok(5);
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let log = w.log().clone();
                    std::thread::spawn(move || {
                        let mut gen = Generator::standard(100 + t);
                        let (mut acked, mut in_flight) = (Vec::new(), 0usize);
                        loop {
                            match catch(|| log.append(&gen.next_event())) {
                                Ok(Ok(r)) => acked.push(r),
                                // A waiter of the failed sync wrote its record, then
                                // finds the log poisoned: in flight too.
                                Ok(Err(Error::Poisoned(_))) => {
                                    in_flight += 1;
                                    break;
                                }
                                Ok(Err(_)) | Err(_) => in_flight += 1,
                            }
                            assert!(acked.len() < 100_000, "the sync never failed");
                        }
                        (acked, in_flight)
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(30));
            let a = arm("append.sync", action);
            for t in threads {
                let (acked, in_flight) = t.join().expect("appender thread");
                w.unacked_allowed += in_flight;
                w.acked.extend(acked.into_iter().map(|r| (r.seq, r)));
            }
            a.disarm();
            w.assert_poisoned();
            w.check(nothing);
        }

        // `Interval`: the worker's timed sync fails and poisons the log; the appenders only
        // see the poison.
        let tmp = tempdir();
        let mut w = Work::open(
            tmp.path(),
            opts().durability(Durability::Interval(Duration::from_millis(5))),
        );
        w.append_ok(10);
        let a = arm("append.sync", "return");
        let reason = w.append_until_poisoned(100_000);
        a.disarm();
        assert!(
            reason.contains("syncing") && reason.contains(EIO),
            "{reason}"
        );
        w.check(nothing);

        // Without `Sync`, `flush` is the sync: it fails and poisons; what was appended before
        // (acknowledged into the page cache, the process still alive) survives.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts().durability(Durability::Buffered));
        w.append_ok(20);
        let a = arm("append.sync", "return");
        let e = w.log().flush().unwrap_err();
        assert_io(&e, &["syncing", ".seg", EIO]);
        a.disarm();
        w.assert_poisoned();
        w.check(nothing);
    }

    /// The roll's fdatasync of the full segment: a failure poisons (its records' durability
    /// is unknown, and the next segment must not start a chain on top of them).
    pub fn roll_sync() {
        for (durability, action) in [
            (Durability::Sync, "return"),
            (Durability::Buffered, "return"),
            (Durability::Sync, "panic"),
        ] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts().durability(durability));
            w.append_ok(3);
            let a = arm("roll.sync", action);
            match (action, w.until_failure(2000)) {
                ("return", Attempt::Failed(e)) => assert_io(&e, &["syncing", ".seg", EIO]),
                ("panic", Attempt::Panicked(p)) => assert!(p.contains("roll.sync"), "{p}"),
                (_, other) => panic!("{durability:?} {action}: {other:?}"),
            }
            a.disarm();
            w.assert_poisoned();
            w.check(nothing);
        }
    }

    /// A step of the worker's seal: the appender never sees it fail, the worker poisons the
    /// log (a segment it could not seal must not be followed by more in this process), the
    /// next append is refused, and reopening seals the segment.
    fn seal_point_cases(point: &'static str, actions: &[&str]) {
        for &action in actions {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts());
            let a = arm(point, action);
            let reason = w.append_until_poisoned(3000);
            a.disarm();
            if action == "panic" {
                assert!(reason.contains("worker panicked"), "{reason}");
            } else {
                assert!(
                    reason.contains("sealing segment") && reason.contains(EIO),
                    "{reason}"
                );
            }
            assert!(matches!(w.append(), Attempt::Failed(Error::Poisoned(_))));
            w.check(nothing);
        }
    }

    pub fn seal_footer() {
        seal_point_cases("seal.footer", &["return", "1*off->return", "panic"]);
    }

    pub fn seal_trim() {
        seal_point_cases("seal.trim", &["return", "1*off->return", "panic"]);
    }

    /// The `.idx` side file: derived data, written best effort. An error changes nothing (no
    /// poison, queries still answer, from an index rebuilt in memory; a later open writes the
    /// file); a panic in the worker poisons like any worker panic.
    pub fn index_write() {
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        let a = arm("index.write", "return");
        // Several rolls, so several seals try to write an index.
        while failpoints::hits("index.write") < 3 {
            w.append_ok(10);
        }
        w.append_ok(10);
        std::thread::sleep(Duration::from_millis(100));
        w.assert_not_poisoned();
        assert!(
            files_ending(&w.dir, ".idx").is_empty(),
            "every index write failed"
        );
        let count = |w: &Work| {
            let n = w
                .log()
                .iter()
                .filter(|r| r.as_ref().unwrap().event.event_type == "authentication")
                .count() as u64;
            let q = Query::from_params([("event_type", "authentication")]).unwrap();
            (n, w.log().query(&q).unwrap().total_count)
        };
        let (n, total) = count(&w);
        assert_eq!(total, n, "the query answers from rebuilt indexes");
        // Reopened, sealed segments' indexes are built on first use; writing them back fails
        // too (silently).
        w.reopen();
        let (n, total) = count(&w);
        assert_eq!(total, n);
        a.disarm();
        w.reopen();
        let (n, total) = count(&w);
        assert_eq!(total, n);
        assert!(
            !files_ending(&w.dir, ".idx").is_empty(),
            "rebuilt and written"
        );
        w.check(nothing);

        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        let a = arm("index.write", "panic");
        let reason = w.append_until_poisoned(3000);
        a.disarm();
        assert!(reason.contains("worker panicked"), "{reason}");
        w.check(nothing);
    }

    /// `Log::checkpoint` (open, append, fdatasync of checkpoints.jsonl): the caller gets an
    /// error naming the file; the log is not poisoned (no record was touched) and goes on.
    pub fn checkpoint_write() {
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(10);
        for action in ["return", "1*off->return", "2*off->return", "panic"] {
            let a = arm("checkpoint.write", action);
            match (action, w.maintain(|l| l.checkpoint())) {
                ("panic", Err(p)) => assert!(p.contains("checkpoint.write"), "{p}"),
                (_, Ok(Err(e))) => assert_io(&e, &["appending to", "checkpoints.jsonl", EIO]),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            w.assert_not_poisoned();
            w.append_ok(3);
        }
        let cp = w.log().checkpoint().unwrap();
        assert_eq!(cp.seq, *w.acked.keys().last().unwrap());
        assert!(w.log().verify().unwrap().ok);
        w.check(nothing);
    }

    /// Appending the signed retention record to policy.log: the run fails naming the file
    /// before anything is removed; the log is not poisoned, and a later run works.
    pub fn policy_write() {
        for action in ["return", "1*off->return", "2*off->return", "panic"] {
            let tmp = tempdir();
            let mut w = Work::hourly(tmp.path(), opts().retention_days(DAYS));
            let before = w.log().stats().unwrap().segment_files;
            let a = arm("policy.write", action);
            match (action, w.maintain(|l| l.apply_retention(now()))) {
                ("panic", Err(p)) => assert!(p.contains("policy.write"), "{p}"),
                (_, Ok(Err(e))) => assert_io(&e, &["appending to", "policy.log", EIO]),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            assert_eq!(
                w.log().stats().unwrap().segment_files,
                before,
                "{action}: nothing is removed without its signed record"
            );
            w.assert_not_poisoned();
            w.append_ok(2);
            // A record whose append failed after reaching the file (its fsync failed) may
            // count for a reader (or for the open after a crash): what it names was expired.
            w.check_read_only_beside(expired);
            let r = w.maintain(|l| l.apply_retention(now())).unwrap();
            let r = r.unwrap_or_else(|e| panic!("{action}: the next run must work: {e}"));
            assert!(r.removed.is_some(), "{action}: {r:?}");
            w.check(expired);
        }
    }

    /// fsync of the data directory: after the segment a roll created (the appender gets the
    /// error, no poison: the roll is retried), in a seal (worker: poison), and at open.
    pub fn dir_sync() {
        // Open of a new log: meta's rename is not durable, open fails.
        let tmp = tempdir();
        let dir = tmp.path().join("fresh");
        let a = arm("dir.sync", "return");
        let e = Log::open(&dir, opts()).err().expect("open must fail");
        assert_io(&e, &["syncing directory", "fresh", EIO]);
        a.disarm();
        let mut w = Work::open(&dir, opts());
        w.append_ok(10);
        w.check(nothing);

        // A roll: the new segment has its name but the directory sync fails. The roll undoes
        // the rename (and syncs that) and the appender gets the error; not poisoned: the old
        // segment stays active and the next append retries the roll.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(3);
        let a = arm("dir.sync", "1*return->off");
        match w.until_failure(2000) {
            Attempt::Failed(e) => assert_io(&e, &["syncing directory", EIO]),
            other => panic!("{other:?}"),
        }
        a.disarm();
        w.assert_not_poisoned();
        w.append_ok(100);
        w.check(nothing);

        // When the undo cannot be made durable either, the log is poisoned: the old segment
        // must take no more records while a file that continues it may be on disk.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(3);
        let a = arm("dir.sync", "return");
        match w.until_failure(2000) {
            Attempt::Failed(e) => assert_io(&e, &["syncing directory", EIO]),
            other => panic!("{other:?}"),
        }
        a.disarm();
        w.assert_poisoned();
        w.check(nothing);

        // The roll's own sync passes, the seal's fails: poisoned by the worker.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        let a = arm("dir.sync", "1*off->return");
        let reason = w.append_until_poisoned(3000);
        a.disarm();
        assert!(
            reason.contains("syncing directory") && reason.contains(EIO),
            "{reason}"
        );
        w.check(nothing);

        // A panic in the roll, on the appender's thread: poisoned.
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(3);
        let a = arm("dir.sync", "panic");
        match w.until_failure(2000) {
            Attempt::Panicked(p) => assert!(p.contains("dir.sync"), "{p}"),
            other => panic!("{other:?}"),
        }
        a.disarm();
        w.assert_poisoned();
        w.check(nothing);
    }

    /// Zeroing a torn tail at open: open fails naming the segment (no log to poison) and
    /// leaves it as it was, so a later open cuts it; every record before the tear survives.
    pub fn recovery_cut() {
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(30);
        w.close();
        let tear = |dir: &Path| {
            let seg = common::layouts(dir).pop().expect("a segment");
            assert!(seg.footer.is_none(), "the active segment");
            let mut bytes = std::fs::read(&seg.path).unwrap();
            bytes[seg.written_end..seg.written_end + 40].fill(0xA5);
            std::fs::write(&seg.path, bytes).unwrap();
        };
        tear(&w.dir);
        for action in ["return", "1*off->return", "panic"] {
            let a = arm("recovery.cut", action);
            match catch(|| Log::open(&w.dir, opts()).map(|_| ())) {
                Ok(Err(e)) => assert_io(&e, &["cutting torn tail of", ".seg", EIO]),
                Err(p) => {
                    assert_eq!(action, "panic", "{p}");
                    assert!(p.contains("recovery.cut"), "{p}");
                }
                Ok(Ok(())) => panic!("{action}: open must fail"),
            }
            a.disarm();
            if action == "1*off->return" {
                // The zeros were written, only their sync failed: tear it again.
                tear(&w.dir);
            }
        }
        w.reopen();
        let torn = w.log().recovery().torn_tail.clone();
        assert!(torn.is_some_and(|t| t.bytes >= 40), "the tail is cut now");
        w.append_ok(5);
        w.check(nothing);
    }

    /// Removing an expired segment (or its index): the run fails naming the file after its
    /// signed record is written; the log is not poisoned; open finishes the removal (and fails
    /// naming the file while removing is impossible).
    pub fn retention_delete() {
        for action in ["return", "1*off->return", "panic"] {
            let tmp = tempdir();
            let mut w = Work::hourly(tmp.path(), opts().retention_days(DAYS));
            let a = arm("retention.delete", action);
            match (action, w.maintain(|l| l.apply_retention(now()))) {
                ("panic", Err(p)) => assert!(p.contains("retention.delete"), "{p}"),
                (_, Ok(Err(e))) => assert_io(&e, &["removing", EIO]),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            w.assert_not_poisoned();
            w.append_ok(2);
            let live = w.log().verify().unwrap();
            assert!(
                live.ok,
                "{action}: the live log verifies: {:?}",
                live.failure
            );
            w.check_read_only_beside(expired);
            // The same process runs retention again (nothing is recorded twice).
            let r = w.maintain(|l| l.apply_retention(now())).unwrap();
            r.unwrap_or_else(|e| panic!("{action}: the next run must work: {e}"));
            let live = w.log().verify().unwrap();
            assert!(live.ok, "{action}: after the next run: {:?}", live.failure);
            if action != "panic" {
                // Open finishes the removal; while that fails, open fails naming the file.
                w.close();
                let a = arm("retention.delete", "return");
                let e = Log::open(&w.dir, w.opts.clone())
                    .err()
                    .expect("open must fail");
                assert_io(&e, &["removing", EIO]);
                a.disarm();
            }
            w.check(expired);
        }
    }

    /// Writing a compacted segment's temporary file (create, write, fsync): the run fails
    /// naming it after the compaction's signed record; the log is not poisoned; open redoes
    /// the compaction.
    pub fn compaction_write() {
        compaction_cases(
            "compaction.write",
            &[
                ("return", "writing rewritten segment"),
                ("1*off->return", "writing rewritten segment"),
                ("2*off->return", "writing rewritten segment"),
                ("panic", ""),
            ],
        );
    }

    /// Swapping the compacted segment in (old index removal, rename, old segment removal): as
    /// `compaction.write`; open finishes what the swap left.
    pub fn compaction_swap() {
        compaction_cases(
            "compaction.swap",
            &[
                ("return", "installing rewritten segment"),
                ("1*off->return", "installing rewritten segment"),
                ("2*off->return", "removing segment"),
                ("3*off->return", "removing index"),
                ("panic", ""),
            ],
        );
    }

    fn compaction_cases(point: &'static str, actions: &[(&str, &str)]) {
        for &(action, step) in actions {
            let tmp = tempdir();
            let mut w = Work::hourly(tmp.path(), opts().retention_days(DAYS));
            let plan = w.log().plan_compaction(now()).unwrap();
            assert!(
                plan.compacted.is_some(),
                "a segment straddles the cutoff: {plan:?}"
            );
            let a = arm(point, action);
            match (action, w.maintain(|l| l.compact(now()))) {
                ("panic", Err(p)) => assert!(p.contains(point), "{p}"),
                (_, Ok(Err(e))) => assert_io(&e, &[step, &w.dir_str(), EIO]),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            w.assert_not_poisoned();
            w.append_ok(2);
            let live = w.log().verify().unwrap();
            assert!(
                live.ok,
                "{action}: the live log verifies: {:?}",
                live.failure
            );
            w.check_read_only_beside(expired);
            // The same process retries the run.
            let r = w.maintain(|l| l.compact(now())).unwrap();
            r.unwrap_or_else(|e| panic!("{action}: the retry must work: {e}"));
            let live = w.log().verify().unwrap();
            assert!(live.ok, "{action}: after the retry: {:?}", live.failure);
            w.check(expired);
        }
    }

    /// Writing an archived copy (create, write, fsync, rename) and removing the original:
    /// the run fails naming the file; nothing is lost, the log is not poisoned.
    pub fn archive_write() {
        for (action, step) in [
            ("return", "writing archived segment"),
            ("1*off->return", "writing archived segment"),
            ("2*off->return", "writing archived segment"),
            ("3*off->return", "writing archived segment"),
            ("4*off->return", "removing segment"),
            ("5*off->return", "removing index"),
            ("panic", ""),
        ] {
            let tmp = tempdir();
            let mut w = Work::hourly(tmp.path(), opts().archive_days(DAYS));
            let a = arm("archive.write", action);
            match (action, w.maintain(|l| l.archive(now()))) {
                ("panic", Err(p)) => assert!(p.contains("archive.write"), "{p}"),
                (_, Ok(Err(e))) => assert_io(&e, &[step, &w.dir_str(), EIO]),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            w.assert_not_poisoned();
            w.append_ok(2);
            let live = w.log().verify().unwrap();
            assert!(
                live.ok,
                "{action}: the live log verifies: {:?}",
                live.failure
            );
            w.check_read_only_beside(nothing);
            let r = w.maintain(|l| l.archive(now())).unwrap();
            r.unwrap_or_else(|e| panic!("{action}: the next run must work: {e}"));
            let live = w.log().verify().unwrap();
            assert!(live.ok, "{action}: after the next run: {:?}", live.failure);
            w.check(nothing);
        }
    }

    /// Creating the staging file at open: the open fails naming it (nothing was changed), and
    /// the next open works with every record.
    pub fn staging_create() {
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(20);
        w.close();
        for action in ["return", "panic"] {
            let a = arm("staging.create", action);
            match catch(|| Log::open(&w.dir, opts()).map(|_| ())) {
                Ok(Err(e)) => assert_io(&e, &["creating staging file", "staging", EIO]),
                Err(p) => {
                    assert_eq!(action, "panic", "{p}");
                    assert!(p.contains("staging.create"), "{p}");
                }
                Ok(Ok(())) => panic!("{action}: open must fail"),
            }
            a.disarm();
        }
        w.reopen();
        w.append_ok(5);
        w.check(nothing);
    }

    /// Copying staged records into the segment at open (a writer died with its last record
    /// only staged: here a copy of the live writer's directory whose segment copy of that
    /// record is zeroed): the open fails naming the segment, and the next one copies it in.
    pub fn recovery_staging() {
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(20);
        let crashed = tmp.path().join("crashed");
        std::fs::create_dir(&crashed).unwrap();
        for e in std::fs::read_dir(&w.dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), crashed.join(e.file_name())).unwrap();
            }
        }
        let seg = common::layouts(&crashed).pop().expect("a segment");
        assert!(seg.footer.is_none(), "the active segment");
        let last = *seg.frames.last().expect("frames");
        let mut bytes = std::fs::read(&seg.path).unwrap();
        bytes[last.offset..last.offset + last.len].fill(0);
        std::fs::write(&seg.path, bytes).unwrap();
        for action in ["return", "panic"] {
            let a = arm("recovery.staging", action);
            match catch(|| Log::open(&crashed, opts()).map(|_| ())) {
                Ok(Err(e)) => assert_io(&e, &["copying staged records into", ".seg", EIO]),
                Err(p) => {
                    assert_eq!(action, "panic", "{p}");
                    assert!(p.contains("recovery.staging"), "{p}");
                }
                Ok(Ok(())) => panic!("{action}: open must fail"),
            }
            a.disarm();
        }
        let log = Log::open(&crashed, opts()).unwrap();
        assert_eq!(log.recovery().staged_records, 1);
        assert_eq!(log.next_seq(), w.log().next_seq());
        assert!(log.verify().unwrap().ok);
        drop(log);
        w.append_ok(5);
        w.check(nothing);
    }

    /// A durability round of the Merkle tiles (`Log::merkle_sync`): it fails naming the
    /// merkle directory or the tile, the stored tree stays where it was, the log is not
    /// poisoned, and the next round stores the tree the records make.
    pub fn merkle_round() {
        use auditlog::merkle::{record_leaf_hash, tree_hash, MemoryTree};
        use auditlog::tiles::TileStore;
        for action in ["return", "1*off->return", "panic"] {
            let tmp = tempdir();
            let mut w = Work::open(tmp.path(), opts());
            w.append_ok(300);
            let st0 = w.log().merkle_sync().unwrap();
            assert_eq!(st0.size, 300);
            w.append_ok(300);
            let a = arm("merkle.round", action);
            match (action, w.maintain(|l| l.merkle_sync())) {
                ("panic", Err(p)) => assert!(p.contains("merkle.round"), "{p}"),
                (_, Ok(Err(e))) => assert_io(&e, &["merkle", EIO]),
                (_, other) => panic!("{action}: {other:?}"),
            }
            a.disarm();
            let store = TileStore::new(&w.dir);
            assert_eq!(
                store.state().unwrap(),
                st0,
                "{action}: the stored tree is unchanged"
            );
            w.assert_not_poisoned();
            let st = w.log().merkle_sync().unwrap();
            assert_eq!(st.size, 600);
            let leaves = (0..600).map(|s| {
                let (ts, d) = w.log().merkle_leaf(s).unwrap();
                record_leaf_hash(s, ts, &d)
            });
            let mem = MemoryTree::from_leaf_hashes(leaves.collect::<Vec<_>>());
            assert_eq!(st.root, tree_hash(&mem, 600).unwrap(), "{action}");
            w.check(nothing);
        }
    }

    /// Removing temporaries and spares at open (open fails naming the file; no log to
    /// poison), and the spare at close (best effort: the next open removes it).
    pub fn leftover_remove() {
        let tmp = tempdir();
        let mut w = Work::open(tmp.path(), opts());
        w.append_ok(10);
        w.close();
        std::fs::write(w.dir.join("next-1.prealloc"), vec![0u8; 4096]).unwrap();
        std::fs::write(w.dir.join("00000000000000000999.seg.tmp"), b"partial").unwrap();
        for action in ["return", "panic"] {
            let a = arm("leftover.remove", action);
            match catch(|| Log::open(&w.dir, opts()).map(|_| ())) {
                Ok(Err(e)) => assert_io(&e, &["removing leftover", EIO]),
                Err(p) => {
                    assert_eq!(action, "panic", "{p}");
                    assert!(p.contains("leftover.remove"), "{p}");
                }
                Ok(Ok(())) => panic!("{action}: open must fail"),
            }
            a.disarm();
        }
        w.reopen();
        assert!(files_ending(&w.dir, ".prealloc").is_empty());
        assert!(files_ending(&w.dir, ".tmp").is_empty());
        // The spare the worker prepared is left behind by a close that cannot remove it.
        while files_ending(&w.dir, ".prealloc").is_empty() {
            w.append_ok(5);
        }
        std::thread::sleep(Duration::from_millis(50));
        let a = arm("leftover.remove", "return");
        w.close();
        a.disarm();
        assert!(
            !files_ending(&w.dir, ".prealloc").is_empty(),
            "the spare is left"
        );
        w.reopen();
        assert!(
            files_ending(&w.dir, ".prealloc").is_empty(),
            "and removed by open"
        );
        w.append_ok(5);
        w.check(nothing);
    }
}
