//! The append path: validation and encoding outside the lock; seq, MAC, copy and publish
//! inside it; group commit after it.

use std::cell::RefCell;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::options::{Durability, WritePath};
use super::worker::Msg;
use super::{Inner, Receipt};
use crate::chain::{digest, Hash};
use crate::checkpoint::{self, Checkpoint};
use crate::codec;
use crate::error::{Error, Result};
use crate::event::{now_nanos, to_nanos, Event};
use crate::format::{
    encode_frame_into, frame_len, SegmentHeader, FOOTER_LEN, FORMAT_VERSION, HEADER_LEN,
};
use crate::fsio;
use crate::mmap::SharedMap;
use crate::segment::{self, Segment, SegmentData};

/// The active segment as the writer holds it.
pub(crate) struct Active {
    pub(crate) seg: Arc<Segment>,
    pub(crate) map: Arc<SharedMap>,
    pub(crate) file: Arc<File>,
    pub(crate) path: PathBuf,
    pub(crate) first_seq: u64,
    pub(crate) created_ns: i64,
    /// Write offset; equals the map's committed length between appends.
    pub(crate) offset: usize,
    pub(crate) count: u64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
}

/// Writer state, behind `Inner::writer`.
pub(crate) struct WriterState {
    pub(crate) active: Active,
    pub(crate) next_seq: u64,
    pub(crate) prev: Hash,
    pub(crate) since_checkpoint: u64,
    pub(crate) frame_buf: Vec<u8>,
    /// Rolled segments not yet synced (non-`Sync` durabilities defer that to the sealer);
    /// a sync leader syncs them before the active segment, so a checkpoint never covers an
    /// unsynced record.
    pub(crate) unsynced: Vec<(Arc<File>, PathBuf)>,
    /// Whether the worker was asked to prepare the next segment's file yet. A reserved spare
    /// (`fallocate`) is asked for at every roll (the first roll after open reserves its own
    /// file, a fraction of a millisecond); a zero-filled one once the active
    /// segment is half full, so that its writes do not compete with a freshly opened log.
    pub(crate) spare_asked: bool,
    /// Index keys of records written but not yet published: `[offset u32][len u32][keys]`...
    pub(crate) staged: Vec<u8>,
    /// The staging file (`WritePath::Staged`): records written but not yet in the segment
    /// file.
    pub(crate) staging: Option<super::staging::Staging>,
    /// With `Options::merkle_tree`: the leaf fields (timestamp, payload digest) of the records
    /// from seq `.0` on that the tiles do not cover yet.
    pub(crate) leaves: Option<(u64, Vec<(i64, Hash)>)>,
}

/// Leaf fields the writer keeps for the tree at most; beyond, it stops keeping them (the tree
/// is then extended from the records themselves) until the next extension drains the queue.
const MAX_QUEUED_LEAVES: usize = 1 << 22;

/// The queued leaf fields of records `[from, to)` (as far as queued), dropping every queued
/// entry below `to`; `None` if the queue does not start at or before `from`.
pub(crate) fn take_leaves(inner: &Inner, from: u64, to: u64) -> Option<Vec<(i64, Hash)>> {
    let mut g = inner.writer.lock();
    let w = g.as_mut()?;
    let (first, q) = w.leaves.as_mut()?;
    let upto = (to.saturating_sub(*first) as usize).min(q.len());
    let taken: Vec<(i64, Hash)> = q.drain(..upto).collect();
    let start = *first;
    *first += upto as u64;
    if start > from {
        return None;
    }
    let skip = (from - start) as usize;
    Some(taken.into_iter().skip(skip).collect())
}

/// Without `Durability::Sync`, the worker syncs the active segment every this many bytes, so
/// dirty pages never pile up for the roll's sync.
const FLUSH_EVERY: usize = 8 << 20;
/// How often (bytes of records) the worker indexes the keys queued for the active segment,
/// so that the queue the appender copies them into stays small and in memory that is
/// already faulted in, and sealing finds the index built.
const INDEX_EVERY: usize = 4 << 20;

/// A preallocated, header-less file the worker keeps ready for the next roll.
pub(crate) struct Spare {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) size: u64,
}

/// Group-commit state: `durable` is the first seq not yet known durable. At most one thread
/// (the leader) syncs at a time; the others wait on `done` and re-check `durable`, so a
/// waiter covered by the leader's sync returns without ever syncing itself.
pub(crate) struct SyncState {
    pub(crate) durable: AtomicU64,
    pub(crate) state: Mutex<SyncCursor>,
    pub(crate) done: Condvar,
    /// Under `Durability::Sync`, the thread that leads every sync (`super::flusher`).
    pub(crate) flusher: super::flusher::Flusher,
    /// Group-commit syncs that made records durable, and how many records they made durable
    /// (the roll's syncs are not counted).
    pub(crate) commits: AtomicU64,
    pub(crate) committed_records: AtomicU64,
}

pub(crate) struct SyncCursor {
    pub(crate) leader: bool,
    pub(crate) seg_first_seq: u64,
    pub(crate) synced_offset: usize,
}

