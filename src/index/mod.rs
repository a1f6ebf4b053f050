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
mod hash;
mod term;

pub(crate) use hash::{TermMap, TermState};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
pub(crate) use term::{Term, Text};

use parking_lot::RwLock;

use crate::codec;
use crate::format::{decode_frame, HEADER_LEN};

pub(crate) use file::{
    authenticate as authenticate_file, decode as decode_file, encode as encode_file,
    encode_into as encode_file_into,
};
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

/// Appends `ip`, normalized, as the index keys it: the text `Display` prints. IPv4 (every
/// record of a typical gateway) is written digit by digit, without the formatting machinery.
pub(crate) fn push_ip_key(out: &mut String, ip: IpAddr) {
    match normalize_ip(ip) {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + o / 10 % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
        }
        v6 => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
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
/// `ts i64 | severity u8 | ip tag u8 (0 none, 4, 6) | ip bytes | 7 x u16 len (0xFFFF for none)
/// | the 7 texts back to back` for user id, lowercased email, type, action, status, resource
/// type and id. The texts are contiguous so that the index checks them as UTF-8 in one call.
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
    // Terms are at most max_event_bytes (checked before packing), below u16::MAX.
    let texts: [Option<&str>; 7] = [
        f.user_id,
        f.email,
        Some(f.event_type),
        Some(f.action),
        Some(f.status),
        f.resource_type,
        f.resource_id,
    ]
    .map(|v| v.filter(|t| t.len() < u16::MAX as usize));
    for t in &texts {
        let n = t.map_or(u16::MAX, |t| t.len() as u16);
        out.extend_from_slice(&n.to_le_bytes());
    }
    for (i, t) in texts.iter().enumerate() {
        if let Some(t) = t {
            let at = out.len();
            out.extend_from_slice(t.as_bytes());
            if i == 1 {
                out[at..].make_ascii_lowercase();
            }
        }
    }
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
    pub terms: [TermMap<Term, Vec<u32>>; FIELDS],
    /// A byte per record naming its event type, status and severity: derived from `terms`,
    /// never stored.
    pub codes: Codes,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Set when `time` needs sorting (records arrived out of timestamp order).
    time_unsorted: bool,
    /// `ts` never decreases from one ordinal to the next, so ordinal order is
    /// `(timestamp, seq)` order (the usual case: events stamped as they arrive). Queries use it
    /// to take a page from a segment's matches without sorting them all.
    pub ts_ascending: bool,
}

/// The fields that get a per-record code column: few distinct values, often combined.
const CODED: [Field; 3] = [Field::EventType, Field::Status, Field::Severity];

/// Code of a record without a value for the field.
const NO_CODE: u8 = u8::MAX;

/// One field's codes: `of[ordinal]` is the record's term as a small number.
#[derive(Debug, Clone, Default)]
pub struct Column {
    of: Vec<u8>,
    dict: TermMap<Term, u8>,
}

impl Column {
    /// The codes of `values` that occur in this segment, as a membership table.
    fn mask<'v>(&self, values: impl Iterator<Item = &'v str>) -> [bool; 256] {
        let mut m = [false; 256];
        for v in values {
            if let Some(&c) = self.dict.get(&Text(v)) {
                m[c as usize] = true;
            }
        }
        m
    }

    fn term_of(&self, ord: usize) -> Option<&str> {
        let c = *self.of.get(ord)?;
        self.dict
            .iter()
            .find(|(_, &k)| k == c)
            .map(|(t, _)| t.as_str())
    }
}

/// Per-record code columns of the [`CODED`] fields, so that a query combining them (type +
/// severity, status + severity) walks one posting list and checks a byte per candidate
/// instead of intersecting two long lists. A segment with 255 or more distinct values of a
/// field has no column for it (its filter intersects lists as before).
#[derive(Debug, Clone, Default)]
pub struct Codes {
    cols: [Option<Column>; 3],
    /// How many records carry each combination of the three codes (while every column
    /// exists): a query filtering only on these fields counts a segment it covers whole
    /// from this table, without touching a posting list.
    joint: Option<TermMap<[u8; 3], u32>>,
}

