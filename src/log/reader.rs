//! Reading records back over a snapshot of the segment list.

use std::sync::Arc;

use super::Inner;
use crate::chain::Hash;
use crate::codec;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::{decode_frame, HEADER_LEN};
use crate::segment::Segment;

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    /// UTC nanoseconds.
    pub timestamp_ns: i64,
    pub event: Event,
    /// The record's chain value `h_seq`.
    pub hash: Hash,
    /// Present when the record was redacted.
    pub redacted: Option<crate::RedactionInfo>,
    /// Whether the record's MAC, recomputed from its bytes and its predecessor's chain
    /// value, matches; `None` when the reader did not check (only subscriptions made with
    /// [`Subscription::check_macs`](crate::Subscription::check_macs) do).
    pub mac_verified: Option<bool>,
}

/// Where a [`RecordIter`] stopped: after the frame of seq `next_seq - 1` in `seg`, at byte
/// `off`, whose chain value was `prev`. A new iterator over a later snapshot resumes there
/// instead of rescanning the segment from its start, if the snapshot still holds that very
/// segment (the same object: a segment rewritten or replaced is a new one).
#[derive(Clone)]
pub(crate) struct ResumePoint {
    seg: Arc<Segment>,
    off: usize,
    prev: Hash,
    next_seq: u64,
}

/// Iterator over records of a snapshot, in seq order.
pub struct RecordIter {
    segs: Vec<Arc<Segment>>,
    seg: usize,
    off: usize,
    from_seq: u64,
    /// With a chain and log id: each record's MAC is checked against its predecessor's.
    check: Option<(crate::chain::Chain, [u8; 16])>,
    /// The chain value of the frame before `off` in segment `seg` (its header's
    /// `prev_hash` at the segment's start); `None` until known.
    prev: Option<Hash>,
    /// (segment index, offset after, chain value, seq) of the last frame read.
    last: Option<(usize, usize, Hash, u64)>,
}

impl RecordIter {
    /// Where to resume after the last frame read, if any was.
    pub(crate) fn resume_point(&self) -> Option<ResumePoint> {
        let (si, off, prev, seq) = self.last?;
        Some(ResumePoint {
            seg: self.segs.get(si)?.clone(),
            off,
            prev,
            next_seq: seq + 1,
        })
    }
}

/// An iterator from `from_seq` that starts at `at` when it is where `from_seq` begins in a
/// segment the current snapshot still holds, else like [`iter_from`]; with `check`, MACs
/// are checked.
pub(crate) fn iter_resume(
    inner: &Inner,
    from_seq: u64,
    at: Option<ResumePoint>,
    check: bool,
) -> RecordIter {
    let mut it = iter_from(inner, from_seq);
    if check {
        it.check = Some((inner.chain.clone(), inner.log_id));
    }
    if let Some(at) = at.filter(|a| a.next_seq == from_seq) {
        if let Some(si) = it.segs.iter().position(|s| Arc::ptr_eq(s, &at.seg)) {
            it.seg = si;
            it.off = at.off;
            it.prev = Some(at.prev);
        }
    }
    it
}

