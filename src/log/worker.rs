//! The background worker: seals rolled segments, keeps a preallocated spare ready, syncs for
//! `Durability::Interval`, writes periodic checkpoints and rolls segments that grew old. It
//! never runs on the append path.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::options::Durability;
use super::writer::{self, Active, Spare};
use super::Inner;
use crate::chain::{Chain, Hash};
use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::event::now_nanos;
use crate::format::Footer;
use crate::mmap::ReadMap;
use crate::segment::{self, Segment, SegmentData};

pub(crate) enum Msg {
    Seal(SealJob),
    PrepareSpare(u64),
    Checkpoint,
    /// Sync what was written so far (sent every few MiB without `Durability::Sync`).
    Flush,
    /// Index the keys queued for the active segment (sent every few MiB of records).
    IndexKeys,
    /// Records are staged: publish them within [`PUBLISH_DELAY`] unless the writer does first.
    Publish,
    /// Replies once everything queued before it is done.
    Barrier(crossbeam_channel::Sender<()>),
    Shutdown,
}

/// Everything needed to seal a segment, even after the log itself is gone.
pub(crate) struct SealJob {
    file: Arc<File>,
    path: PathBuf,
    seg: Arc<Segment>,
    footer: Footer,
}

impl SealJob {
    pub(crate) fn from_active(a: &Active, last_mac: Hash) -> SealJob {
        SealJob {
            file: a.file.clone(),
            path: a.path.clone(),
            seg: a.seg.clone(),
            footer: Footer {
                count: a.count,
                first_seq: a.first_seq,
                last_seq: a.first_seq + a.count - 1,
                min_ts: a.min_ts,
                max_ts: a.max_ts,
                last_mac,
                records_end: a.offset as u64,
                sealed_ns: 0,
            },
        }
    }
}

pub(crate) struct WorkerHandle {
    tx: Sender<Msg>,
    join: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    pub(crate) fn send(&self, m: Msg) {
        // The worker only exits on Shutdown, so a send can only fail during teardown.
        let _ = self.tx.send(m);
    }

    /// Finishes queued work and stops the thread.
    pub(crate) fn shutdown(mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(j) = self.join.take() {
            if j.thread().id() != std::thread::current().id() {
                let _ = j.join();
            }
        }
    }
}

struct Ctx {
    dir: PathBuf,
    chain: Chain,
    log_id: [u8; 16],
    inner: Arc<Inner>,
    /// The bytes of the last index file written at a seal, kept for the next one.
    index_file: std::cell::RefCell<Vec<u8>>,
}

pub(crate) fn start(inner: &Arc<Inner>) -> Result<WorkerHandle> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let ctx = Ctx {
        dir: inner.dir.clone(),
        chain: inner.chain.clone(),
        log_id: inner.log_id,
        inner: inner.clone(),
        index_file: std::cell::RefCell::new(Vec::new()),
    };
    let join = std::thread::Builder::new()
        .name("auditlog-worker".into())
        .spawn(move || run(ctx, rx))
        .map_err(|e| Error::io("starting worker thread for", &inner.dir, e))?;
    Ok(WorkerHandle {
        tx,
        join: Some(join),
    })
}

/// How long staged records may wait for the writer to publish them itself (it does once 256
/// KiB are staged): the longest a reader in another process waits to see a record.
pub(crate) const PUBLISH_DELAY: Duration = Duration::from_millis(1);

fn tick_of(inner: &Inner) -> Duration {
    let mut t = Duration::from_secs(1).min(inner.opts.checkpoint_interval);
    if let Durability::Interval(d) = inner.opts.durability {
        t = t.min(d);
    }
    t.max(Duration::from_millis(1))
}