impl PartialEq for Codes {
    /// Codes are numbered in whatever order terms were met: two columns are equal when they
    /// name the same term for every record.
    fn eq(&self, other: &Codes) -> bool {
        self.cols
            .iter()
            .zip(&other.cols)
            .all(|(a, b)| match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    a.of.len() == b.of.len()
                        && (0..a.of.len()).all(|o| a.term_of(o) == b.term_of(o))
                }
                _ => false,
            })
    }
}

impl Codes {
    fn empty() -> Codes {
        Codes {
            cols: std::array::from_fn(|_| Some(Column::default())),
            joint: Some(TermMap::default()),
        }
    }

    fn slot(field: Field) -> Option<usize> {
        CODED.iter().position(|&f| f == field)
    }

    /// The column of `field`, if it has one in this segment.
    pub fn column(&self, field: Field) -> Option<&Column> {
        self.cols[Self::slot(field)?].as_ref()
    }

    /// Appends the codes of one record (`values` in field order).
    fn push(&mut self, values: &[Option<&str>; FIELDS]) {
        let mut key = [NO_CODE; 3];
        for (slot, field) in CODED.iter().enumerate() {
            let Some(col) = &mut self.cols[slot] else {
                self.joint = None;
                continue;
            };
            let code = match values[*field as usize] {
                None => NO_CODE,
                Some(v) => match col.dict.get(&Text(v)) {
                    Some(&c) => c,
                    None if col.dict.len() < NO_CODE as usize => {
                        let c = col.dict.len() as u8;
                        col.dict.insert(Term::new(v), c);
                        c
                    }
                    None => {
                        self.cols[slot] = None;
                        self.joint = None;
                        continue;
                    }
                },
            };
            col.of.push(code);
            key[slot] = code;
        }
        if let Some(j) = &mut self.joint {
            *j.entry(key).or_insert(0) += 1;
        }
    }

    /// How many records have, for every coded field `f` with a mask in `masks`, a code the
    /// mask admits; `None` when the segment has no joint table (a column is missing).
    pub(crate) fn joint_count(&self, masks: &[(Field, [bool; 256])]) -> Option<u64> {
        let joint = self.joint.as_ref()?;
        let slots: Vec<(usize, &[bool; 256])> = masks
            .iter()
            .map(|(f, m)| Some((Self::slot(*f)?, m)))
            .collect::<Option<_>>()?;
        Some(
            joint
                .iter()
                .filter(|(k, _)| slots.iter().all(|(s, m)| m[k[*s] as usize]))
                .map(|(_, &n)| u64::from(n))
                .sum(),
        )
    }

    /// Rebuilds every column from the posting lists of a loaded index of `n` records.
    fn rebuild(terms: &[TermMap<Term, Vec<u32>>; FIELDS], n: usize) -> Codes {
        let mut c = Codes::default();
        for (slot, field) in CODED.iter().enumerate() {
            let map = &terms[*field as usize];
            if map.len() >= NO_CODE as usize {
                continue;
            }
            let mut col = Column {
                of: vec![NO_CODE; n],
                dict: TermMap::with_capacity_and_hasher(map.len(), TermState),
            };
            for (code, (term, posts)) in map.iter().enumerate() {
                col.dict.insert(term.clone(), code as u8);
                for &o in posts {
                    if let Some(x) = col.of.get_mut(o as usize) {
                        *x = code as u8;
                    }
                }
            }
            c.cols[slot] = Some(col);
        }
        if let [Some(a), Some(b), Some(d)] = &c.cols {
            let mut joint = TermMap::default();
            for o in 0..n {
                *joint.entry([a.of[o], b.of[o], d.of[o]]).or_insert(0u32) += 1;
            }
            c.joint = Some(joint);
        }
        c
    }

    fn heap_bytes(&self) -> usize {
        self.cols
            .iter()
            .flatten()
            .map(|c| c.of.capacity() + c.dict.capacity() * (std::mem::size_of::<(Term, u8)>() + 1))
            .sum::<usize>()
            + self.joint.as_ref().map_or(0, |j| j.capacity() * 16)
    }
}

/// A filter on a coded field, checked a byte per candidate.
pub(crate) struct CodeFilter<'a> {
    of: &'a [u8],
    allowed: [bool; 256],
}

impl CodeFilter<'_> {
    pub fn admits(&self, ord: u32) -> bool {
        self.of
            .get(ord as usize)
            .is_some_and(|&c| self.allowed[c as usize])
    }
}

