//! Fault injection and crash simulation for tests (feature `failpoints`; never enable it in
//! production).
//!
//! **Failpoints.** Every step that changes the disk goes through [`crate::fsio`], which puts a
//! named [`fail`] point in front of it; [`POINTS`] lists them. Configure one with [`cfg`] and
//! the `fail` crate's action syntax: `"return"` (an `EIO`), `"return(enospc)"` (a full disk),
//! `"panic"`, `"3*off->return"` (the fourth hit fails), and so on. Hold a [`scenario`] while
//! doing so: failpoints are process-wide, and the scenario serializes the tests that use them
//! and clears every point when dropped. [`hits`] tells how often a point was reached.
//!
//! **Crash simulation.** [`trace::Recorder`] records every durable change made under a
//! directory, in order; [`crash::Trace`] rebuilds from that record what a power loss after
//! any step could leave on disk: synced bytes and directory entries survive, and of the rest,
//! none, all, an in-order prefix torn at any byte, or only the latest.

pub mod crash;
pub mod trace;

use std::collections::HashMap;
use std::io;

use parking_lot::Mutex;

pub use fail;

/// Every failpoint, with the step it precedes.
pub const POINTS: &[(&str, &str)] = &[
    ("dir.create", "creating the data or archive directory"),
    ("lock.open", "creating or opening the LOCK file"),
    (
        "meta.write",
        "writing meta (temp file, write, fsync, rename)",
    ),
    ("segment.create", "creating a segment file"),
    (
        "segment.preallocate",
        "writing zeros into a new segment, and its fsync",
    ),
    ("segment.header", "writing a new segment's header"),
    (
        "segment.install",
        "renaming a prepared segment to its final name",
    ),
    ("frame.write", "pwrite of a record"),
    (
        "frame.copy",
        "copying a record into the mapped active segment",
    ),
    (
        "append.sync",
        "fdatasync or msync of the active segment for group commit",
    ),
    (
        "roll.sync",
        "fdatasync of the full segment before the next one starts",
    ),
    (
        "seal.footer",
        "writing a sealed segment's footer and its fdatasync",
    ),
    (
        "seal.trim",
        "cutting a sealed segment after its footer, and its fsync",
    ),
    ("index.write", "writing a sealed segment's .idx file"),
    (
        "checkpoint.write",
        "appending a signed checkpoint to checkpoints.jsonl",
    ),
    ("policy.write", "appending a signed record to policy.log"),
    (
        "dir.sync",
        "fsync of the data directory after entries changed",
    ),
    ("recovery.cut", "zeroing a torn tail at open"),
    (
        "recovery.staging",
        "copying staged records into the active segment at open, and its fdatasync",
    ),
    (
        "staging.create",
        "creating and reserving the staging file at open",
    ),
    (
        "retention.delete",
        "removing a segment (and its .idx) retention expired",
    ),
    (
        "compaction.write",
        "writing a compacted segment's temp file",
    ),
    (
        "compaction.swap",
        "renaming a compacted segment over the original",
    ),
    (
        "archive.write",
        "writing an archived (LZ4) copy of a segment",
    ),
    (
        "merkle.round",
        "a durability round of the Merkle tiles: each tile's fsync, before `tree` names them",
    ),
    (
        "leftover.remove",
        "removing temporary and spare files at open",
    ),
];

static HITS: Mutex<Option<HashMap<&'static str, u64>>> = Mutex::new(None);

/// Holds the process-wide failpoint configuration for one test; clears it when dropped.
pub struct Scenario {
    _inner: fail::FailScenario<'static>,
}

/// Starts a failpoint scenario: waits for any other scenario to end, clears every point and
/// every hit count.
pub fn scenario() -> Scenario {
    let inner = fail::FailScenario::setup();
    *HITS.lock() = None;
    Scenario { _inner: inner }
}

/// Configures failpoint `name` with `fail` actions (see the module documentation).
pub fn cfg(name: &str, actions: &str) -> Result<(), String> {
    if !POINTS.iter().any(|(n, _)| *n == name) {
        return Err(format!("no failpoint named {name:?}"));
    }
    fail::cfg(name, actions)
}

/// Turns failpoint `name` off.
pub fn remove(name: &str) {
    fail::remove(name);
}

/// How many times `name` was reached since the scenario started.
pub fn hits(name: &str) -> u64 {
    HITS.lock()
        .as_ref()
        .and_then(|m| m.get(name).copied())
        .unwrap_or(0)
}

/// Called by `fsio` in front of every step.
pub(crate) fn eval(name: &'static str) -> io::Result<()> {
    *HITS
        .lock()
        .get_or_insert_with(HashMap::new)
        .entry(name)
        .or_default() += 1;
    match fail::eval(name, |arg| injected(arg.as_deref())) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `return(enospc)` is a full disk, `return(edquot)` an exhausted quota, anything else `EIO`:
/// the same errors, with the same messages, that the kernel gives.
fn injected(arg: Option<&str>) -> io::Error {
    match arg {
        Some("enospc") => io::Error::from_raw_os_error(28),
        Some("edquot") => io::Error::from_raw_os_error(122),
        _ => io::Error::from_raw_os_error(5),
    }
}