pub(crate) fn iter_from(inner: &Inner, from_seq: u64) -> RecordIter {
    let segs = inner.segments_snapshot();
    // Skip whole segments that end before `from_seq`.
    let seg = segs
        .iter()
        .rposition(|s| s.header.first_seq <= from_seq)
        .unwrap_or(0);
    RecordIter {
        segs,
        seg,
        off: HEADER_LEN,
        from_seq,
        check: None,
        prev: None,
        last: None,
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            let seg = self.segs.get(self.seg)?;
            if let Some(e) = seg.load_error() {
                self.seg += 1;
                self.off = HEADER_LEN;
                self.prev = None;
                return Some(Err(Error::Corrupt {
                    file: seg.path.clone(),
                    offset: 0,
                    detail: e,
                }));
            }
            let bytes = seg.bytes();
            let Some(rest) = bytes.get(self.off..).filter(|r| !r.is_empty()) else {
                self.seg += 1;
                self.off = HEADER_LEN;
                self.prev = None;
                if let Err(e) = seg.check_mapped() {
                    return Some(Err(e));
                }
                continue;
            };
            let f = match decode_frame(rest) {
                Ok(f) => f,
                Err(crate::format::FrameError::Zero) if crate::format::is_zero(rest) => {
                    self.seg += 1;
                    self.off = HEADER_LEN;
                    self.prev = None;
                    // A map that faulted reads zeros where the file's records were.
                    if let Err(e) = seg.check_mapped() {
                        return Some(Err(e));
                    }
                    continue;
                }
                Err(e) => {
                    // Every byte below the committed end is a frame: this is damage. Report
                    // it once, then go on with the next segment.
                    let at = self.off;
                    self.seg += 1;
                    self.off = HEADER_LEN;
                    self.prev = None;
                    if let Err(e) = seg.check_mapped() {
                        return Some(Err(e));
                    }
                    return Some(Err(Error::Corrupt {
                        file: seg.path.clone(),
                        offset: at as u64,
                        detail: format!("{e}; run `auditlog verify`"),
                    }));
                }
            };
            let at = self.off;
            if at == HEADER_LEN {
                self.prev = Some(seg.header.prev_hash);
            }
            let prev = self.prev.replace(f.mac);
            self.off += f.len;
            self.last = Some((self.seg, self.off, f.mac, f.seq));
            if f.seq < self.from_seq {
                continue;
            }
            let mac_verified = self.check.as_ref().map(|(chain, log_id)| {
                prev.is_some_and(|p| {
                    codec::chained_digest(chain, log_id, f.seq, f.flags, f.payload).is_ok_and(|d| {
                        crate::chain::ct_eq(&chain.step(&p, f.seq, f.ts, &d), &f.mac)
                    })
                })
            });
            // Once its map faulted, nothing more is read from this segment.
            if let Err(e) = seg.check_mapped() {
                self.seg += 1;
                self.off = HEADER_LEN;
                self.prev = None;
                return Some(Err(e));
            }
            let decoded = codec::decode_record_event(f.payload, f.flags, f.ts, true);
            return Some(match decoded {
                Ok((event, r)) => Ok(Record {
                    seq: f.seq,
                    timestamp_ns: f.ts,
                    event,
                    hash: f.mac,
                    redacted: r.map(|r| crate::RedactionInfo {
                        reason: r.reason,
                        scope: r.scope,
                    }),
                    mac_verified,
                }),
                Err(e) => Err(Error::Corrupt {
                    file: seg.path.clone(),
                    offset: at as u64,
                    detail: format!("record {} does not decode: {e}", f.seq),
                }),
            });
        }
    }
}

pub(crate) fn next_seq(inner: &Inner) -> u64 {
    if let Some(w) = inner.writer.lock().as_ref() {
        return w.next_seq;
    }
    let segs = inner.segments.read();
    segs.iter()
        .rev()
        .find_map(|s| match &s.footer {
            Some(f) => Some(f.last_seq + 1),
            None => s.frames().last().map(|(_, f)| f.seq + 1),
        })
        .unwrap_or(0)
}

pub(crate) fn stats(inner: &Inner) -> Result<super::Stats> {
    let segs = inner.segments_snapshot();
    let mut first_seq = None;
    let mut last_seq = None;
    let mut events = 0u64;
    let mut bytes = 0u64;
    let mut data_bytes = 0u64;
    let mut files = Vec::new();
    let mut index_file_bytes = 0u64;
    let mut index_memory_bytes = 0u64;
    for s in &segs {
        let (first, last, count) = match &s.footer {
            Some(f) => (Some(f.first_seq), Some(f.last_seq), f.count),
            None => {
                let mut it = s.frames().map(|(_, f)| f.seq);
                let first = it.next();
                let (last, n) = it.fold((first, first.map_or(0, |_| 1u64)), |(_, n), q| {
                    (Some(q), n + 1)
                });
                (first, last, n)
            }
        };
        if count > 0 {
            first_seq = first_seq.or(first);
            last_seq = last;
        }
        events += count;
        bytes += std::fs::metadata(&s.path).map(|m| m.len()).unwrap_or(0);
        data_bytes += match &s.footer {
            Some(_) => s.file_bytes().len(),
            None => s.bytes().len(),
        } as u64;
        files.push(s.file_name());
        index_file_bytes += std::fs::metadata(s.index_path())
            .map(|m| m.len())
            .unwrap_or(0);
        index_memory_bytes += s.index_memory() as u64;
    }
    let (last_retention, holds) = {
        let pol = inner.policy.lock();
        (pol.last_run().cloned(), pol.active_holds())
    };
    let durable = inner
        .sync
        .durable
        .load(std::sync::atomic::Ordering::Acquire);
    Ok(super::Stats {
        events,
        first_seq,
        last_seq,
        segments: segs.len(),
        segment_files: files,
        bytes,
        data_bytes,
        index_file_bytes,
        index_memory_bytes,
        log_id: crate::chain::hex(&inner.log_id),
        last_retention,
        holds,
        read_only: inner.read_only,
        durable_seq: if inner.read_only {
            last_seq
        } else {
            durable.checked_sub(1)
        },
        commits: inner
            .sync
            .commits
            .load(std::sync::atomic::Ordering::Relaxed),
        commit_records: inner
            .sync
            .committed_records
            .load(std::sync::atomic::Ordering::Relaxed),
    })
}
