//! Following a log: a [`Subscription`] yields every record from a seq on, then blocks until
//! more are appended, without reopening. Appenders bump a generation counter and notify a
//! condvar after each append (and after each sync, which is when records become durable);
//! a follower reads the bound it may read up to outside that lock, then waits only if the
//! generation has not moved since, so no notification is ever missed. A short wait cap
//! covers paths that make records visible without notifying (a roll's sync, retention).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::reader::{self, Record, RecordIter};
use super::Inner;
use crate::error::Result;

/// The longest a follower sleeps before rechecking on its own.
const RECHECK: Duration = Duration::from_millis(50);

/// How often a follower on a read-only handle, having caught up, rereads the files' tail
/// to see what a writer process appended (nothing notifies it across processes).
const REFRESH: Duration = Duration::from_millis(200);

/// Wakes followers when records are appended or become durable.
///
/// The generation is an atomic read by followers without the mutex (a follower reads it
/// once per record it hands out, so taking the mutex there would contend with every
/// append); it only changes under the mutex, which a waiter holds from its check until it
/// sleeps, so no bump is missed.
#[derive(Default)]
pub(crate) struct Notify {
    lock: Mutex<()>,
    generation: AtomicU64,
    cv: Condvar,
    closed: AtomicBool,
}

impl Notify {
    pub(crate) fn bump(&self) {
        {
            let _g = self.lock.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.cv.notify_all();
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.bump();
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Waits until the generation moves past `seen` or `timeout` passes.
    fn wait(&self, seen: u64, timeout: Duration) {
        let mut g = self.lock.lock();
        if self.generation.load(Ordering::Acquire) == seen {
            self.cv.wait_for(&mut g, timeout);
        }
    }
}

/// Which records a [`Subscription`] hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Only records known durable (synced to disk): what a crash cannot take back. With
    /// `Durability::Sync` that is every record as soon as its append returns; with
    /// `Interval` after the next interval's sync; with `Buffered` only at seals,
    /// checkpoints and `flush`.
    Durable,
    /// Every record as soon as it is visible to readers, durable or not.
    Visible,
}

/// A follower of a log: yields the records from a seq on, in order and without gaps, then
/// waits for new ones. Created by [`Log::subscribe`](crate::Log::subscribe). It does not
/// keep the log open: once the last `Log` handle is dropped it ends (`next` returns `None`,
/// [`is_closed`](Self::is_closed) is true).
pub struct Subscription {
    inner: Arc<Inner>,
    follow: Follow,
    next_seq: u64,
    iter: Option<RecordIter>,
    /// A record read ahead of the bound (visible but not yet durable).
    pending: Option<Record>,
    /// Read-only handles: when the files were last reread.
    refreshed: Option<Instant>,
    /// Check each record's MAC ([`check_macs`](Self::check_macs)).
    check: bool,
    /// Where the last iterator stopped, so that the next one (after catching up, or a
    /// roll) resumes there instead of rescanning the active segment from its start.
    resume: Option<reader::ResumePoint>,
}

impl Subscription {
    pub(crate) fn new(inner: Arc<Inner>, from_seq: u64, follow: Follow) -> Subscription {
        Subscription {
            inner,
            follow,
            next_seq: from_seq,
            iter: None,
            pending: None,
            refreshed: None,
            check: false,
            resume: None,
        }
    }

    /// Checks the MAC of every record handed out against its predecessor's chain value
    /// (as a lookup by seq does); the result is in [`Record::mac_verified`]. For followers
    /// that pass records on (sinks), without a second read of each record through the
    /// index.
    pub fn check_macs(mut self) -> Subscription {
        self.check = true;
        self.iter = None;
        self
    }

    /// The seq of the next record this subscription will yield (past any records removed
    /// by retention, it moves on to the first one still held).
    pub fn position(&self) -> u64 {
        self.next_seq
    }

    /// Whether the log was closed (its last handle dropped).
    pub fn is_closed(&self) -> bool {
        self.inner.follow.closed.load(Ordering::Acquire)
    }

    /// The first seq not yet readable under this subscription's [`Follow`].
    fn bound(&self) -> u64 {
        let inner = &self.inner;
        if inner.read_only {
            return reader::next_seq(inner);
        }
        match self.follow {
            Follow::Durable => inner.sync.durable.load(Ordering::Acquire),
            Follow::Visible => reader::next_seq(inner),
        }
    }

    /// Returns the next record if one is readable now, without waiting. On a read-only
    /// handle (beside a writer process), once caught up it rereads the files' tail (at most
    /// every 200 ms) to pick up records and segments appended since: see
    /// [`Log::refresh`](crate::Log::refresh).
    pub fn try_next(&mut self) -> Result<Option<Record>> {
        let bound = self.bound();
        if let Some(r) = self.read_below(bound)? {
            return Ok(Some(r));
        }
        if self.inner.read_only && self.refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
            self.refreshed = Some(Instant::now());
            super::open::refresh_read_only(&self.inner)?;
            // The old iterator's snapshot predates the refresh.
            self.iter = None;
            self.pending = None;
            self.resume = None;
            let bound = self.bound();
            return self.read_below(bound);
        }
        Ok(None)
    }

    fn read_below(&mut self, bound: u64) -> Result<Option<Record>> {
        if self.next_seq >= bound {
            return Ok(None);
        }
        if let Some(r) = self.pending.take() {
            if r.seq < bound {
                self.next_seq = r.seq + 1;
                return Ok(Some(r));
            }
            self.pending = Some(r);
            return Ok(None);
        }
        // Two passes: the snapshot's segment list may predate a roll; a fresh one sees it.
        for _ in 0..2 {
            let (inner, from, check) = (&self.inner, self.next_seq, self.check);
            let resume = &mut self.resume;
            let it = self
                .iter
                .get_or_insert_with(|| reader::iter_resume(inner, from, resume.take(), check));
            match it.next() {
                Some(Ok(r)) if r.seq < self.next_seq => continue,
                Some(Ok(r)) if r.seq < bound => {
                    self.next_seq = r.seq + 1;
                    return Ok(Some(r));
                }
                Some(Ok(r)) => {
                    self.pending = Some(r);
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.iter = None;
                    self.resume = None;
                    return Err(e);
                }
                None => {
                    // Past the snapshot's end: the next iterator resumes after the last
                    // frame read (the pending record, if any, is still to hand out).
                    if self.pending.is_none() {
                        self.resume = self.iter.as_ref().and_then(|i| i.resume_point());
                    }
                    self.iter = None;
                }
            }
        }
        Ok(None)
    }

    /// The next record, waiting at most `timeout` for one to be appended (and, under
    /// [`Follow::Durable`], synced). `Ok(None)` when the time ran out or the log closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.inner.follow.generation();
            if let Some(r) = self.try_next()? {
                return Ok(Some(r));
            }
            if self.is_closed() {
                return Ok(None);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.inner.follow.wait(seen, (deadline - now).min(RECHECK));
        }
    }

    /// Up to `max` records: waits at most `timeout` for the first, then takes only those
    /// readable without waiting.
    pub fn next_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        if let Some(r) = self.next_timeout(timeout)? {
            out.push(r);
        }
        while out.len() < max && !out.is_empty() {
            match self.try_next()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }
}

impl Iterator for Subscription {
    type Item = Result<Record>;

    /// Blocks until the next record is readable; `None` once the log is closed.
    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) if self.is_closed() => return None,
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
