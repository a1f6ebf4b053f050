//! The engine: a data directory of segments, one writer with group commit, readers over
//! memory maps, recovery on open and a background worker that seals, syncs and checkpoints.

mod flusher;
mod follow;
mod open;
mod options;
mod reader;
mod staging;
mod worker;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub use follow::{Follow, Subscription};
pub(crate) use open::set_aside_removed;
pub use open::{RecoveryReport, TornTail};
pub use options::{Durability, Options, Preallocation, WritePath, MIN_SEGMENT_BYTES};
pub use reader::{Record, RecordIter};
pub use staging::STAGING_FILE;

use crate::chain::{Chain, Hash};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::segment::Segment;
use crate::verify::VerifyReport;

/// Name of the lock file inside a data directory.
pub const LOCK_FILE: &str = "LOCK";
/// Name of the metadata file inside a data directory.
pub const META_FILE: &str = "auditlog.meta";

/// Proof that an event was appended: its position and chain value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub event_id: String,
    /// Timestamp as stored, UTC nanoseconds.
    pub timestamp_ns: i64,
    /// The record's chain value `h_seq`.
    pub hash: Hash,
}

impl Receipt {
    /// `hmac-sha256:<hex>`, the form printed by the CLI and returned by queries.
    pub fn hash_string(&self) -> String {
        format!("hmac-sha256:{}", crate::chain::hex(&self.hash))
    }
}

/// Summary of a log for `stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub segments: usize,
    /// Segment files relative to the data directory, oldest first.
    pub segment_files: Vec<String>,
    /// Bytes of segment files on disk (the active segment is preallocated).
    pub bytes: u64,
    /// Bytes of headers, records and footers actually written.
    pub data_bytes: u64,
    /// Bytes of index side files on disk.
    pub index_file_bytes: u64,
    /// Heap bytes of the indexes currently in memory (the active segment's, and sealed
    /// segments' once a query has loaded them).
    pub index_memory_bytes: u64,
    pub log_id: String,
    /// The last retention run (from `policy.log`), with what it removed.
    pub last_retention: Option<crate::RetentionRun>,
    /// Legal holds in force.
    pub holds: Vec<crate::Hold>,
    pub read_only: bool,
    pub durable_seq: Option<u64>,
    /// Group-commit syncs by this process, and the records they made durable
    /// (`commit_records / commits` is the records per sync).
    pub commits: u64,
    pub commit_records: u64,
}

/// An audit log. Cheap to clone; every clone is the same log. `Send + Sync`.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
    /// Closes the log (stops the worker, syncs, final checkpoint, releases the lock) when the
    /// last clone is dropped, on the dropping thread.
    _guard: Arc<CloseGuard>,
}

struct CloseGuard(Arc<Inner>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if !self.0.read_only {
            writer::close(&self.0);
        }
        self.0.follow.close();
    }
}

impl Log {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Log {
        Log {
            _guard: Arc::new(CloseGuard(inner.clone())),
            inner,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) chain: Chain,
    pub(crate) log_id: [u8; 16],
    pub(crate) read_only: bool,
    /// Held for its `flock`; released by the kernel when the file closes or the process dies.
    _lock: Option<File>,
    /// Readers' view: every segment, oldest first; the last one is the active one.
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    pub(crate) writer: Mutex<Option<writer::WriterState>>,
    pub(crate) sync: writer::SyncState,
    pub(crate) poison: Poison,
    pub(crate) worker: Mutex<Option<worker::WorkerHandle>>,
    pub(crate) spare: Mutex<Option<writer::Spare>>,
    /// For read-only opens: checkpoints read before the segments were loaded.
    pub(crate) ro_checkpoints: crate::checkpoint::CheckpointLog,
    pub(crate) recovery: RecoveryReport,
    /// Seq of the last checkpoint written by this process (u64::MAX = none).
    pub(crate) last_checkpoint_seq: AtomicU64,
    /// Serializes retention, compaction, redaction and holds.
    pub(crate) maintenance: Mutex<()>,
    /// The policy log (retention runs, legal holds) as read at open and appended since.
    pub(crate) policy: Mutex<crate::retention::policy::PolicyLog>,
    /// Wakes [`Subscription`]s when records are appended or synced.
    pub(crate) follow: follow::Notify,
    /// Records are staged that readers cannot see yet (`WritePath::Staged`).
    pub(crate) unpublished: AtomicBool,
    /// The worker was asked to publish staged records within a millisecond.
    pub(crate) publish_armed: AtomicBool,
    /// Counts the writer's publications of staged records.
    pub(crate) publish_gen: AtomicU64,
    /// Key queues of sealed segments' active indexes, emptied, for the next segments' (their
    /// memory is already faulted in).
    pub(crate) index_buffers: Mutex<Vec<Vec<u8>>>,
    /// A forward-secure writer's epoch key and seal state (`crate::fss`); unset otherwise.
    pub(crate) fss: std::sync::OnceLock<crate::fss::FssWriter>,
    /// A reader's forward-secure epoch keys, derived from the initial key on first use.
    pub(crate) fss_keys: Mutex<crate::fss::ReaderKeys>,
    /// Read-only opens: when the segments were (re)loaded, UTC ns (0 for a writer).
    pub(crate) loaded_ns: AtomicI64,
    /// The Merkle tiles written past the stored tree, between durability rounds.
    pub(crate) merkle: Mutex<Option<crate::tiles::TileWriter>>,
}

impl Inner {
    /// Makes records the writer has staged visible to readers (they see every append that
    /// returned before they asked). Never call it while holding the writer lock.
    pub(crate) fn publish_pending(&self) {
        if self.unpublished.load(Ordering::Acquire) {
            if let Some(w) = self.writer.lock().as_mut() {
                // A failure poisons the log; readers still see what was published before.
                let _ = writer::publish(self, w);
            }
        }
    }