fn run(ctx: Ctx, rx: Receiver<Msg>) {
    let inner_for_timers = ctx.inner.clone();
    let tick = tick_of(&ctx.inner);
    let mut timers = Timers {
        last_checkpoint: Instant::now(),
        last_sync: Instant::now(),
        last_retention: Instant::now(),
        last_tree: Instant::now(),
    };
    // When the worker publishes staged records, and the writer's publication count then:
    // if the writer published in the meantime, its records are at most one delay old and the
    // worker waits one more delay rather than take the lock for a few records.
    let mut publish_at: Option<(Instant, u64)> = None;
    loop {
        let wait = publish_at.map_or(tick, |(at, _)| {
            at.saturating_duration_since(Instant::now()).min(tick)
        });
        let msg = match rx.recv_timeout(wait) {
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
        };
        // A panic in a job (a bug, or an injected fault) must not silently end the worker and
        // leave segments unsealed behind a log that still accepts appends: it poisons the log,
        // and the worker keeps serving the queue so that close() can still finish.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match msg {
                Some(Msg::Seal(job)) => match seal(&ctx, job) {
                    Ok(()) => extend_tree(&ctx.inner),
                    Err(e) => poison(&ctx, &e),
                },
                Some(Msg::PrepareSpare(size)) => prepare_spare(&ctx, size),
                Some(Msg::Checkpoint) => {
                    if periodic_checkpoint(&ctx.inner).is_ok() {
                        extend_tree(&ctx.inner);
                    }
                    timers.last_checkpoint = Instant::now();
                }
                Some(Msg::Flush) => {
                    if writer::sync_all(&ctx.inner).is_ok() {
                        extend_tree(&ctx.inner);
                    }
                }
                Some(Msg::IndexKeys) => index_active(&ctx),
                Some(Msg::Publish) => {
                    let gen = ctx.inner.publish_gen.load(Ordering::Acquire);
                    publish_at.get_or_insert((Instant::now() + PUBLISH_DELAY, gen));
                }
                Some(Msg::Barrier(reply)) => {
                    // Everything appended before the barrier is visible after it.
                    ctx.inner.publish_armed.store(false, Ordering::Release);
                    ctx.inner.publish_pending();
                    publish_at = None;
                    let _ = reply.send(());
                }
                Some(Msg::Shutdown) | None => {}
            }
            if let Some((at, gen)) = publish_at {
                let now = Instant::now();
                let gen_now = ctx.inner.publish_gen.load(Ordering::Acquire);
                if now >= at && gen_now != gen {
                    publish_at = Some((now + PUBLISH_DELAY, gen_now));
                } else if now >= at {
                    publish_at = None;
                    // Cleared first: an append after this point arms the timer again.
                    ctx.inner.publish_armed.store(false, Ordering::Release);
                    ctx.inner.publish_pending();
                }
            }
            // Timed work runs after every wake-up, so a steady stream of messages cannot
            // starve it.
            timers.run_due(&inner_for_timers);
        }));
        if let Err(panic) = step {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            poison(
                &ctx,
                &Error::io(
                    "background work on",
                    &ctx.dir,
                    std::io::Error::other(format!("worker panicked: {what}")),
                ),
            );
        }
    }
}

struct Timers {
    last_checkpoint: Instant,
    last_sync: Instant,
    last_retention: Instant,
    last_tree: Instant,
}

impl Timers {
    fn run_due(&mut self, inner: &Arc<Inner>) {
        if let Durability::Interval(d) = inner.opts.durability {
            if self.last_sync.elapsed() >= d {
                let _ = writer::sync_all(inner);
                self.last_sync = Instant::now();
            }
        }
        if self.last_checkpoint.elapsed() >= inner.opts.checkpoint_interval {
            if periodic_checkpoint(inner).is_ok() {
                extend_tree(inner);
            }
            self.last_checkpoint = Instant::now();
        }
        roll_if_old(inner);
        // A durability round of the tiles comes due even when no seal or flush extends them.
        if self.last_tree.elapsed() >= Duration::from_secs(1) {
            extend_tree(inner);
            self.last_tree = Instant::now();
        }
        crate::fss::tick(inner);
        if let Some(every) = inner.opts.retention_interval {
            if self.last_retention.elapsed() >= every {
                self.last_retention = Instant::now();
                // The outcome is recorded in policy.log (and shown by `stats`); an error
                // here leaves everything in place and is retried at the next interval.
                crate::retention::scheduled(inner, now_nanos());
            }
        }
    }
}

fn poison(ctx: &Ctx, e: &Error) {
    ctx.inner.poison.set(e);
}

/// Writes a checkpoint if records arrived since the last one.
/// With `Options::merkle_tree`: extends the tiles to the durable records, and makes them
/// durable (writes the `tree` file) when a round is due (`tiles::ROUND_INTERVAL`,
/// `tiles::ROUND_FILES`). A failure (a full disk, a gap left by retention) leaves the stored
/// tree where it was; the next extension, or `Log::merkle_sync`, retries and reports it.
fn extend_tree(inner: &Inner) {
    if inner.opts.merkle_tree {
        let durable = inner.sync.durable.load(Ordering::Acquire);
        let _ = crate::tiles::sync(inner, durable, crate::tiles::Round::IfDue);
    }
}

fn periodic_checkpoint(inner: &Inner) -> Result<()> {
    let last = inner
        .writer
        .lock()
        .as_ref()
        .and_then(|w| w.next_seq.checked_sub(1));
    match last {
        Some(l) if inner.last_checkpoint_seq.load(Ordering::Acquire) != l => {
            writer::checkpoint(inner).map(|_| ())
        }
        _ => Ok(()),
    }
}