impl SegIndex {
    pub fn new(first_seq: u64) -> SegIndex {
        SegIndex {
            first_seq,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            ts_ascending: true,
            codes: Codes::empty(),
            ..Default::default()
        }
    }

    /// A byte-per-record filter for `field` in `values`, when the segment has its column.
    pub(crate) fn code_filter<'v>(
        &self,
        field: Field,
        values: impl Iterator<Item = &'v str>,
    ) -> Option<CodeFilter<'_>> {
        let col = self.codes.column(field)?;
        Some(CodeFilter {
            of: &col.of,
            allowed: col.mask(values),
        })
    }

    /// The membership table of `values` in `field`'s code column, when the segment has one.
    pub(crate) fn code_mask<'v>(
        &self,
        field: Field,
        values: impl Iterator<Item = &'v str>,
    ) -> Option<[bool; 256]> {
        Some(self.codes.column(field)?.mask(values))
    }

    /// Derives the code columns from the posting lists (after loading an index file).
    pub(crate) fn rebuild_codes(&mut self) {
        self.codes = Codes::rebuild(&self.terms, self.offsets.len());
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
            push_ip_key(&mut ip, a);
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
        self.codes.push(values);
        for (field, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let map = &mut self.terms[field];
                match map.get_mut(&Text(v)) {
                    Some(list) => list.push(ord),
                    None => {
                        map.insert(Term::new(v), vec![ord]);
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
                let addr: IpAddr = if rec[9] == 4 {
                    let o: [u8; 4] = rec[at..at + 4].try_into().expect("4 bytes");
                    at += 4;
                    IpAddr::from(o)
                } else {
                    let o: [u8; 16] = rec[at..at + 16].try_into().expect("16 bytes");
                    at += 16;
                    IpAddr::from(o)
                };
                push_ip_key(&mut ip, addr);
            }
            let lens: [u16; 7] =
                std::array::from_fn(|i| u16::from_le_bytes([rec[at + 2 * i], rec[at + 2 * i + 1]]));
            // Packed from `&str`s by this process: always UTF-8, and each text ends on a
            // character boundary.
            let text = std::str::from_utf8(&rec[at + 14..]).unwrap_or("");
            let mut from = 0;
            let strs: [Option<&str>; 7] = lens.map(|n| {
                (n != u16::MAX).then(|| {
                    let t = text.get(from..from + n as usize).unwrap_or("");
                    from += n as usize;
                    t
                })
            });
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
            // The entries indexed by an earlier `finish` are sorted: sort only what came after
            // the first step down, then merge it into the part of the sorted run it overlaps
            // (appenders on several threads stamp events a little out of order, so that part
            // is short). Sorting the whole of a large segment's time index at every read was
            // a seventh of the worker's time with two appending threads.
            let t = &mut self.time;
            if let Some(k) = t.windows(2).position(|w| w[0] > w[1]).map(|i| i + 1) {
                t[k..].sort_unstable();
                let first = t[k];
                let p = t[..k].partition_point(|e| *e <= first);
                // Two ascending runs: the stable sort finds them and merges them.
                t[p..].sort();
            }
            self.time_unsorted = false;
        }
    }

    /// Ordinals of records whose `field` equals `term`, ascending.
    pub fn postings(&self, field: Field, term: &str) -> &[u32] {
        self.terms[field as usize]
            .get(&Text(term))
            .map_or(&[], |v| v.as_slice())
    }

    /// Index of the first `time` entry not less than `(ts, ord)`.
    pub fn time_lower_bound(&self, ts: i64, ord: u32) -> usize {
        self.time.partition_point(|&e| e < (ts, ord))
    }

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        let mut n = self.offsets.capacity() * 4
            + self.ts.capacity() * 8
            + self.time.capacity() * 16
            + self.codes.heap_bytes();
        for m in &self.terms {
            n += m.capacity() * (std::mem::size_of::<(Term, Vec<u32>)>() + 1);
            n += m
                .iter()
                .map(|(k, v)| k.heap_bytes() + v.capacity() * 4)
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
    /// The queue's other buffer: `with` swaps it in for `pending` while it indexes what was
    /// queued, so the appender always copies keys into memory that is already faulted in.
    spare: parking_lot::Mutex<Vec<u8>>,
    /// Set once the segment is sealed ([`seal`](Self::seal)): the finished index, moved out of
    /// `inner` rather than copied. Readers that still hold the active segment use it.
    sealed: OnceLock<Arc<SegIndex>>,
}

impl ActiveIndex {
    /// The index of an active segment whose records end at `decode_to` when activated,
    /// queueing keys in `buf` (emptied; its capacity kept): a buffer an earlier segment's
    /// index gave back ([`take_buffers`](Self::take_buffers)), whose memory is already faulted
    /// in, or a new one.
    pub fn with_buffer(first_seq: u64, decode_to: usize, mut buf: Vec<u8>) -> ActiveIndex {
        buf.clear();
        ActiveIndex {
            inner: RwLock::new((SegIndex::new(first_seq), HEADER_LEN)),
            decode_to,
            pending: parking_lot::Mutex::new(buf),
            spare: parking_lot::Mutex::new(Vec::new()),
            sealed: OnceLock::new(),
        }
    }

    /// Whether the next use decodes records: some were in the segment when it was activated
    /// and are not indexed yet.
    pub(crate) fn needs_decode(&self) -> bool {
        self.inner.read().1 < self.decode_to
    }

    /// Starts this index from `idx`, the authenticated index of every record before
    /// `decode_to` (a side file saved at a clean close, checked against the segment by the
    /// caller), instead of decoding those records. Only before anything was indexed.
    pub(crate) fn seed(&self, idx: SegIndex) {
        let mut g = self.inner.write();
        if g.1 == HEADER_LEN && g.0.is_empty() && idx.first_seq == g.0.first_seq {
            *g = (idx, self.decode_to);
        }
    }

    /// The queue's second buffer (emptied; its capacity kept), from an earlier segment's index.
    pub fn set_spare(&self, mut buf: Vec<u8>) {
        buf.clear();
        *self.spare.lock() = buf;
    }

    /// The empty key buffers whose memory is faulted in (the spare, and the queue if it is
    /// empty), for the next segments' indexes.
    pub fn take_buffers(&self) -> Vec<Vec<u8>> {
        let mut out = vec![std::mem::take(&mut *self.spare.lock())];
        let mut p = self.pending.lock();
        if p.is_empty() {
            out.push(std::mem::take(&mut *p));
        }
        out.retain(|b| b.capacity() > 0);
        out
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
            // Checked under the lock: `seal` empties `inner` while it holds it for writing.
            if let Some(idx) = self.sealed.get() {
                return Ok(f(idx));
            }
            if g.1 >= decode_to && !g.0.time_unsorted && self.pending.lock().is_empty() {
                return Ok(f(&g.0));
            }
        }
        let mut g = self.inner.write();
        if let Some(idx) = self.sealed.get() {
            return Ok(f(idx));
        }
        Self::catch_up_locked(&mut g, decode_to, committed, &self.pending, &self.spare)?;
        let g = parking_lot::RwLockWriteGuard::downgrade(g);
        Ok(f(&g.0))
    }

    /// Indexes what the segment's bytes and the key queue hold beyond `g`.
    fn catch_up_locked(
        g: &mut (SegIndex, usize),
        decode_to: usize,
        committed: &[u8],
        pending: &parking_lot::Mutex<Vec<u8>>,
        spare: &parking_lot::Mutex<Vec<u8>>,
    ) -> crate::Result<()> {
        let (idx, end) = g;
        if *end < decode_to {
            catch_up(idx, &committed[..decode_to], end)?;
        }
        // The spare buffer (empty, its memory kept) takes the queue's place at once, so keys
        // that arrive while these are indexed go into it; the indexed buffer becomes the spare.
        let mut packed = std::mem::take(&mut *spare.lock());
        std::mem::swap(&mut *pending.lock(), &mut packed);
        idx.add_packed(&packed);
        idx.finish();
        packed.clear();
        *spare.lock() = packed;
        Ok(())
    }

    /// The finished index of the segment, now sealed with its records ending at
    /// `committed`: moved out, not copied; readers that still hold this active index get it
    /// too. Later calls return the same index.
    pub fn seal(&self, committed: &[u8]) -> crate::Result<Arc<SegIndex>> {
        let mut g = self.inner.write();
        if let Some(idx) = self.sealed.get() {
            return Ok(idx.clone());
        }
        let decode_to = self.decode_to.min(committed.len());
        Self::catch_up_locked(&mut g, decode_to, committed, &self.pending, &self.spare)?;
        let first_seq = g.0.first_seq;
        let idx = Arc::new(std::mem::replace(&mut g.0, SegIndex::new(first_seq)));
        let _ = self.sealed.set(idx.clone());
        Ok(idx)
    }

    /// Heap bytes of the index as it stands.
    pub fn heap_bytes(&self) -> usize {
        self.sealed.get().map_or(0, |i| i.heap_bytes())
            + self.inner.read().0.heap_bytes()
            + self.pending.lock().capacity()
            + self.spare.lock().capacity()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(
        etype: &'a str,
        status: &'a str,
        sev: Option<&'a str>,
    ) -> [Option<&'a str>; FIELDS] {
        let mut v: [Option<&str>; FIELDS] = [None; FIELDS];
        v[Field::EventType as usize] = Some(etype);
        v[Field::Status as usize] = Some(status);
        v[Field::Severity as usize] = sev;
        v
    }

    #[test]
    fn ip_keys_are_the_display_text_of_the_normalized_address() {
        let mut out = String::new();
        let mut check = |ip: IpAddr| {
            out.clear();
            push_ip_key(&mut out, ip);
            assert_eq!(out, normalize_ip(ip).to_string(), "{ip:?}");
        };
        for a in [0u8, 1, 9, 10, 42, 99, 100, 101, 199, 200, 255] {
            for b in [0u8, 7, 10, 255] {
                check(IpAddr::from([a, b, a.wrapping_mul(3), 255 - a]));
            }
        }
        check("::ffff:203.0.113.9".parse().unwrap());
        check("2001:db8::1".parse().unwrap());
        check("::".parse().unwrap());
    }

    #[test]
    fn keys_packed_while_appending_index_as_decoding_the_records_does() {
        let users = [
            "user-1",
            "Ünïcødé-用户",
            "",
            "a-much-longer-user-id-than-sixteen-bytes",
        ];
        let emails = [Some("Mixed.Case@Example.COM"), None, Some("ß@straße.de")];
        let ips: [Option<IpAddr>; 4] = [
            None,
            Some("203.0.113.7".parse().unwrap()),
            Some("2001:db8::1".parse().unwrap()),
            Some("::ffff:10.0.0.255".parse().unwrap()),
        ];
        let (mut decoded, mut packed) = (SegIndex::new(5), SegIndex::new(5));
        let (mut payload, mut keys, mut queue) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..200usize {
            let f = codec::Fields {
                event_id: "0190b2a4-0000-7000-8000-000000000000",
                event_type: ["user_login", "config_change", "données"][i % 3],
                action: "act",
                status: ["success", "failure"][i % 2],
                severity: (i % 5) as u8,
                user_id: (i % 5 != 4).then(|| users[i % 4]),
                email: emails[i % 3],
                ip_address: ips[i % 4],
                resource_type: (i % 2 == 0).then_some("api_key"),
                resource_id: (i % 3 == 0).then_some("key-ü"),
                details: "",
            };
            codec::encode_fields_into(&f, &mut payload).unwrap();
            let (offset, ts) = (100 + i as u32 * 64, 1_700_000_000 + (i as i64 * 7) % 50);
            decoded.add(offset, ts, 0, &payload).unwrap();
            pack_keys(&mut keys, &f, ts);
            queue.extend_from_slice(&offset.to_le_bytes());
            queue.extend_from_slice(&(keys.len() as u32).to_le_bytes());
            queue.extend_from_slice(&keys);
        }
        packed.add_packed(&queue);
        decoded.finish();
        packed.finish();
        assert_eq!(decoded, packed);
        assert!(packed.terms[Field::Email as usize].contains_key(&Text("mixed.case@example.com")));
        assert!(packed.terms[Field::UserId as usize].contains_key(&Text("Ünïcødé-用户")));
    }

    #[test]
    fn a_sealed_active_index_hands_readers_the_index_it_moved_out() {
        let a = ActiveIndex::with_buffer(10, HEADER_LEN, Vec::new());
        let committed = vec![0u8; HEADER_LEN];
        let mut keys = Vec::new();
        for i in 0..50u32 {
            let f = codec::Fields {
                event_id: "e",
                event_type: "user_login",
                action: "login",
                status: ["success", "failure"][i as usize % 2],
                severity: 1,
                user_id: Some("u"),
                email: None,
                ip_address: None,
                resource_type: None,
                resource_id: None,
                details: "",
            };
            pack_keys(&mut keys, &f, i64::from(i));
            let mut rec = (100 + i * 80).to_le_bytes().to_vec();
            rec.extend_from_slice(&(keys.len() as u32).to_le_bytes());
            rec.extend_from_slice(&keys);
            a.push(&rec);
            if i == 20 {
                // Part of it indexed before the seal, the rest queued.
                assert_eq!(a.with(&committed, SegIndex::len).unwrap(), 21);
            }
        }
        let sealed = a.seal(&committed).unwrap();
        assert_eq!(sealed.len(), 50);
        assert_eq!(
            sealed.terms[Field::Status as usize][&Text("failure")].len(),
            25
        );
        // A reader still holding the active index sees the sealed one, not an emptied one.
        assert_eq!(a.with(&committed, SegIndex::len).unwrap(), 50);
        assert!(Arc::ptr_eq(&sealed, &a.seal(&committed).unwrap()));
        assert_eq!(
            a.with(&committed, |i| i.offsets[49]).unwrap(),
            100 + 49 * 80
        );
    }

    #[test]
    fn the_time_index_sorts_however_records_arrive_between_reads() {
        let mut rng = 7u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..40 {
            let mut idx = SegIndex::new(0);
            let mut ord = 0u32;
            for _ in 0..1 + next() % 6 {
                // A batch: ascending, jittered (two appending threads), or reversed.
                let n = next() % 300;
                let base = (next() % 5_000) as i64;
                for i in 0..n as i64 {
                    let ts = match round % 3 {
                        0 => base + i,
                        1 => base + i * 3 - (next() % 7) as i64,
                        _ => base - i,
                    };
                    idx.add_values(ord * 10, ts, &values("t", "s", None));
                    ord += 1;
                }
                idx.finish();
                let mut want: Vec<(i64, u32)> = idx
                    .ts
                    .iter()
                    .enumerate()
                    .map(|(o, &t)| (t, o as u32))
                    .collect();
                want.sort_unstable();
                assert_eq!(idx.time, want, "round {round}");
            }
        }
    }

    #[test]
    fn code_columns_built_while_appending_equal_those_rebuilt_from_postings() {
        let mut idx = SegIndex::new(0);
        let sevs = [Some("high"), None, Some("low")];
        for i in 0..300u32 {
            let t = format!("type-{}", i % 7);
            let st = if i % 3 == 0 { "failed" } else { "success" };
            idx.add_values(
                i * 10,
                i64::from(i),
                &values(&t, st, sevs[(i % 3) as usize]),
            );
        }
        let mut loaded = idx.clone();
        loaded.rebuild_codes();
        assert_eq!(idx.codes, loaded.codes);
        // status=failed (every third) and severity=high (also every third, same ones).
        let f = loaded
            .code_filter(Field::Status, ["failed"].into_iter())
            .unwrap();
        let s = idx
            .code_filter(Field::Severity, ["high"].into_iter())
            .unwrap();
        let both: Vec<u32> = (0..300).filter(|&o| f.admits(o) && s.admits(o)).collect();
        assert_eq!(both, (0..300).step_by(3).collect::<Vec<u32>>());
        // A record without a severity is admitted by no severity filter.
        let any = idx
            .code_filter(Field::Severity, ["high", "low"].into_iter())
            .unwrap();
        assert!(!any.admits(1) && any.admits(0) && any.admits(2));
        // A value the segment never saw admits nothing.
        let none = idx
            .code_filter(Field::Status, ["blocked"].into_iter())
            .unwrap();
        assert!((0..300).all(|o| !none.admits(o)));
    }

    #[test]
    fn a_field_with_255_distinct_values_loses_its_column_not_its_postings() {
        let mut idx = SegIndex::new(0);
        for i in 0..300u32 {
            let t = format!("type-{i}");
            idx.add_values(i, 0, &values(&t, "success", Some("info")));
        }
        assert!(idx.codes.column(Field::EventType).is_none());
        assert!(idx.codes.column(Field::Status).is_some());
        assert_eq!(idx.postings(Field::EventType, "type-299"), &[299]);
        let mut loaded = idx.clone();
        loaded.rebuild_codes();
        assert!(loaded.codes.column(Field::EventType).is_none());
        assert_eq!(idx.codes, loaded.codes);
    }
}