    /// The segments as readers see them, after [`publish_pending`](Self::publish_pending).
    pub(crate) fn segments_snapshot(&self) -> Vec<Arc<Segment>> {
        self.publish_pending();
        self.segments.read().clone()
    }

    /// What index side files are authenticated with: this log's key and id.
    pub(crate) fn index_auth(&self) -> crate::index::IndexAuth<'_> {
        crate::index::IndexAuth {
            chain: &self.chain,
            log_id: &self.log_id,
        }
    }
}

pub(crate) fn writer_append(inner: &Arc<Inner>, e: &Event) -> Result<Receipt> {
    writer::append_one(inner, e)
}

pub(crate) use writer::publish;
pub(crate) use writer::take_leaves as take_merkle_leaves;
pub(crate) use writer::WriterState;

pub(crate) fn roll_for_maintenance(inner: &Inner, w: &mut writer::WriterState) -> Result<()> {
    writer::roll(inner, w, 0)
}

/// Waits until the worker has finished everything queued so far (seals included).
pub(crate) fn worker_barrier(inner: &Inner) -> Result<()> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    match inner.worker.lock().as_ref() {
        Some(wk) => wk.send(worker::Msg::Barrier(tx)),
        None => return Ok(()),
    }
    rx.recv()
        .map_err(|_| Error::Poisoned("the background worker stopped".into()))?;
    inner.poison.check()
}

pub(crate) fn next_seq_of(inner: &Inner) -> u64 {
    reader::next_seq(inner)
}

