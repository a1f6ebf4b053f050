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

pub(crate) use file::{decode as decode_file, encode as encode_file};
pub use file::{IndexAuth, IndexFileError, INDEX_EXT};

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

/// `e` lowercased (ASCII), borrowing it when it already is.
fn lower<'a>(e: &'a str, buf: &'a mut String) -> &'a str {
    if e.bytes().any(|b| b.is_ascii_uppercase()) {
        *buf = e.to_ascii_lowercase();
        buf.as_str()
    } else {
        e
    }
}

/// Packs the indexed fields of one record into `out` (cleared first), on the appending
/// thread before the writer lock, so that the active segment's index is fed from what the
/// writer already knows instead of decoding records again:
/// `ts i64 | severity u8 | ip tag u8 (0 none, 4, 6) | ip bytes | 7 x (u16 len, 0xFFFF for none;
/// bytes)` for user id, lowercased email, type, action, status, resource type and id.
pub(crate) fn pack_keys(out: &mut Vec<u8>, f: &codec::Fields<'_>, ts: i64) {
    out.clear();
    out.extend_from_slice(&ts.to_le_bytes());
    out.push(f.severity);
    match f.ip_address {
        None => out.push(0),
        Some(IpAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
    let mut put = |v: Option<&str>, lowercase: bool| match v {
        // Terms are at most max_event_bytes (checked before packing), below u16::MAX.
        Some(t) if t.len() < u16::MAX as usize => {
            out.extend_from_slice(&(t.len() as u16).to_le_bytes());
            let at = out.len();
            out.extend_from_slice(t.as_bytes());
            if lowercase {
                out[at..].make_ascii_lowercase();
            }
        }
        _ => out.extend_from_slice(&u16::MAX.to_le_bytes()),
    };
    put(f.user_id, false);
    put(f.email, true);
    put(Some(f.event_type), false);
    put(Some(f.action), false);
    put(Some(f.status), false);
    put(f.resource_type, false);
    put(f.resource_id, false);
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
    /// `ts` never decreases from one ordinal to the next, so ordinal order is
    /// `(timestamp, seq)` order (the usual case: events stamped as they arrive). Queries use it
    /// to take a page from a segment's matches without sorting them all.
    pub ts_ascending: bool,
}

impl SegIndex {
    pub fn new(first_seq: u64) -> SegIndex {
        SegIndex {
            first_seq,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ts_ascending: true,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Adds the record at `offset` with timestamp `ts` and the given payload (decoded without
    /// allocating).
    fn add(&mut self, offset: u32, ts: i64, flags: u16, payload: &[u8]) -> crate::Result<()> {
        let f = codec::decode_record_fields(payload, flags)?;
        let mut email = String::new();
        let mut ip = String::new();
        if let Some(a) = f.ip_address {
            use std::fmt::Write;
            let _ = write!(ip, "{}", normalize_ip(a));
        }
        let values: [Option<&str>; FIELDS] = [
            f.user_id,
            f.email.map(|e| lower(e, &mut email)),
            f.ip_address.map(|_| ip.as_str()),
            Some(f.event_type),
            Some(f.action),
            Some(f.status),
            crate::event::Severity::from_u8(f.severity).map(|s| s.as_str()),
            f.resource_type,
            f.resource_id,
        ];
        self.add_values(offset, ts, &values);
        Ok(())
    }

    fn add_values(&mut self, offset: u32, ts: i64, values: &[Option<&str>; FIELDS]) {
        let ord = self.offsets.len() as u32;
        if self.ts.last().is_some_and(|&last| last > ts) {
            self.ts_ascending = false;
        }
        self.offsets.push(offset);
        self.ts.push(ts);
        if self.time.last().is_some_and(|&(last, _)| last > ts) {
            self.time_unsorted = true;
        }
        self.time.push((ts, ord));
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        for (field, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let map = &mut self.terms[field];
                match map.get_mut(*v) {
                    Some(list) => list.push(ord),
                    None => {
                        map.insert((*v).to_string(), vec![ord]);
                    }
                }
            }
        }
    }

    /// Adds records from packed keys (see [`pack_keys`]): `[offset u32][len u32][keys]`...
    fn add_packed(&mut self, mut b: &[u8]) {
        let mut ip = String::new();
        while b.len() >= 8 {
            let offset = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
            let (rec, rest) = b[8..].split_at(len);
            b = rest;
            let ts = i64::from_le_bytes(rec[0..8].try_into().expect("8 bytes"));
            let sev = crate::event::Severity::from_u8(rec[8]).map(|s| s.as_str());
            let mut at = 10;
            ip.clear();
            let has_ip = rec[9] != 0;
            if has_ip {
                use std::fmt::Write;
                let addr: IpAddr = if rec[9] == 4 {
                    let o: [u8; 4] = rec[at..at + 4].try_into().expect("4 bytes");
                    at += 4;
                    IpAddr::from(o)
                } else {
                    let o: [u8; 16] = rec[at..at + 16].try_into().expect("16 bytes");
                    at += 16;
                    IpAddr::from(o)
                };
                let _ = write!(ip, "{}", normalize_ip(addr));
            }
            let mut strs: [Option<&str>; 7] = [None; 7];
            for slot in &mut strs {
                let n = u16::from_le_bytes([rec[at], rec[at + 1]]);
                at += 2;
                if n != u16::MAX {
                    let t = &rec[at..at + n as usize];
                    at += n as usize;
                    // Packed from `&str`s by this process: always UTF-8.
                    *slot = std::str::from_utf8(t).ok();
                }
            }
            let [user, email, etype, action, status, rtype, rid] = strs;
            let values: [Option<&str>; FIELDS] = [
                user,
                email,
                has_ip.then_some(ip.as_str()),
                etype,
                action,
                status,
                sev,
                rtype,
                rid,
            ];
            self.add_values(offset, ts, &values);
        }
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

/// The active segment's index. Records the writer appends arrive as packed keys
/// ([`pack_keys`], pushed right after they are published), and are indexed when the index is
/// read; records that were already in the segment when it was opened (recovery) are indexed by
/// decoding their frames, once.
pub struct ActiveIndex {
    inner: RwLock<(SegIndex, usize)>,
    /// Frames before this offset were in the segment when it was activated.
    decode_to: usize,
    /// Packed keys of published records not yet indexed: `[offset u32][len u32][keys]`...
    pending: parking_lot::Mutex<Vec<u8>>,
}

impl ActiveIndex {
    /// The index of an active segment whose records end at `decode_to` when activated.
    pub fn new(first_seq: u64, decode_to: usize) -> ActiveIndex {
        ActiveIndex {
            inner: RwLock::new((SegIndex::new(first_seq), HEADER_LEN)),
            decode_to,
            pending: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Queues the keys of published records (`[offset u32][len u32][keys]`...).
    pub(crate) fn push(&self, packed: &[u8]) {
        self.pending.lock().extend_from_slice(packed);
    }

    /// Brings the index up to date and runs `f` on it.
    pub fn with<R>(&self, committed: &[u8], f: impl FnOnce(&SegIndex) -> R) -> crate::Result<R> {
        let decode_to = self.decode_to.min(committed.len());
        {
            let g = self.inner.read();
            if g.1 >= decode_to && !g.0.time_unsorted && self.pending.lock().is_empty() {
                return Ok(f(&g.0));
            }
        }
        let mut g = self.inner.write();
        let (idx, end) = &mut *g;
        if *end < decode_to {
            catch_up(idx, &committed[..decode_to], end)?;
        }
        let packed = std::mem::take(&mut *self.pending.lock());
        idx.add_packed(&packed);
        idx.finish();
        let g = parking_lot::RwLockWriteGuard::downgrade(g);
        Ok(f(&g.0))
    }

    /// Heap bytes of the index as it stands.
    pub fn heap_bytes(&self) -> usize {
        self.inner.read().0.heap_bytes() + self.pending.lock().capacity()
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