impl SyncState {
    pub(crate) fn new(durable: u64, seg_first_seq: u64, synced_offset: usize) -> Self {
        SyncState {
            durable: AtomicU64::new(durable),
            state: Mutex::new(SyncCursor {
                leader: false,
                seg_first_seq,
                synced_offset,
            }),
            done: Condvar::new(),
            flusher: Default::default(),
            commits: AtomicU64::new(0),
            committed_records: AtomicU64::new(0),
        }
    }
}

/// Events ready to be written (validated, id assigned, encoded, digested, index keys
/// packed), in order: each one's payload and then its packed keys back to back in `bytes`,
/// so that preparing a batch allocates a buffer per part, not two per event.
#[derive(Default)]
pub(crate) struct Prepared {
    bytes: Vec<u8>,
    items: Vec<PreparedItem>,
}

struct PreparedItem {
    payload_len: usize,
    keys_len: usize,
    digest: Hash,
    ts: i64,
    event_id: String,
}

impl Prepared {
    fn with_capacity(events: usize) -> Prepared {
        Prepared {
            bytes: Vec::with_capacity(events * 512),
            items: Vec::with_capacity(events),
        }
    }

    /// Adds the event encoded in `s`.
    fn push(&mut self, s: &Scratch, digest: Hash, ts: i64, event_id: String) {
        self.bytes.extend_from_slice(&s.payload);
        self.bytes.extend_from_slice(&s.keys);
        self.items.push(PreparedItem {
            payload_len: s.payload.len(),
            keys_len: s.keys.len(),
            digest,
            ts,
            event_id,
        });
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Validation, timestamp and id: everything about an event that needs no encoding.
fn admit(e: &Event, index: Option<usize>) -> Result<(i64, String)> {
    let at = |err: Error| -> Error {
        match (err, index) {
            (Error::InvalidEvent(m), Some(i)) => {
                Error::InvalidEvent(format!("event {i} of the batch: {m}"))
            }
            (other, _) => other,
        }
    };
    e.validate().map_err(at)?;
    let ts = match &e.timestamp {
        Some(t) => to_nanos(t).map_err(at)?,
        None => now_nanos(),
    };
    let event_id = match &e.event_id {
        Some(id) => id.clone(),
        None => uuid::Uuid::now_v7().to_string(),
    };
    Ok((ts, event_id))
}

fn check_size(inner: &Inner, payload: &[u8]) -> Result<()> {
    if payload.len() > inner.opts.max_event_bytes {
        return Err(Error::EventTooLarge {
            size: payload.len(),
            limit: inner.opts.max_event_bytes,
        });
    }
    Ok(())
}

/// Encodes `f`, checks its size, digests it and packs its index keys into `s`.
fn encode(inner: &Inner, f: &codec::Fields<'_>, ts: i64, s: &mut Scratch) -> Result<Hash> {
    codec::encode_fields_into(f, &mut s.payload)?;
    check_size(inner, &s.payload)?;
    crate::index::pack_keys(&mut s.keys, f, ts);
    Ok(digest(&s.payload))
}

fn prepare(inner: &Inner, e: &Event, index: usize, out: &mut Prepared) -> Result<()> {
    let (ts, event_id) = admit(e, Some(index))?;
    SCRATCH.with(|cell| {
        let s = &mut *cell.borrow_mut();
        let digest = encode(inner, &codec::Fields::of_event(e, &event_id), ts, s)?;
        out.push(s, digest, ts, event_id);
        Ok(())
    })
}

/// A JSON line's fields, checked, with its timestamp and id resolved. `id_buf` holds a
/// generated id; `details_buf` details that had to be compacted to one line.
fn admit_json<'a>(
    ev: &'a crate::event::EventRef<'a>,
    id_buf: &'a mut String,
    details_buf: &'a mut String,
) -> Result<(codec::Fields<'a>, i64)> {
    let (ts, details) = ev.check(details_buf)?;
    let event_id: &str = match &ev.event_id {
        Some(id) => id,
        None => {
            *id_buf = uuid::Uuid::now_v7().to_string();
            id_buf
        }
    };
    let f = codec::Fields {
        event_id,
        event_type: &ev.event_type,
        action: &ev.action,
        status: ev.status.as_deref().unwrap_or("success"),
        severity: ev.severity.to_u8(),
        user_id: ev.actor.user_id.as_deref(),
        email: ev.actor.email.as_deref(),
        ip_address: ev.actor.ip_address,
        resource_type: ev.resource.as_ref().map(|r| r.kind.as_ref()),
        resource_id: ev.resource.as_ref().and_then(|r| r.id.as_deref()),
        details,
    };
    Ok((f, ts.unwrap_or_else(now_nanos)))
}

/// Prepares one JSON line onto `out`.
pub(crate) fn prepare_json(inner: &Inner, line: &[u8], out: &mut Prepared) -> Result<()> {
    let ev = crate::event::EventRef::parse(line)?;
    let (mut id_buf, mut details_buf) = (String::new(), String::new());
    let (f, ts) = admit_json(&ev, &mut id_buf, &mut details_buf)?;
    SCRATCH.with(|cell| {
        let s = &mut *cell.borrow_mut();
        let digest = encode(inner, &f, ts, s)?;
        out.push(s, digest, ts, f.event_id.to_string());
        Ok(())
    })
}

/// Per-thread encoding buffers for single appends.
#[derive(Default)]
struct Scratch {
    payload: Vec<u8>,
    keys: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Poisons the log if dropped while its thread unwinds from a panic: a panic in the middle
/// of writing (a bug, or an injected fault) may leave the writer's state out of step with
/// the file, so nothing more is appended in this process; reopening recovers.
struct PoisonOnUnwind<'a>(&'a Inner);

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison.set(&Error::io(
                "appending to",
                &self.0.dir,
                std::io::Error::other("a thread panicked while writing"),
            ));
        }
    }
}