/// Set after a failed sync or write; every later write fails with the first error.
#[derive(Default)]
pub(crate) struct Poison {
    flag: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Poison {
    pub(crate) fn check(&self) -> Result<()> {
        if self.flag.load(Ordering::Acquire) {
            let r = self.reason.lock().clone().unwrap_or_default();
            return Err(Error::Poisoned(r));
        }
        Ok(())
    }

    pub(crate) fn set(&self, why: &Error) {
        let mut r = self.reason.lock();
        if r.is_none() {
            *r = Some(why.to_string());
        }
        self.flag.store(true, Ordering::Release);
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir` for writing. Takes the directory's lock,
    /// recovers the active segment (cutting and reporting a torn tail) and starts the
    /// background worker.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Log> {
        open::open_write(dir.as_ref(), opts)
    }

    /// Opens without taking the write lock and without recovering: for `verify`, `query` and
    /// `export` beside a running writer. Never writes to the directory.
    pub fn open_read_only(dir: impl AsRef<Path>, key: crate::HmacKey) -> Result<Log> {
        open::open_read_only(dir.as_ref(), Options::new(key))
    }

    /// Like [`open_read_only`](Self::open_read_only), with options: an auditor verifying a
    /// forward-secure log passes its initial key with
    /// [`Options::fss_initial_key`](crate::Options::fss_initial_key).
    pub fn open_read_only_with(dir: impl AsRef<Path>, opts: Options) -> Result<Log> {
        open::open_read_only(dir.as_ref(), opts)
    }

    /// The current forward-secure epoch of this writer (`None` for a plain log or a
    /// read-only open).
    pub fn forward_secure_epoch(&self) -> Option<u64> {
        crate::fss::current_epoch(&self.inner)
    }

    /// Appends one event. With `Durability::Sync` it returns once the record is durable.
    pub fn append(&self, event: &Event) -> Result<Receipt> {
        writer::append_one(&self.inner, event)
    }

    /// The largest encoded event this log accepts (`Options::max_event_bytes`).
    pub fn max_event_bytes(&self) -> usize {
        self.inner.opts.max_event_bytes
    }

    /// Appends one event given as a JSON line in the seed's shape (the same fields and rules
    /// as [`Event`]'s JSON). Parses with borrowed fields straight into the record: `details`
    /// is validated once and stored as the text it arrived as. The path of the CLI's
    /// `append`; faster than `serde_json::from_slice::<Event>` followed by `append`.
    pub fn append_json(&self, line: &[u8]) -> Result<Receipt> {
        writer::append_json(&self.inner, line)
    }

    /// Appends JSON lines in order, under one lock acquisition and (with `Sync`) one sync.
    /// Every line is checked before anything is written: a bad one fails the batch with
    /// [`Error::BadLine`] naming its 1-based position in `lines`, and nothing is appended.
    pub fn append_json_batch(&self, lines: &[&[u8]]) -> Result<Vec<Receipt>> {
        writer::append_json_batch(&self.inner, lines)
    }

    /// Checks one JSON line exactly as [`append_json`](Self::append_json) would, without
    /// writing anything: the error it would fail with (`InvalidEvent`, `EventTooLarge`, …),
    /// or `Ok` when it would be appended.
    pub fn check_json(&self, line: &[u8]) -> Result<()> {
        writer::prepare_json(&self.inner, line, &mut Default::default())
    }

    /// Appends events in order, under one lock acquisition and (with `Sync`) one sync.
    /// Validation happens before anything is written: an invalid event fails the whole batch.
    pub fn append_batch(&self, events: &[Event]) -> Result<Vec<Receipt>> {
        writer::append_batch(&self.inner, events)
    }

    /// Makes everything appended so far durable, whatever the durability setting.
    pub fn flush(&self) -> Result<()> {
        writer::sync_all(&self.inner)
    }

    /// Verifies every frame and the whole chain, and the directory's checkpoints. Never
    /// writes. `Err` only for I/O errors; tampering is reported in the `VerifyReport`.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(&[])
    }

    /// Like [`verify`](Self::verify), also checking externally kept checkpoints.
    pub fn verify_with(&self, external: &[Checkpoint]) -> Result<VerifyReport> {
        crate::verify::verify_log(&self.inner, external, None, true)
    }

    /// Like [`verify_with`](Self::verify_with); `check_indexes: false` skips authenticating
    /// the index side files (they are never trusted by queries either way).
    pub fn verify_with_options(
        &self,
        external: &[Checkpoint],
        check_indexes: bool,
    ) -> Result<VerifyReport> {
        crate::verify::verify_log(&self.inner, external, None, check_indexes)
    }

    /// Like [`verify_with`](Self::verify_with), calling `progress(records_done)` as it goes.
    pub fn verify_with_progress(
        &self,
        external: &[Checkpoint],
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<VerifyReport> {
        crate::verify::verify_log(&self.inner, external, Some(progress), true)
    }

    /// Makes everything durable and writes a signed checkpoint of the latest record; returns
    /// it for keeping elsewhere. On a read-only log it returns (and signs) the latest state
    /// without writing.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        writer::checkpoint(&self.inner)
    }

    /// Every record from `from_seq` on, in seq order, over a snapshot taken now.
    pub fn iter_from(&self, from_seq: u64) -> RecordIter {
        reader::iter_from(&self.inner, from_seq)
    }

    /// Follows the log from `from_seq` on: yields every durable record (see
    /// [`Follow::Durable`]) in seq order, then waits for new ones, across segment rolls.
    pub fn subscribe(&self, from_seq: u64) -> Subscription {
        self.subscribe_with(from_seq, Follow::Durable)
    }

    /// Like [`subscribe`](Self::subscribe), choosing which records are handed out.
    pub fn subscribe_with(&self, from_seq: u64, follow: Follow) -> Subscription {
        Subscription::new(self.inner.clone(), from_seq, follow)
    }

    /// Every record, in seq order, over a snapshot taken now.
    pub fn iter(&self) -> RecordIter {
        self.iter_from(0)
    }

    /// The record with this seq, if present.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        self.iter_from(seq)
            .next()
            .transpose()
            .map(|r| r.filter(|r| r.seq == seq))
    }

    /// Answers a query with one page of results in the seed's response shape. Each event
    /// carries its `seq` and `verification {hash, verified}` (its MAC rechecked).
    pub fn query(&self, q: &crate::Query) -> Result<crate::Page> {
        crate::query::run(&self.inner, q)
    }

    /// The record with this seq as a returned event (seed shape, its MAC rechecked in
    /// `verification`), or `None` when the log does not hold it.
    pub fn event_at(&self, seq: u64) -> Result<Option<crate::AuditLogEntry>> {
        crate::query::entry_at(&self.inner, seq, true)
    }

    /// The newest record whose `event_id` is `id`, its MAC rechecked. Event ids are the
    /// caller's strings and are not indexed: this scans the log newest first, decoding only
    /// each record's borrowed fields.
    pub fn find_event(&self, id: &str) -> Result<Option<crate::AuditLogEntry>> {
        crate::query::find_event_id(&self.inner, id, true)
    }

    /// The distinct values of each dimension (`event_type`, `action`, `status`, `severity`,
    /// `user_id`, `email`, `ip_address`, `resource_type`, `resource_id`) over the events `q`
    /// matches, with counts, most frequent first, at most `limit` values per dimension.
    pub fn facets(
        &self,
        q: &crate::Query,
        dimensions: &[&str],
        limit: usize,
    ) -> Result<Vec<crate::Facet>> {
        crate::query::facets(&self.inner, q, dimensions, limit)
    }

    /// Streams every event matching `q` (its filters and order; not its limit or cursor) to
    /// `out` as JSON Lines or CSV, in log order (`Order::Asc`) or reverse log order, in
    /// constant memory, rechecking each record's MAC. The summary says how many verified.
    pub fn export(
        &self,
        q: &crate::Query,
        format: crate::ExportFormat,
        out: &mut dyn std::io::Write,
    ) -> Result<crate::ExportSummary> {
        crate::export::export(&self.inner, q, format, out, None)
    }

    /// Like [`export`](Self::export), calling `progress(records_written)` as it goes.
    pub fn export_with_progress(
        &self,
        q: &crate::Query,
        format: crate::ExportFormat,
        out: &mut dyn std::io::Write,
        progress: &dyn Fn(u64),
    ) -> Result<crate::ExportSummary> {
        crate::export::export(&self.inner, q, format, out, Some(progress))
    }

    /// Applies the retention policy at `now`: removes whole sealed segments, oldest first,
    /// whose newest event is older than `retention_days` (and not under legal hold), after
    /// writing a signed record of what goes to `policy.log`; applies per-event-type content
    /// overrides. A no-op when `retention_days` is 0 and there are no overrides.
    pub fn apply_retention(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::RetentionReport> {
        crate::retention::apply(&self.inner, crate::event::to_nanos(&now)?, false, false)
    }

    /// What [`apply_retention`](Self::apply_retention) would do at `now`, without doing it.
    pub fn plan_retention(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::RetentionReport> {
        crate::retention::apply(&self.inner, crate::event::to_nanos(&now)?, true, false)
    }

    /// What [`compact`](Self::compact) would do at `now`, without doing it.
    pub fn plan_compaction(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<crate::RetentionReport> {
        crate::retention::apply(&self.inner, crate::event::to_nanos(&now)?, true, true)
    }

    /// Retention plus compaction: also rewrites the first remaining segment without its
    /// expired prefix (records stay in order, chain values unchanged).
    pub fn compact(&self, now: chrono::DateTime<chrono::Utc>) -> Result<crate::RetentionReport> {
        crate::retention::apply(&self.inner, crate::event::to_nanos(&now)?, false, true)
    }

    /// Moves sealed segments older than `archive_days` to the compressed archive tier.
    pub fn archive(&self, now: chrono::DateTime<chrono::Utc>) -> Result<crate::ArchiveReport> {
        crate::retention::archive(&self.inner, crate::event::to_nanos(&now)?, false)
    }

    /// What [`archive`](Self::archive) would move at `now`.
    pub fn plan_archive(&self, now: chrono::DateTime<chrono::Utc>) -> Result<crate::ArchiveReport> {
        crate::retention::archive(&self.inner, crate::event::to_nanos(&now)?, true)
    }

    /// Places a legal hold: nothing it covers is deleted or redacted until it is lifted.
    pub fn add_hold(&self, scope: crate::HoldScope, reason: &str) -> Result<crate::Hold> {
        crate::retention::add_hold(&self.inner, scope, reason)
    }

    /// Lifts a legal hold (recorded, with the reason).
    pub fn remove_hold(&self, id: &str, reason: &str) -> Result<()> {
        crate::retention::remove_hold(&self.inner, id, reason)
    }

    /// Legal holds in force.
    pub fn holds(&self) -> Vec<crate::Hold> {
        self.inner.policy.lock().active_holds()
    }

    /// The last retention run recorded in `policy.log`.
    pub fn last_retention_run(&self) -> Option<crate::RetentionRun> {
        self.inner.policy.lock().last_run().cloned()
    }

    /// Redacts one record's personal data (actor and details): its payload is replaced by its
    /// digest, a key-signed redaction marker and the remaining fields; the chain still
    /// verifies; the redaction is itself appended as an audit event.
    pub fn redact(&self, seq: u64, reason: &str) -> Result<crate::RedactReport> {
        crate::retention::redact(&self.inner, &[seq], reason, crate::RedactionScope::Personal)
    }

    /// Redacts several records with the given scope.
    pub fn redact_seqs(
        &self,
        seqs: &[u64],
        reason: &str,
        scope: crate::RedactionScope,
    ) -> Result<crate::RedactReport> {
        crate::retention::redact(&self.inner, seqs, reason, scope)
    }

    /// Seqs of every event of one actor, from the actor index.
    pub fn export_seqs_of_actor(&self, user_id: &str) -> Result<Vec<u64>> {
        crate::retention::seqs_of_actor(&self.inner, user_id)
    }

    /// Redacts every event of one actor (a data subject's erasure request) in one call.
    pub fn redact_actor(&self, user_id: &str, reason: &str) -> Result<crate::RedactReport> {
        let seqs = crate::retention::seqs_of_actor(&self.inner, user_id)?;
        if seqs.is_empty() {
            return Err(Error::InvalidQuery {
                param: "user_id".into(),
                message: format!("no events of actor {user_id:?} in the log"),
            });
        }
        crate::retention::redact(&self.inner, &seqs, reason, crate::RedactionScope::Personal)
    }

    /// Counts and files.
    pub fn stats(&self) -> Result<Stats> {
        reader::stats(&self.inner)
    }

    /// What recovery found and did when this log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Hex of this log's random 16-byte id.
    pub fn log_id(&self) -> String {
        crate::chain::hex(&self.inner.log_id)
    }

    #[cfg(test)]
    pub(crate) fn inner_segments(&self) -> Vec<Arc<Segment>> {
        self.inner.segments_snapshot()
    }

    /// A compliance report over the request's date range (see [`crate::report`]).
    pub fn report(&self, req: &crate::ReportRequest) -> Result<crate::Report> {
        crate::report::generate(self, req)
    }

    pub(crate) fn inner_ref(&self) -> &Inner {
        &self.inner
    }

    /// On a read-only handle, rereads the segment files' tail so that records and segments
    /// a writer process appended since the open become visible (records are validated by
    /// their frame CRCs, a torn tail is left out until it is whole, and readers recheck each
    /// record's chained MAC). A no-op on a writable handle. Subscriptions on a read-only
    /// handle do this on their own when caught up.
    pub fn refresh(&self) -> Result<()> {
        if self.inner.read_only {
            open::refresh_read_only(&self.inner)?;
        }
        Ok(())
    }

    /// Seq the next append will get.
    pub fn next_seq(&self) -> u64 {
        reader::next_seq(&self.inner)
    }

    /// Makes every record appended so far durable and extends the Merkle tree's tiles
    /// (`merkle/` in the data directory, see `auditlog::tiles`) to cover them; returns the
    /// stored tree. Not on the append path: call it before signing a tree checkpoint.
    pub fn merkle_sync(&self) -> Result<crate::tiles::TreeState> {
        if self.inner.read_only {
            return Err(Error::ReadOnly);
        }
        let n = self.next_seq();
        self.flush()?;
        crate::tiles::sync(&self.inner, n, crate::tiles::Round::Now)
    }

    /// What the Merkle leaf of record `seq` commits to: `(timestamp_ns, payload digest)`
    /// (see `auditlog::merkle::leaf_bytes`).
    pub fn merkle_leaf(&self, seq: u64) -> Result<(i64, Hash)> {
        let mut out = None;
        crate::tiles::leaf_fields(&self.inner, seq, seq + 1, |_, ts, d| {
            out = Some((ts, d));
            Ok(())
        })?;
        out.ok_or_else(|| Error::Transparency(format!("record {seq} is not in the log")))
    }
}
