//! Secondary indexes, one per segment: record positions, a time index sorted by
//! `(timestamp, seq)`, and term indexes (posting lists of record ordinals) for the actor
//! (`user_id`), email, IP address, event type, action, status, severity and resource.
//!
//! Indexes are never a source of truth: each one is derived from its segment, checked against
//! the segment's footer when loaded, and rebuilt from the segment when missing, stale or
//! damaged. The active segment's index lives in memory and catches up with the committed
//! records when read (so it costs the append path nothing); a sealed segment's index is
//! written to a side file `NNNNNNNNNNNNNNNNNNNN.idx` at seal.

mod file;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

use crate::codec;
use crate::format::{decode_frame, HEADER_LEN};

pub use file::INDEX_EXT;
pub(crate) use file::{decode as decode_file, encode as encode_file};

/// The indexed fields, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    UserId = 0,
    Email,
    Ip,
    EventType,
    Action,
    Status,
    Severity,
    ResourceType,
    ResourceId,
}

/// Number of indexed fields.
pub const FIELDS: usize = 9;

/// Normalizes an IP address for indexing and matching: IPv4-mapped IPv6 becomes IPv4.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Emails are matched case-insensitively.
pub fn normalize_email(e: &str) -> String {
    e.to_ascii_lowercase()
}

/// The index of one segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegIndex {
    pub first_seq: u64,
    /// Frame offset of each record, by ordinal (`seq - first_seq`).
    pub offsets: Vec<u32>,
    /// Timestamp of each record, by ordinal.
    pub ts: Vec<i64>,
    /// `(timestamp, ordinal)` sorted ascending: ordinal order is seq order, so this is
    /// `(timestamp, seq)` order.
    pub time: Vec<(i64, u32)>,
    /// Per field: term -> ordinals, ascending.
    pub terms: [HashMap<String, Vec<u32>>; FIELDS],
    pub min_ts: i64,
    pub max_ts: i64,
    /// Set when `time` needs sorting (records arrived out of timestamp order).
    time_unsorted: bool,
}

impl SegIndex {
    pub fn new(first_seq: u64) -> SegIndex {
        SegIndex {
            first_seq,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Adds the record at `offset` with timestamp `ts` and the given payload.
    fn add(&mut self, offset: u32, ts: i64, flags: u16, payload: &[u8]) -> crate::Result<()> {
        let (stored, _) = codec::decode_record(payload, flags)?;
        let ord = self.offsets.len() as u32;
        self.offsets.push(offset);
        self.ts.push(ts);
        if self.time.last().is_some_and(|&(last, _)| last > ts) {
            self.time_unsorted = true;
        }
        self.time.push((ts, ord));
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        let sev = crate::event::Severity::from_u8(stored.severity).map(|s| s.as_str().to_string());
        let values: [Option<String>; FIELDS] = [
            stored.user_id,
            stored.email.map(|e| normalize_email(&e)),
            stored.ip_address.map(|ip| normalize_ip(ip).to_string()),
            Some(stored.event_type),
            Some(stored.action),
            Some(stored.status),
            sev,
            stored.resource_type,
            stored.resource_id,
        ];
        for (field, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                self.terms[field].entry(v).or_default().push(ord);
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        if self.time_unsorted {
            self.time.sort_unstable();
            self.time_unsorted = false;
        }
    }

    /// Ordinals of records whose `field` equals `term`, ascending.
    pub fn postings(&self, field: Field, term: &str) -> &[u32] {
        self.terms[field as usize]
            .get(term)
            .map_or(&[], |v| v.as_slice())
    }

    /// Index of the first `time` entry not less than `(ts, ord)`.
    pub fn time_lower_bound(&self, ts: i64, ord: u32) -> usize {
        self.time.partition_point(|&e| e < (ts, ord))
    }

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        let mut n =
            self.offsets.capacity() * 4 + self.ts.capacity() * 8 + self.time.capacity() * 16;
        for m in &self.terms {
            n += m.capacity() * (std::mem::size_of::<(String, Vec<u32>)>() + 8);
            n += m
                .iter()
                .map(|(k, v)| k.capacity() + v.capacity() * 4)
                .sum::<usize>();
        }
        n
    }
}

/// Builds the index of a segment's committed bytes (header included) from scratch.
pub fn build(bytes: &[u8], first_seq: u64) -> crate::Result<SegIndex> {
    let mut idx = SegIndex::new(first_seq);
    let mut end = HEADER_LEN;
    catch_up(&mut idx, bytes, &mut end)?;
    idx.finish();
    Ok(idx)
}

/// Indexes frames from byte offset `*end` to the end of `bytes`, advancing `*end` past each
/// record indexed (so an error leaves nothing indexed twice).
fn catch_up(idx: &mut SegIndex, bytes: &[u8], end: &mut usize) -> crate::Result<()> {
    while let Some(rest) = bytes.get(*end..).filter(|r| !r.is_empty()) {
        let Ok(f) = decode_frame(rest) else { break };
        idx.add(*end as u32, f.ts, f.flags, f.payload)?;
        *end += f.len;
    }
    Ok(())
}

/// The active segment's index: catches up with the committed bytes when read.
pub struct ActiveIndex {
    inner: RwLock<(SegIndex, usize)>,
}

impl ActiveIndex {
    pub fn new(first_seq: u64) -> ActiveIndex {
        ActiveIndex {
            inner: RwLock::new((SegIndex::new(first_seq), HEADER_LEN)),
        }
    }

    /// Brings the index up to date with `committed` and runs `f` on it.
    pub fn with<R>(&self, committed: &[u8], f: impl FnOnce(&SegIndex) -> R) -> crate::Result<R> {
        {
            let g = self.inner.read();
            if g.1 >= committed.len() && !g.0.time_unsorted {
                return Ok(f(&g.0));
            }
        }
        let mut g = self.inner.write();
        let (idx, end) = &mut *g;
        if *end < committed.len() {
            catch_up(idx, committed, end)?;
        }
        idx.finish();
        let g = parking_lot::RwLockWriteGuard::downgrade(g);
        Ok(f(&g.0))
    }

    /// Heap bytes of the index as it stands.
    pub fn heap_bytes(&self) -> usize {
        self.inner.read().0.heap_bytes()
    }

    /// A finished copy of the index over `committed` (for sealing).
    pub fn snapshot(&self, committed: &[u8]) -> crate::Result<SegIndex> {
        self.with(committed, |i| i.clone())
    }
}

/// Where a segment's index comes from.
pub enum Slot {
    /// The active segment: in memory, caught up on read.
    Active(Box<ActiveIndex>),
    /// Sealed or loaded segments: built or loaded once, on first use.
    Lazy(OnceLock<Arc<SegIndex>>),
}

impl Slot {
    pub fn lazy() -> Slot {
        Slot::Lazy(OnceLock::new())
    }

    pub fn ready(idx: Arc<SegIndex>) -> Slot {
        let cell = OnceLock::new();
        let _ = cell.set(idx);
        Slot::Lazy(cell)
    }
}