fn roll_if_old(inner: &Inner) {
    let age = inner.opts.segment_max_age;
    let mut g = inner.writer.lock();
    let Some(w) = g.as_mut() else { return };
    let age_ns = now_nanos().saturating_sub(w.active.created_ns);
    if w.active.count > 0 && age_ns >= 0 && Duration::from_nanos(age_ns as u64) >= age {
        if let Err(e) = writer::roll(inner, w, 0) {
            inner.poison.set(&e);
        }
    }
}

fn prepare_spare(ctx: &Ctx, size: u64) {
    let inner = &ctx.inner;
    if inner.spare.lock().as_ref().is_some_and(|s| s.size == size) {
        return;
    }
    let path = ctx.dir.join(format!("next-{}.prealloc", now_nanos()));
    // A failure here (full disk) is not fatal: the next roll creates its segment itself and
    // reports the error on the append path.
    if let Ok(file) = segment::preallocate(&path, size, inner.opts.zero_fill()) {
        if let Some(old) = inner.spare.lock().replace(Spare { path, file, size }) {
            let _ = crate::fsio::remove("leftover.remove", &old.path);
        }
    }
}

/// Moves the keys the writer queued for the active segment into its index, off the append
/// path: the appender then copies keys into a small queue whose memory stays faulted in, and
/// a seal or a query finds most of the index already built. Derived data: a failure here
/// (a segment truncated underneath, say) is left for the query or the seal to report.
fn index_active(ctx: &Ctx) {
    let seg = match ctx.inner.writer.lock().as_ref() {
        Some(w) => w.active.seg.clone(),
        None => return,
    };
    let auth = crate::index::IndexAuth {
        chain: &ctx.chain,
        log_id: &ctx.log_id,
    };
    let _ = seg.with_index(auth, |_| ());
}

/// Footer, trim, checkpoint, directory sync; then readers switch to an immutable map.
fn seal(ctx: &Ctx, mut job: SealJob) -> Result<()> {
    job.footer.sealed_ns = now_nanos();
    segment::write_footer_and_trim(&job.file, &job.path, &job.footer)?;
    let cp = Checkpoint::sign(
        &ctx.chain,
        &ctx.log_id,
        job.footer.last_seq,
        &job.footer.last_mac,
        now_nanos(),
    );
    // The seal's checkpoint is a convenience (the next one covers these records too): a
    // failure to write it, on a full disk say, must not stop the log.
    let _ = checkpoint::append(&ctx.dir, &cp);
    segment::sync_dir(&ctx.dir)?;
    let inner = &ctx.inner;
    // The index is derived data: a failure to build or save it never fails the seal (a
    // missing side file is rebuilt on first use).
    let index = match &job.seg.index {
        crate::index::Slot::Active(a) => {
            if a.needs_decode() {
                // Records that were in the segment at open: from a side file a clean close
                // saved, when it still matches, rather than decoded.
                job.seg.seed_active_index(crate::index::IndexAuth {
                    chain: &ctx.chain,
                    log_id: &ctx.log_id,
                });
            }
            let idx = a.seal(job.seg.bytes()).ok();
            let mut spare = inner.index_buffers.lock();
            for buf in a.take_buffers() {
                if spare.len() < 4 {
                    spare.push(buf);
                }
            }
            idx
        }
        crate::index::Slot::Lazy(_) => None,
    };
    let slot = match index {
        Some(idx) => {
            let mut bytes = ctx.index_file.borrow_mut();
            crate::index::encode_file_into(
                &mut bytes,
                &idx,
                job.footer.records_end,
                &job.footer.last_mac,
                crate::index::IndexAuth {
                    chain: &ctx.chain,
                    log_id: &ctx.log_id,
                },
            );
            let name = job.path.with_extension(crate::index::INDEX_EXT);
            let name = name
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let _ = segment::write_atomic("index.write", &ctx.dir, &name, &bytes);
            crate::index::Slot::ready(idx)
        }
        None => crate::index::Slot::lazy(),
    };
    let map = ReadMap::new(&job.file).map_err(|e| Error::io("mapping", &job.path, e))?;
    let sealed = Arc::new(Segment {
        path: job.path.clone(),
        header: job.seg.header,
        footer: Some(job.footer),
        data: SegmentData::Sealed(map),
        records_end: job.footer.records_end as usize,
        index: slot,
        index_writable: true,
    });
    let mut segs = inner.segments.write();
    if let Some(slot) = segs.iter_mut().find(|s| Arc::ptr_eq(s, &job.seg)) {
        *slot = sealed;
    }
    Ok(())
}