/// Writes one record at the write offset (rolling first if it does not fit); does not
/// publish. On error, publishes what was written before it.
fn write_one(
    inner: &Inner,
    w: &mut WriterState,
    payload: &[u8],
    keys: &[u8],
    digest: &Hash,
    ts: i64,
) -> Result<(u64, Hash)> {
    let seq = w.next_seq;
    let mac = crate::fss::record_mac(inner, w, seq, ts, digest)?;
    let flen = frame_len(payload.len());
    if w.active.offset + flen + FOOTER_LEN > w.active.map.len() {
        // Readers must see every record of the old segment before it is handed to the sealer.
        publish(inner, w)?;
        roll(inner, w, flen)?;
    }
    let off = w.active.offset;
    let path = inner.opts.effective_write_path();
    let staged = path == WritePath::Staged && w.staging.as_ref().is_some_and(|s| s.holds(flen));
    if staged && !w.staging.as_ref().is_some_and(|s| s.fits(flen)) {
        publish(inner, w)?;
    }
    match path {
        WritePath::Staged if staged => {
            if let Err(e) = fsio::point("frame.copy") {
                let err = Error::io("writing record to", &w.active.path, e);
                inner.poison.set(&err);
                let _ = publish(inner, w);
                return Err(err);
            }
            let first = w.active.first_seq;
            let st = w.staging.as_mut().expect("checked above");
            encode_frame_into(st.slot(first, off, seq, flen), 0, seq, ts, payload, &mac);
            if let Err(err) = st.check() {
                inner.poison.set(&err);
                return Err(err);
            }
        }
        WritePath::Pwrite | WritePath::Staged => {
            // A frame larger than the staging file goes straight to the segment, after
            // everything staged before it.
            publish(inner, w)?;
            w.frame_buf.resize(flen, 0);
            encode_frame_into(&mut w.frame_buf, 0, seq, ts, payload, &mac);
            if let Err(e) = fsio::write_at("frame.write", &w.active.file, &w.frame_buf, off as u64)
            {
                let err = Error::io("writing record to", &w.active.path, e);
                inner.poison.set(&err);
                let _ = publish(inner, w);
                return Err(err);
            }
        }
        _ => {
            if let Err(e) = fsio::point("frame.copy") {
                let err = Error::io("writing record to", &w.active.path, e);
                inner.poison.set(&err);
                let _ = publish(inner, w);
                return Err(err);
            }
            w.active.map.write_with(off, flen, |dst| {
                encode_frame_into(dst, 0, seq, ts, payload, &mac)
            })
        }
    }
    if let Err(err) = check_active(&w.active.map, &w.active.file, &w.active.path, false) {
        // A store that faulted landed in memory that never reaches the file.
        inner.poison.set(&err);
        let _ = publish(inner, w);
        return Err(err);
    }
    // The index keys wait in `staged` until the record is published.
    w.staged.extend_from_slice(&(off as u32).to_le_bytes());
    w.staged
        .extend_from_slice(&(keys.len() as u32).to_le_bytes());
    w.staged.extend_from_slice(keys);
    w.active.offset += flen;
    w.active.count += 1;
    w.active.min_ts = w.active.min_ts.min(ts);
    w.active.max_ts = w.active.max_ts.max(ts);
    w.prev = mac;
    w.next_seq += 1;
    if let Some((first, q)) = w.leaves.as_mut() {
        if q.len() < MAX_QUEUED_LEAVES {
            q.push((ts, *digest));
        } else {
            // Too far behind: forget the queue, the tree reads these records back.
            q.clear();
            *first = w.next_seq;
        }
    }
    if w.active.offset / INDEX_EVERY != off / INDEX_EVERY {
        if let Some(wk) = inner.worker.lock().as_ref() {
            if inner.opts.durability != Durability::Sync
                && w.active.offset / FLUSH_EVERY != off / FLUSH_EVERY
            {
                wk.send(Msg::Flush);
            }
            wk.send(Msg::IndexKeys);
        }
    }
    if !w.spare_asked && w.active.offset > w.active.map.len() / 2 {
        w.spare_asked = true;
        if let Some(wk) = inner.worker.lock().as_ref() {
            wk.send(Msg::PrepareSpare(inner.opts.segment_bytes));
        }
    }
    Ok((seq, mac))
}

/// Writes the staged records to the segment file, makes every written record visible to
/// readers and hands their index keys to the active segment's index. A failed write poisons
/// the log (the staged records stay in the staging file, which the next open replays).
pub(crate) fn publish(inner: &Inner, w: &mut WriterState) -> Result<()> {
    if let Some(st) = w.staging.as_mut() {
        if st.len() > 0 {
            if let Err(e) =
                fsio::write_at("frame.write", &w.active.file, st.staged(), st.base() as u64)
            {
                let err = Error::io("writing record to", &w.active.path, e);
                inner.poison.set(&err);
                return Err(err);
            }
            st.clear();
            inner.publish_gen.fetch_add(1, Ordering::Release);
        }
    }
    let grew = w.active.map.committed().len() < w.active.offset;
    w.active.map.publish(w.active.offset);
    if !w.staged.is_empty() {
        if let crate::index::Slot::Active(idx) = &w.active.seg.index {
            idx.push(&w.staged);
        }
        w.staged.clear();
    }
    inner.unpublished.store(false, Ordering::Release);
    if grew && inner.opts.durability != Durability::Sync {
        inner.follow.bump();
    }
    Ok(())
}

/// Publishes the written records (staged ones once enough are staged; the rest within a
/// millisecond, or when a reader or a sync needs them) and counts them toward the next
/// checkpoint.
fn finish_locked(inner: &Inner, w: &mut WriterState, n: u64) -> Result<bool> {
    match &w.staging {
        Some(st) if st.len() < st.publish_at() => {
            if w.active.map.committed().len() < w.active.offset {
                inner.unpublished.store(true, Ordering::Release);
                if !inner.publish_armed.swap(true, Ordering::AcqRel) {
                    if let Some(wk) = inner.worker.lock().as_ref() {
                        wk.send(Msg::Publish);
                    }
                }
            }
        }
        _ => publish(inner, w)?,
    }
    w.since_checkpoint += n;
    let every = inner.opts.checkpoint_every;
    let want = every > 0 && w.since_checkpoint >= every;
    if want {
        w.since_checkpoint = 0;
    }
    Ok(want)
}

fn after_append(inner: &Inner, last_seq: u64, want_checkpoint: bool) -> Result<()> {
    if inner.opts.durability == Durability::Sync {
        sync_to(inner, last_seq)?;
    }
    if want_checkpoint {
        if let Some(wk) = inner.worker.lock().as_ref() {
            wk.send(Msg::Checkpoint);
        }
    }
    Ok(())
}

/// The single-event path: encodes into per-thread buffers, so it allocates only the
/// receipt's id.
pub(crate) fn append_one(inner: &Arc<Inner>, e: &Event) -> Result<Receipt> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    inner.poison.check()?;
    let (ts, event_id) = admit(e, None)?;
    let (seq, hash, want) = SCRATCH.with(|cell| -> Result<(u64, Hash, bool)> {
        let s = &mut *cell.borrow_mut();
        let d = encode(inner, &codec::Fields::of_event(e, &event_id), ts, s)?;
        write_locked(inner, &s.payload, &s.keys, &d, ts)
    })?;
    after_append(inner, seq, want)?;
    Ok(Receipt {
        seq,
        event_id,
        timestamp_ns: ts,
        hash,
    })
}

/// One JSON line (the seed's event shape), parsed with borrowed fields straight into the
/// payload: `details` is copied as the text it arrived as.
pub(crate) fn append_json(inner: &Arc<Inner>, line: &[u8]) -> Result<Receipt> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    inner.poison.check()?;
    let ev = crate::event::EventRef::parse(line)?;
    let (mut id_buf, mut details_buf) = (String::new(), String::new());
    let (f, ts) = admit_json(&ev, &mut id_buf, &mut details_buf)?;
    let (seq, hash, want) = SCRATCH.with(|cell| -> Result<(u64, Hash, bool)> {
        let s = &mut *cell.borrow_mut();
        let d = encode(inner, &f, ts, s)?;
        write_locked(inner, &s.payload, &s.keys, &d, ts)
    })?;
    after_append(inner, seq, want)?;
    Ok(Receipt {
        seq,
        event_id: f.event_id.to_string(),
        timestamp_ns: ts,
        hash,
    })
}

/// Writes one encoded record under the writer lock and publishes it.
fn write_locked(
    inner: &Inner,
    payload: &[u8],
    keys: &[u8],
    d: &Hash,
    ts: i64,
) -> Result<(u64, Hash, bool)> {
    let mut guard = inner.writer.lock();
    let w = guard.as_mut().ok_or(Error::ReadOnly)?;
    inner.poison.check()?;
    let _unwind = PoisonOnUnwind(inner);
    let (seq, mac) = write_one(inner, w, payload, keys, d, ts)?;
    let want = finish_locked(inner, w, 1)?;
    Ok((seq, mac, want))
}

pub(crate) fn append_batch(inner: &Arc<Inner>, events: &[Event]) -> Result<Vec<Receipt>> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    inner.poison.check()?;
    let mut prepared = Prepared::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        prepare(inner, e, i, &mut prepared)?;
    }
    write_prepared(inner, vec![prepared])
}

/// JSON lines in order, validated before anything is written: a bad line fails the batch
/// with `Error::BadLine` naming its 1-based position in `lines`.
pub(crate) fn append_json_batch(inner: &Arc<Inner>, lines: &[&[u8]]) -> Result<Vec<Receipt>> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    inner.poison.check()?;
    let prepare_part = |first: usize, part: &[&[u8]]| -> Result<Prepared> {
        let mut out = Prepared::with_capacity(part.len());
        for (i, l) in part.iter().enumerate() {
            prepare_json(inner, l, &mut out).map_err(|e| Error::BadLine {
                line: (first + i) as u64 + 1,
                message: match e {
                    Error::InvalidEvent(m) => m,
                    other => other.to_string(),
                },
            })?;
        }
        Ok(out)
    };
    let threads = prepare_threads(lines.len());
    let prepared = if threads <= 1 {
        vec![prepare_part(0, lines)?]
    } else {
        // Parsing, validation, encoding and the payload digest of each line depend on that
        // line alone: they run on several cores, and only the chain and the copy into the
        // segment stay in order under the lock. Parts are joined in order and each stops at
        // its first bad line, so the error names the first bad line of the batch.
        let per = lines.len().div_ceil(threads);
        // The first part is prepared on the calling thread: one spawn fewer per batch.
        let parts: Vec<Result<Prepared>> = std::thread::scope(|s| {
            let handles: Vec<_> = lines
                .chunks(per)
                .enumerate()
                .skip(1)
                .map(|(k, part)| {
                    let prepare_part = &prepare_part;
                    s.spawn(move || prepare_part(k * per, part))
                })
                .collect();
            let first = prepare_part(0, &lines[..per]);
            std::iter::once(first)
                .chain(handles.into_iter().map(|h| match h.join() {
                    Ok(r) => r,
                    Err(panic) => std::panic::resume_unwind(panic),
                }))
                .collect()
        });
        parts.into_iter().collect::<Result<Vec<_>>>()?
    };
    write_prepared(inner, prepared)
}

/// Lines below which a batch is prepared on the caller's thread alone: spawning costs tens of
/// microseconds, preparing a line about two.
const PARALLEL_PREPARE_MIN: usize = 512;

/// How many threads prepare a batch of `n` JSON lines.
fn prepare_threads(n: usize) -> usize {
    if n < PARALLEL_PREPARE_MIN {
        return 1;
    }
    // Asked once: `available_parallelism` reads the cgroup quota files on every call.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |c| c.get()));
    cores.min(4).min(n / (PARALLEL_PREPARE_MIN / 2)).max(1)
}

/// Writes prepared parts in order, under one lock acquisition.
fn write_prepared(inner: &Arc<Inner>, parts: Vec<Prepared>) -> Result<Vec<Receipt>> {
    let total: usize = parts.iter().map(Prepared::len).sum();
    if total == 0 {
        return Ok(Vec::new());
    }
    let mut receipts = Vec::with_capacity(total);
    let (last_seq, want) = {
        let mut guard = inner.writer.lock();
        let w = guard.as_mut().ok_or(Error::ReadOnly)?;
        inner.poison.check()?;
        let _unwind = PoisonOnUnwind(inner);
        for part in parts {
            let mut at = 0;
            for p in part.items {
                let payload = &part.bytes[at..at + p.payload_len];
                let keys = &part.bytes[at + p.payload_len..at + p.payload_len + p.keys_len];
                at += p.payload_len + p.keys_len;
                let (seq, mac) = match write_one(inner, w, payload, keys, &p.digest, p.ts) {
                    Ok(x) => x,
                    Err(e) if receipts.is_empty() => return Err(e),
                    Err(e) => {
                        let _ = publish(inner, w);
                        return Err(Error::BatchInterrupted {
                            appended: receipts,
                            source: Box::new(e),
                        });
                    }
                };
                receipts.push(Receipt {
                    seq,
                    event_id: p.event_id,
                    timestamp_ns: p.ts,
                    hash: mac,
                });
            }
        }
        let want = match finish_locked(inner, w, receipts.len() as u64) {
            Ok(want) => want,
            Err(e) => {
                return Err(Error::BatchInterrupted {
                    appended: receipts,
                    source: Box::new(e),
                })
            }
        };
        (w.next_seq - 1, want)
    };
    after_append(inner, last_seq, want)?;
    Ok(receipts)
}

/// Makes every record up to `seq` durable. Group commit: one leader syncs everything
/// written so far while later callers wait; when it finishes, every waiter it covered
/// returns and one of the rest becomes the next leader.
pub(crate) fn sync_to(inner: &Inner, seq: u64) -> Result<()> {
    if inner.sync.durable.load(Ordering::Acquire) > seq {
        return Ok(());
    }
    if let Some(r) = super::flusher::wait(inner, seq) {
        return r;
    }
    lead_or_wait(inner, seq)
}

/// One round of the flusher: syncs everything written so far.
pub(crate) fn flush_round(inner: &Inner) -> Result<()> {
    lead_or_wait(inner, u64::MAX)
}

/// Waits until `seq` is durable or no one leads, then leads a sync of everything written.
fn lead_or_wait(inner: &Inner, seq: u64) -> Result<()> {
    let (from, cursor_seg) = {
        let mut st = inner.sync.state.lock();
        loop {
            if inner.sync.durable.load(Ordering::Acquire) > seq {
                return Ok(());
            }
            inner.poison.check()?;
            if !st.leader {
                st.leader = true;
                break;
            }
            inner.sync.done.wait(&mut st);
        }
        (st.synced_offset, st.seg_first_seq)
    };
    // The leader must hand over even if it panics, or every later sync would wait forever.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _unwind = PoisonOnUnwind(inner);
        lead_sync(inner, from, cursor_seg)
    }));
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            inner.sync.state.lock().leader = false;
            inner.sync.done.notify_all();
            std::panic::resume_unwind(panic);
        }
    };
    let mut st = inner.sync.state.lock();
    st.leader = false;
    let outcome = match result {
        Ok((seg_first_seq, end, upto)) => {
            st.seg_first_seq = seg_first_seq;
            st.synced_offset = end;
            let before = inner.sync.durable.fetch_max(upto, Ordering::AcqRel);
            if upto > before {
                inner.sync.commits.fetch_add(1, Ordering::Relaxed);
                inner
                    .sync
                    .committed_records
                    .fetch_add(upto - before, Ordering::Relaxed);
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    drop(st);
    inner.sync.done.notify_all();
    inner.follow.bump();
    outcome
}

/// The leader's sync, outside every lock but the writer lock's brief snapshot.
fn lead_sync(inner: &Inner, synced_from: usize, synced_seg: u64) -> Result<(u64, usize, u64)> {
    let (map, file, path, first_seq, end, upto, unsynced) = {
        let mut g = inner.writer.lock();
        let w = g.as_mut().ok_or(Error::ReadOnly)?;
        // Staged records reach the segment file before the sync that acknowledges them.
        publish(inner, w)?;
        (
            w.active.map.clone(),
            w.active.file.clone(),
            w.active.path.clone(),
            w.active.first_seq,
            w.active.offset,
            w.next_seq,
            std::mem::take(&mut w.unsynced),
        )
    };
    if unsynced.is_empty() && upto <= inner.sync.durable.load(Ordering::Acquire) {
        // Nothing written since the last sync (or the roll's).
        return Ok((first_seq, end, upto));
    }
    for (f, p) in &unsynced {
        if let Err(e) = fsio::sync_data("append.sync", f) {
            let err = Error::io("syncing", p, e);
            inner.poison.set(&err);
            return Err(err);
        }
    }
    let from = if synced_seg == first_seq {
        synced_from.min(end)
    } else {
        0
    };
    let res = match inner.opts.effective_write_path() {
        WritePath::Pwrite | WritePath::Staged => fsio::sync_data("append.sync", &file),
        _ => fsio::msync("append.sync", &map, &file, from, end - from),
    };
    if let Err(e) = res {
        let err = Error::io("syncing", &path, e);
        inner.poison.set(&err);
        return Err(err);
    }
    // Records written to a map that faulted, or to a file someone cut below the map, are not
    // (all) in the file: none of them may be acknowledged. The size is compared only while
    // this map is still the active one, under the writer lock: sealing legitimately trims a
    // segment, and it happens only after a roll, which needs that lock.
    let checked = {
        let g = inner.writer.lock();
        let active = g.as_ref().is_some_and(|w| Arc::ptr_eq(&w.active.map, &map));
        check_active(&map, &file, &path, active)
    };
    if let Err(err) = checked {
        inner.poison.set(&err);
        return Err(err);
    }
    Ok((first_seq, end, upto))
}

/// `Err` if the active segment's map faulted (the file was truncated underneath it) or, with
/// `stat`, if the file is now shorter than the map (one `fstat`; `pwrite` would silently
/// extend a cut file with a hole where acknowledged records were).
fn check_active(map: &SharedMap, file: &File, path: &std::path::Path, stat: bool) -> Result<()> {
    let lost = |detail: String| Error::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        detail,
    };
    if let Some(off) = map.fault_offset() {
        return Err(lost(format!("the active segment file was truncated underneath the writer (a store or load through its map at byte {off} found no file data); records written since may be lost. Reopen the log and run `auditlog verify`")));
    }
    if stat {
        let len = file
            .metadata()
            .map_err(|e| Error::io("checking size of", path, e))?
            .len();
        if len < map.len() as u64 {
            return Err(lost(format!("the active segment file was truncated underneath the writer: it is {len} bytes, {} were preallocated; records written since may be lost. Reopen the log and run `auditlog verify`", map.len())));
        }
    }
    Ok(())
}

/// Syncs everything written so far.
pub(crate) fn sync_all(inner: &Inner) -> Result<()> {
    let next = match inner.writer.lock().as_ref() {
        Some(w) => w.next_seq,
        None => return Ok(()),
    };
    match next.checked_sub(1) {
        Some(last) => sync_to(inner, last),
        None => Ok(()),
    }
}

/// Replaces the active segment with a fresh one and hands the old one to the worker to seal.
/// Runs under the writer lock. `need` is the frame that did not fit.
pub(crate) fn roll(inner: &Inner, w: &mut WriterState, need: usize) -> Result<()> {
    let size = inner
        .opts
        .segment_bytes
        .max((HEADER_LEN + need + FOOTER_LEN) as u64);
    if w.active.count == 0 && w.active.map.len() as u64 >= size {
        return Ok(());
    }
    // The sealer reads the old segment's records from its file.
    publish(inner, w)?;
    let created_ns = now_nanos();
    let header = SegmentHeader {
        version: FORMAT_VERSION,
        flags: 0,
        log_id: inner.log_id,
        first_seq: w.next_seq,
        created_ns,
        prev_hash: w.prev,
    };
    let header = crate::fss::mark_header(inner, header);
    // Records of the old segment must be durable before the new segment (whose header
    // continues their chain) can be: otherwise a power loss could keep the new segment and
    // lose the end of the old one, leaving a chain that no longer links. Under `Sync` nearly
    // everything is synced already; otherwise the worker has been flushing the segment as it
    // filled (see `FLUSH_EVERY`), so this sync has little left to write.
    if w.active.count > 0 {
        fsio::sync_data_mapped("roll.sync", &w.active.file, &w.active.map).map_err(|e| {
            let err = Error::io("syncing", &w.active.path, e);
            inner.poison.set(&err);
            err
        })?;
        inner.sync.durable.fetch_max(w.next_seq, Ordering::AcqRel);
    }
    // An empty active segment too small for this frame is replaced, not sealed: the new file
    // takes its name by an atomic rename, so a failure here leaves the old one in place.
    let spare = match inner.spare.lock().take() {
        Some(s) if s.size == size => Some(s),
        Some(s) => {
            let _ = fsio::remove("segment.install", &s.path);
            None
        }
        None => None,
    };
    let new = create_segment(inner, &header, size, spare)?;
    let old = std::mem::replace(&mut w.active, new);
    {
        let mut segs = inner.segments.write();
        segs.retain(|s| !Arc::ptr_eq(s, &old.seg) || old.count > 0);
        segs.push(w.active.seg.clone());
    }
    w.spare_asked = false;
    if let Some(wk) = inner.worker.lock().as_ref() {
        // A reserved (not zero-filled) spare is cheap: ask for the next one at once, ahead of
        // the seal, so that it is ready long before the next roll.
        if !inner.opts.zero_fill() {
            w.spare_asked = true;
            wk.send(Msg::PrepareSpare(inner.opts.segment_bytes));
        }
        if old.count > 0 {
            wk.send(Msg::Seal(super::worker::SealJob::from_active(&old, w.prev)));
        }
    }
    Ok(())
}

/// Creates and maps a new active segment with `header`, using `spare` if given.
pub(crate) fn create_segment(
    inner: &Inner,
    header: &SegmentHeader,
    size: u64,
    spare: Option<Spare>,
) -> Result<Active> {
    let path = inner.dir.join(segment::segment_name(header.first_seq));
    let hdr = header.encode();
    let file = match spare {
        Some(s) => {
            fsio::write_at("segment.header", &s.file, &hdr, 0)
                .and_then(|_| fsio::sync_data("segment.header", &s.file))
                .and_then(|_| fsio::rename("segment.install", &s.path, &path))
                .map_err(|e| Error::io("installing segment", &path, e))?;
            s.file
        }
        None => {
            // Filled and given its header under a temporary name, so that a crash never
            // leaves a header-less file under a segment name.
            let tmp = inner
                .dir
                .join(format!("{}.tmp", segment::segment_name(header.first_seq)));
            let _ = fsio::remove_if_exists("segment.create", &tmp);
            // Never a zero fill here: this runs on the appender's thread (or in open), and
            // reserving the blocks costs a fraction of a millisecond.
            let f = segment::preallocate(&tmp, size, false)?;
            fsio::write_at("segment.header", &f, &hdr, 0)
                .and_then(|_| fsio::sync_data("segment.header", &f))
                .and_then(|_| fsio::rename("segment.install", &tmp, &path))
                .map_err(|e| {
                    let _ = fsio::remove("segment.install", &tmp);
                    Error::io("installing segment", &path, e)
                })?;
            f
        }
    };
    // The file has its name now. If the roll fails from here on, the old segment stays active
    // and takes the next records, so a file named after `header.first_seq` must not survive:
    // a later open would find two segments holding the same seqs and refuse the log. It is
    // removed, durably, and the roll can be retried; if even that fails, the log is poisoned,
    // so that the old segment takes nothing more (the empty new one then resumes at open).
    segment::sync_dir(&inner.dir)
        .and_then(|_| {
            activate(
                file,
                path.clone(),
                header,
                size as usize,
                HEADER_LEN,
                None,
                inner.index_buffers.lock().pop().unwrap_or_default(),
            )
        })
        .inspect(|a| {
            if let (crate::index::Slot::Active(idx), Some(buf)) =
                (&a.seg.index, inner.index_buffers.lock().pop())
            {
                idx.set_spare(buf);
            }
        })
        .inspect_err(|err| {
            let undone = fsio::remove("segment.install", &path)
                .map_err(|e| Error::io("removing", &path, e))
                .and_then(|_| segment::sync_dir(&inner.dir));
            if undone.is_err() {
                inner.poison.set(err);
            }
        })
}

/// Maps an active segment whose first `committed` bytes are valid.
pub(crate) fn activate(
    file: File,
    path: PathBuf,
    header: &SegmentHeader,
    len: usize,
    committed: usize,
    scan: Option<&segment::TailScan>,
    key_buffer: Vec<u8>,
) -> Result<Active> {
    let map = Arc::new(
        SharedMap::new(&file, len, committed).map_err(|e| Error::io("mapping", &path, e))?,
    );
    let seg = Arc::new(Segment {
        path: path.clone(),
        header: *header,
        footer: None,
        data: SegmentData::Active(map.clone()),
        records_end: committed,
        index: crate::index::Slot::Active(Box::new(crate::index::ActiveIndex::with_buffer(
            header.first_seq,
            committed,
            key_buffer,
        ))),
        index_writable: true,
    });
    Ok(Active {
        seg,
        map,
        file: Arc::new(file),
        path,
        first_seq: header.first_seq,
        created_ns: header.created_ns,
        offset: committed,
        count: scan.map_or(0, |s| s.count),
        min_ts: scan.map_or(i64::MAX, |s| s.min_ts),
        max_ts: scan.map_or(i64::MIN, |s| s.max_ts),
    })
}

/// Signs a checkpoint of the latest record; on a writable log, makes it durable and appends
/// it to the directory's checkpoint log first.
pub(crate) fn checkpoint(inner: &Inner) -> Result<Checkpoint> {
    if inner.read_only {
        let segs = inner.segments.read();
        let last = segs
            .iter()
            .rev()
            .find_map(|s| s.frames().last().map(|(_, f)| (f.seq, f.mac)));
        for s in segs.iter() {
            s.check_mapped()?;
        }
        let (seq, mac) = last.ok_or(Error::Empty("the log is empty: nothing to checkpoint"))?;
        return Ok(Checkpoint::sign(
            &inner.chain,
            &inner.log_id,
            seq,
            &mac,
            now_nanos(),
        ));
    }
    inner.poison.check()?;
    let (seq, mac) = {
        let g = inner.writer.lock();
        let w = g.as_ref().ok_or(Error::ReadOnly)?;
        match w.next_seq.checked_sub(1) {
            Some(s) => (s, w.prev),
            None => return Err(Error::Empty("the log is empty: nothing to checkpoint")),
        }
    };
    sync_to(inner, seq)?;
    let cp = Checkpoint::sign(&inner.chain, &inner.log_id, seq, &mac, now_nanos());
    checkpoint::append(&inner.dir, &cp)?;
    inner.last_checkpoint_seq.store(seq, Ordering::Release);
    Ok(cp)
}

/// Fewest records in the active segment for a clean close to save its index.
const SAVE_ACTIVE_INDEX_MIN: u64 = 4096;

/// At a clean close, saves the active segment's index as its side file (FORMAT.md §6),
/// bound to the last record (its seq, where the records end, its chain MAC), so the next
/// read-only open of the closed log loads it instead of decoding the whole segment. Derived
/// data, best effort and not synced: a file lost or torn in a crash is rebuilt, one that
/// no longer matches (the segment grew) is never used, and sealing replaces it. Not for
/// forward-secure logs (see `Segment::index_binding`).
fn save_active_index(inner: &Inner) {
    let g = inner.writer.lock();
    let Some(w) = g.as_ref() else { return };
    let seg = &w.active.seg;
    if !inner.opts.save_active_index
        || w.active.count < SAVE_ACTIVE_INDEX_MIN
        || inner.fss.get().is_some()
        || seg.header.flags & crate::format::HEADER_FLAG_FORWARD_SECURE != 0
    {
        return;
    }
    let crate::index::Slot::Active(a) = &seg.index else {
        return;
    };
    // Only an index that needs no decoding: a close never decodes the records that were in
    // the segment at open (a writer that only appended leaves the older file stale).
    if a.needs_decode() {
        return;
    }
    let committed = w.active.map.committed();
    if committed.len() != w.active.offset {
        return;
    }
    // Nothing appended since the file was saved (a writer opened and closed again).
    if seg.index_file_matches(w.active.count, w.active.offset as u64, &w.prev) {
        return;
    }
    let Ok(idx) = a.snapshot(committed) else {
        return;
    };
    if idx.len() as u64 != w.active.count {
        return;
    }
    let bytes =
        crate::index::encode_file(&idx, w.active.offset as u64, &w.prev, inner.index_auth());
    let dir = w.active.path.parent().unwrap_or(std::path::Path::new("."));
    let name = seg
        .index_path()
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let _ = crate::segment::write_atomic_unsynced("index.write", dir, &name, &bytes);
}

/// Clean shutdown: stop the worker (it finishes pending seals), sync, final checkpoint.
pub(crate) fn close(inner: &Inner) {
    let worker = inner.worker.lock().take();
    if let Some(wk) = worker {
        wk.shutdown();
    }
    // Nobody appends any more: the syncs below lead themselves.
    super::flusher::stop(inner);
    if inner.poison.check().is_err() {
        return;
    }
    if inner.opts.merkle_tree {
        // Best effort: a failure leaves the tree behind the log, which the next extension
        // (or `merkle_sync`) catches up.
        let _ = sync_all(inner).and_then(|_| {
            crate::tiles::sync(
                inner,
                inner.sync.durable.load(Ordering::Acquire),
                crate::tiles::Round::Now,
            )
            .map(|_| ())
        });
    }
    let last = inner
        .writer
        .lock()
        .as_ref()
        .and_then(|w| w.next_seq.checked_sub(1));
    let synced = match last {
        Some(last) if inner.last_checkpoint_seq.load(Ordering::Acquire) == last => {
            sync_to(inner, last).is_ok()
        }
        Some(_) => checkpoint(inner).is_ok(),
        None => true,
    };
    if synced {
        // Everything is in the segment and durable: the next open has nothing to replay.
        if let Some(st) = inner
            .writer
            .lock()
            .as_mut()
            .and_then(|w| w.staging.as_mut())
        {
            st.retire();
        }
        save_active_index(inner);
    }
    if let Some(s) = inner.spare.lock().take() {
        let _ = fsio::remove("leftover.remove", &s.path);
    }
}
