//! Query execution: per segment, candidates from the term indexes (or the time index when no
//! term filter is given), then the time range, the paging snapshot and the cursor; an exact
//! count of every match; the page's events decoded and their MACs rechecked.

use std::sync::Arc;

use serde::Serialize;

use super::cursor::Cursor;
use super::{Order, Query};
use crate::codec;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::format::decode_frame;
use crate::index::{normalize_email, Field, SegIndex};
use crate::log::Inner;
use crate::segment::Segment;

/// `verification` of a returned event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// `hmac-sha256:<hex>` chain value of the record.
    pub hash: String,
    /// The record's MAC, recomputed from its bytes and its predecessor's chain value, matches.
    pub verified: bool,
}

/// One returned event in the seed's response shape, plus its `seq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditLogEntry {
    #[serde(flatten)]
    pub event: Event,
    pub seq: u64,
    /// Present when the record was redacted: its personal data or content is gone, the
    /// chain still verifies through the original digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redacted: Option<crate::RedactionInfo>,
    pub verification: Verification,
}

/// A page of results in the seed's response shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Every event that matches the filters (exact), whatever the page.
    pub total_count: u64,
    pub returned_count: usize,
    /// 1 for the first page.
    pub page: u64,
    pub audit_logs: Vec<AuditLogEntry>,
    /// Cursor for the next page (pass it back as `cursor`); null on the last page.
    pub next_page: Option<String>,
}

/// A match: where the record is and what it sorts by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub ts: i64,
    pub seq: u64,
    pub seg: usize,
    pub offset: u32,
    /// Offset of the previous record in the same segment (None for the first).
    pub prev_offset: Option<u32>,
}

/// A posting list: borrowed from the index when one value was asked for, merged otherwise.
enum Postings<'a> {
    Borrowed(&'a [u32]),
    Owned(Vec<u32>),
}

impl Postings<'_> {
    fn as_slice(&self) -> &[u32] {
        match self {
            Postings::Borrowed(s) => s,
            Postings::Owned(v) => v,
        }
    }
}

fn union(lists: Vec<&[u32]>) -> Postings<'_> {
    match lists.len() {
        0 => Postings::Owned(Vec::new()),
        1 => Postings::Borrowed(lists[0]),
        _ => {
            let mut v: Vec<u32> = lists.concat();
            v.sort_unstable();
            v.dedup();
            Postings::Owned(v)
        }
    }
}

/// Elements of `small` admitted by every code filter and present in every list of `others`
/// (all ascending): a code filter checks one byte; each list probe is a galloping search from
/// the previous position, so the cost follows the smallest list.
fn intersect(
    small: &[u32],
    filters: &[crate::index::CodeFilter<'_>],
    others: &[&[u32]],
) -> Vec<u32> {
    let mut pos = vec![0usize; others.len()];
    let mut out = Vec::with_capacity(small.len());
    'next: for &x in small {
        for f in filters {
            if !f.admits(x) {
                continue 'next;
            }
        }
        for (k, list) in others.iter().enumerate() {
            let mut lo = pos[k];
            let mut step = 1;
            while lo + step < list.len() && list[lo + step] < x {
                lo += step;
                step *= 2;
            }
            let hi = (lo + step + 1).min(list.len());
            let i = lo + list[lo..hi].partition_point(|&v| v < x);
            pos[k] = i;
            if list.get(i) != Some(&x) {
                continue 'next;
            }
        }
        out.push(x);
    }
    out
}

/// A query's term filters, prepared once per query (not once per segment).
pub(crate) struct Terms {
    /// The filtered fields and their values (emails normalized).
    asked: Vec<(Field, Vec<String>)>,
    /// IP filters: single addresses, and ranges.
    hosts: Vec<String>,
    nets: Vec<super::IpNet>,
    has_ips: bool,
}

impl Terms {
    pub(crate) fn new(q: &Query) -> Terms {
        let emails: Vec<String> = q.emails.iter().map(|e| normalize_email(e)).collect();
        let sevs: Vec<String> = q
            .severities
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        let asked: Vec<(Field, Vec<String>)> = [
            (Field::UserId, q.user_ids.clone()),
            (Field::Email, emails),
            (Field::EventType, q.event_types.clone()),
            (Field::Action, q.actions.clone()),
            (Field::Status, q.statuses.clone()),
            (Field::Severity, sevs),
            (Field::ResourceType, q.resource_types.clone()),
            (Field::ResourceId, q.resource_ids.clone()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        Terms {
            asked,
            hosts: q
                .ips
                .iter()
                .filter(|n| n.is_host())
                .map(|n| n.addr().to_string())
                .collect(),
            nets: q.ips.iter().filter(|n| !n.is_host()).copied().collect(),
            has_ips: !q.ips.is_empty(),
        }
    }

    fn is_empty(&self) -> bool {
        self.asked.is_empty() && !self.has_ips
    }

    /// Every filter is on a field with a code column (event type, status, severity).
    fn coded_only(&self) -> bool {
        !self.is_empty()
            && !self.has_ips
            && self
                .asked
                .iter()
                .all(|(f, _)| matches!(f, Field::EventType | Field::Status | Field::Severity))
    }
}

fn strs(v: &[String]) -> impl Iterator<Item = &str> {
    v.iter().map(String::as_str)
}

/// Ordinals matching every term filter, ascending; `None` when the query has none.
fn term_candidates(idx: &SegIndex, t: &Terms) -> Option<Vec<u32>> {
    // Each filter as its field (None for IP), its values, and the posting lists of those
    // values: merged only where a filter is walked, not where it becomes a code check.
    type Filter<'q, 'i> = (Option<Field>, &'q [String], Vec<&'i [u32]>);
    let mut lists: Vec<Filter<'_, '_>> = Vec::new();
    for (field, vals) in &t.asked {
        let posts = vals.iter().map(|v| idx.postings(*field, v)).collect();
        lists.push((Some(*field), vals.as_slice(), posts));
    }
    if t.has_ips {
        let mut parts: Vec<&[u32]> = Vec::new();
        for h in &t.hosts {
            parts.push(idx.postings(Field::Ip, h));
        }
        if !t.nets.is_empty() {
            for (term, posts) in &idx.terms[Field::Ip as usize] {
                if let Ok(ip) = term.as_str().parse() {
                    if t.nets.iter().any(|n| n.contains(ip)) {
                        parts.push(posts);
                    }
                }
            }
        }
        lists.push((None, &[], parts));
    }
    if lists.is_empty() {
        return None;
    }
    // A filter's size is the sum of its values' lists (exact for distinct terms, an upper
    // bound where IP hosts and ranges overlap): enough to choose the driver.
    lists.sort_by_key(|l| l.2.iter().map(|p| p.len()).sum::<usize>());
    // The shortest filter drives; the others are checked against it, by their code column
    // where the segment has one (a byte per candidate), by galloping search otherwise.
    let mut rest = lists.into_iter();
    let (_, _, driver) = rest.next().expect("at least one filter");
    let driver = union(driver);
    let mut filters = Vec::new();
    let mut walked: Vec<Postings<'_>> = Vec::new();
    for (field, vals, posts) in rest {
        match field.and_then(|f| idx.code_filter(f, strs(vals))) {
            Some(f) => filters.push(f),
            None => walked.push(union(posts)),
        }
    }
    let others: Vec<&[u32]> = walked.iter().map(Postings::as_slice).collect();
    Some(intersect(driver.as_slice(), &filters, &others))
}

/// A segment that a query on coded fields only (type, status, severity) covers whole: the
/// exact count from the segment's joint code table, and its first `keep` matches in `order`
/// (ordinal order is `(timestamp, seq)` order here), walking the shortest posting list and
/// checking a byte per candidate for the other filters. `None` when the segment has no joint
/// table.
fn coded_whole(idx: &SegIndex, t: &Terms, order: Order, keep: usize) -> Option<(u64, Vec<u32>)> {
    let masks: Vec<(Field, [bool; 256])> = t
        .asked
        .iter()
        .map(|(f, v)| Some((*f, idx.code_mask(*f, strs(v))?)))
        .collect::<Option<_>>()?;
    let count = idx.codes.joint_count(&masks)?;
    let mut out = Vec::new();
    if keep == 0 || count == 0 {
        return Some((count, out));
    }
    let (di, driver) = t
        .asked
        .iter()
        .enumerate()
        .map(|(i, (f, v))| (i, union(v.iter().map(|x| idx.postings(*f, x)).collect())))
        .min_by_key(|(_, p)| p.as_slice().len())?;
    let filters: Vec<crate::index::CodeFilter<'_>> = t
        .asked
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != di)
        .map(|(_, (f, v))| idx.code_filter(*f, strs(v)))
        .collect::<Option<_>>()?;
    let admits = |o: &u32| filters.iter().all(|f| f.admits(*o));
    let d = driver.as_slice();
    match order {
        Order::Asc => out.extend(d.iter().filter(|o| admits(o)).take(keep)),
        Order::Desc => out.extend(d.iter().rev().filter(|o| admits(o)).take(keep)),
    }
    Some((count, out))
}

fn bounds(q: &Query) -> (i64, i64) {
    (q.start.unwrap_or(i64::MIN), q.end.unwrap_or(i64::MAX))
}

/// Matches of one segment in seq order (ascending ordinals).
fn segment_matches(idx: &SegIndex, q: &Query, t: &Terms, snapshot: u64) -> Vec<u32> {
    let (start, end) = bounds(q);
    if idx.is_empty() || idx.max_ts < start || idx.min_ts > end || idx.first_seq >= snapshot {
        return Vec::new();
    }
    let in_snapshot = |ord: u32| idx.first_seq + (ord as u64) < snapshot;
    match term_candidates(idx, t) {
        // A segment wholly inside the time range and the snapshot keeps every candidate.
        Some(c)
            if start <= idx.min_ts
                && idx.max_ts <= end
                && idx.first_seq + idx.len() as u64 <= snapshot =>
        {
            c
        }
        Some(c) => c
            .into_iter()
            .filter(|&o| in_snapshot(o) && (start..=end).contains(&idx.ts[o as usize]))
            .collect(),
        None => {
            let lo = idx.time_lower_bound(start, 0);
            let hi = idx.time.partition_point(|&(t, _)| t <= end);
            let mut v: Vec<u32> = idx.time[lo..hi.max(lo)]
                .iter()
                .map(|&(_, o)| o)
                .filter(|&o| in_snapshot(o))
                .collect();
            v.sort_unstable();
            v
        }
    }
}

fn hit(idx: &SegIndex, seg: usize, ord: u32) -> Hit {
    let o = ord as usize;
    Hit {
        ts: idx.ts[o],
        seq: idx.first_seq + ord as u64,
        seg,
        offset: idx.offsets[o],
        prev_offset: o.checked_sub(1).map(|p| idx.offsets[p]),
    }
}

/// Decodes the record of `h` and rechecks its MAC.
pub(crate) fn entry(
    seg: &Segment,
    h: &Hit,
    inner: &Inner,
    include_details: bool,
) -> Result<AuditLogEntry> {
    let (chain, log_id) = (&inner.chain, &inner.log_id);
    let bytes = seg.bytes();
    // Damage found where the map faulted is the truncation, not a bad record: say so.
    let corrupt = |at: u32, what: String| {
        seg.check_mapped().err().unwrap_or_else(|| Error::Corrupt {
            file: seg.path.clone(),
            offset: at as u64,
            detail: what,
        })
    };
    let f = decode_frame(bytes.get(h.offset as usize..).unwrap_or(&[]))
        .map_err(|e| corrupt(h.offset, format!("indexed record {}: {e}", h.seq)))?;
    // The predecessor's chain value is the MAC stored in its last 36 bytes (MAC, CRC), right
    // before this frame: read in place, without decoding (and checksumming) that frame too.
    let prev = match h.prev_offset {
        None => seg.header.prev_hash,
        Some(p) => {
            let (p, at) = (p as usize, h.offset as usize);
            let len = bytes
                .get(p..p + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
            if len.map(crate::format::frame_len) != Some(at.wrapping_sub(p)) {
                return Err(corrupt(
                    p as u32,
                    format!(
                        "record before {}: its length does not end where {} starts",
                        h.seq, h.seq
                    ),
                ));
            }
            crate::format::arr32(bytes, at - crate::format::FRAME_TRAILER_LEN)
        }
    };
    let verified = f.seq == h.seq
        && codec::chained_digest(chain, log_id, f.seq, f.flags, f.payload)
            .is_ok_and(|d| crate::fss::entry_mac_ok(inner, seg, &prev, f.seq, f.ts, &d, &f.mac));
    let (event, redaction) = codec::decode_record_event(f.payload, f.flags, f.ts, include_details)
        .map_err(|e| corrupt(h.offset, format!("record {}: {e}", h.seq)))?;
    seg.check_mapped()?;
    Ok(AuditLogEntry {
        event,
        seq: f.seq,
        redacted: redaction.map(|r| crate::RedactionInfo {
            reason: r.reason,
            scope: r.scope,
        }),
        verification: Verification {
            hash: crate::chain::prefixed_hex("hmac-sha256:", &f.mac),
            verified,
        },
    })
}

/// The page's events, decoded and their MACs rechecked. The records are first touched in
/// page order, so that their cache misses overlap instead of queuing one per decode.
/// (Splitting a page of 100 between two threads was tried: on this 2-core machine, shared,
/// the second thread's start and wait cost more than it saved: 243 vs 315 µs per query.)
fn entries(
    segs: &[Arc<Segment>],
    hits: &[Hit],
    inner: &Inner,
    include_details: bool,
) -> Result<Vec<AuditLogEntry>> {
    let mut touch = 0u8;
    for h in hits {
        touch ^= segs[h.seg]
            .bytes()
            .get(h.offset as usize)
            .copied()
            .unwrap_or(0);
    }
    std::hint::black_box(touch);
    hits.iter()
        .map(|h| entry(&segs[h.seg], h, inner, include_details))
        .collect()
}

/// Loads the cold indexes of every segment `q` may visit (the sealed ones its time range
/// does not exclude, and the unsealed ones) on every core, before the query walks them.
fn preload(inner: &Inner, segs: &[Arc<Segment>], q: &Query) {
    if segs.iter().filter(|s| s.index_cold()).nth(1).is_none() {
        return;
    }
    let (start, end) = bounds(q);
    let wanted: Vec<&Arc<Segment>> = segs
        .iter()
        .filter(|s| !s.footer.is_some_and(|f| f.max_ts < start || f.min_ts > end))
        .collect();
    Segment::preload_indexes(&wanted, inner.index_auth());
}

fn snapshot_of(segs: &[Arc<Segment>], auth: crate::index::IndexAuth<'_>) -> Result<u64> {
    match segs.last() {
        Some(s) => s.with_index(auth, |i| i.first_seq + i.len() as u64),
        None => Ok(0),
    }
}

/// Runs a query for one page.
pub(crate) fn run(inner: &Inner, q: &Query) -> Result<Page> {
    q.validate()?;
    let fp = q.fingerprint();
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, &inner.chain, &inner.log_id, &fp))
        .transpose()?;
    let segs: Vec<Arc<Segment>> = inner.segments_snapshot();
    preload(inner, &segs, q);
    let snapshot = match cursor {
        Some(c) => c.snapshot,
        None => snapshot_of(&segs, inner.index_auth())?,
    };
    let after = |ts: i64, seq: u64| match (cursor, q.order) {
        (None, _) => true,
        (Some(c), Order::Asc) => (ts, seq) > (c.ts, c.seq),
        (Some(c), Order::Desc) => (ts, seq) < (c.ts, c.seq),
    };
    let skip = q.page.map_or(0, |p| (p as usize - 1) * q.limit);
    let keep = skip + q.limit;
    let mut total = 0u64;
    let mut remaining = 0u64;
    let mut hits: Vec<Hit> = Vec::new();
    let terms = Terms::new(q);
    // Segments in the page's direction (newest first for `Desc`), so that once `keep` hits
    // are held, a segment whose every record sorts after the `keep`-th is only counted: its
    // records are never looked at.
    let visit: Vec<usize> = match q.order {
        Order::Asc => (0..segs.len()).collect(),
        Order::Desc => (0..segs.len()).rev().collect(),
    };
    let mut worst: Option<(i64, u64)> = None;
    for si in visit {
        let seg = &segs[si];
        if seg.header.first_seq >= snapshot {
            continue;
        }
        // A sealed segment outside the time range is skipped without touching its index.
        let (start, end) = bounds(q);
        if seg
            .footer
            .is_some_and(|f| f.max_ts < start || f.min_ts > end)
        {
            continue;
        }
        seg.with_index(inner.index_auth(), |idx| {
            let last_seq = (idx.first_seq + idx.len() as u64).saturating_sub(1);
            let can_place = match (worst, q.order) {
                (None, _) => true,
                (Some(w), Order::Desc) => (idx.max_ts, last_seq) > w,
                (Some(w), Order::Asc) => (idx.min_ts, idx.first_seq) < w,
            };
            let keep_here = if can_place { keep } else { 0 };
            if let Some((t, r)) = time_only(idx, q, snapshot, cursor, si, keep_here, &mut hits) {
                total += t;
                remaining += r;
                return;
            }
            let whole = start <= idx.min_ts
                && idx.max_ts <= end
                && idx.first_seq + idx.len() as u64 <= snapshot;
            if whole && cursor.is_none() && idx.ts_ascending && terms.coded_only() {
                if let Some((n, ords)) = coded_whole(idx, &terms, q.order, keep_here) {
                    total += n;
                    remaining += n;
                    hits.extend(ords.iter().map(|&o| hit(idx, si, o)));
                    return;
                }
            }
            let ords = segment_matches(idx, q, &terms, snapshot);
            total += ords.len() as u64;
            if idx.ts_ascending {
                // Ordinal order is (timestamp, seq) order: the matches after the cursor are
                // one run of `ords`, and only its `keep` nearest can make the page.
                let key = |o: &u32| (idx.ts[*o as usize], idx.first_seq + u64::from(*o));
                let run: &[u32] = match (cursor, q.order) {
                    (None, _) => &ords,
                    (Some(c), Order::Asc) => {
                        &ords[ords.partition_point(|o| key(o) <= (c.ts, c.seq))..]
                    }
                    (Some(c), Order::Desc) => {
                        &ords[..ords.partition_point(|o| key(o) < (c.ts, c.seq))]
                    }
                };
                remaining += run.len() as u64;
                let take = match q.order {
                    Order::Asc => &run[..run.len().min(keep_here)],
                    Order::Desc => &run[run.len().saturating_sub(keep_here)..],
                };
                hits.extend(take.iter().map(|&o| hit(idx, si, o)));
            } else {
                for o in ords {
                    let h = hit(idx, si, o);
                    if after(h.ts, h.seq) {
                        remaining += 1;
                        if can_place {
                            hits.push(h);
                        }
                    }
                }
            }
        })?;
        // Only the `keep` best hits so far can make the page; the `keep`-th of them bounds
        // what later segments must offer.
        if hits.len() >= keep {
            let cmp = |a: &Hit, b: &Hit| page_cmp(a, b, q.order);
            if hits.len() > keep {
                hits.select_nth_unstable_by(keep - 1, cmp);
                hits.truncate(keep);
            }
            worst = hits.iter().max_by(|a, b| cmp(a, b)).map(|h| (h.ts, h.seq));
        }
    }
    select_top(&mut hits, q.order, keep);
    let hits: Vec<Hit> = hits.into_iter().skip(skip).collect();
    let remaining = remaining.saturating_sub(skip as u64);
    let audit_logs = entries(&segs, &hits, inner, q.include_details)?;
    let page = match q.page {
        Some(p) => u32::try_from(p).unwrap_or(u32::MAX),
        None => cursor.map_or(0, |c| c.page) + 1,
    };
    let next_page = match hits.last() {
        Some(last) if remaining > hits.len() as u64 => Some(
            Cursor {
                ts: last.ts,
                seq: last.seq,
                snapshot,
                page,
            }
            .encode(&inner.chain, &inner.log_id, &fp),
        ),
        _ => None,
    };
    Ok(Page {
        total_count: total,
        returned_count: audit_logs.len(),
        page: u64::from(page),
        audit_logs,
        next_page,
    })
}

/// A query without term filters, answered from the time index alone: counts by binary
/// search, and takes only the first `keep` entries after the cursor in the sort direction.
/// Returns `(matches, matches after the cursor)`, or `None` when term filters apply.
fn time_only(
    idx: &SegIndex,
    q: &Query,
    snapshot: u64,
    cursor: Option<Cursor>,
    si: usize,
    keep: usize,
    hits: &mut Vec<Hit>,
) -> Option<(u64, u64)> {
    let has_terms = !(q.user_ids.is_empty()
        && q.emails.is_empty()
        && q.event_types.is_empty()
        && q.actions.is_empty()
        && q.statuses.is_empty()
        && q.severities.is_empty()
        && q.resource_types.is_empty()
        && q.resource_ids.is_empty()
        && q.ips.is_empty());
    if has_terms {
        return None;
    }
    let (start, end) = bounds(q);
    if idx.is_empty() || idx.max_ts < start || idx.min_ts > end || idx.first_seq >= snapshot {
        return Some((0, 0));
    }
    let first = idx.first_seq;
    let key = |e: &(i64, u32)| (e.0, first + e.1 as u64);
    let lo = idx.time.partition_point(|e| e.0 < start);
    let hi = idx.time.partition_point(|e| e.0 <= end).max(lo);
    let window = &idx.time[lo..hi];
    // Entries at or past the paging snapshot belong to later appends (only possible in the
    // newest segments).
    let live = |e: &(i64, u32)| first + (e.1 as u64) < snapshot;
    let all_live = first + idx.len() as u64 <= snapshot;
    let count = |w: &[(i64, u32)]| -> u64 {
        if all_live {
            w.len() as u64
        } else {
            w.iter().filter(|e| live(e)).count() as u64
        }
    };
    let total = count(window);
    let after: &[(i64, u32)] = match (cursor, q.order) {
        (None, _) => window,
        (Some(c), Order::Asc) => &window[window.partition_point(|e| key(e) <= (c.ts, c.seq))..],
        (Some(c), Order::Desc) => &window[..window.partition_point(|e| key(e) < (c.ts, c.seq))],
    };
    let remaining = count(after);
    let mut push = |e: &(i64, u32)| {
        if live(e) {
            hits.push(hit(idx, si, e.1));
        }
    };
    let mut taken = 0;
    match q.order {
        Order::Asc => {
            for e in after {
                if taken == keep {
                    break;
                }
                taken += usize::from(live(e));
                push(e);
            }
        }
        Order::Desc => {
            for e in after.iter().rev() {
                if taken == keep {
                    break;
                }
                taken += usize::from(live(e));
                push(e);
            }
        }
    }
    Some((total, remaining))
}

/// Page order: by `(timestamp, seq)` in `order` (the first of a page sorts first).
fn page_cmp(a: &Hit, b: &Hit, order: Order) -> std::cmp::Ordering {
    let o = (a.ts, a.seq).cmp(&(b.ts, b.seq));
    if order == Order::Desc {
        o.reverse()
    } else {
        o
    }
}

/// Sorts `hits` in `order` by `(timestamp, seq)` and keeps the first `limit`.
fn select_top(hits: &mut Vec<Hit>, order: Order, limit: usize) {
    let cmp = |a: &Hit, b: &Hit| page_cmp(a, b, order);
    if hits.len() > limit {
        hits.select_nth_unstable_by(limit, cmp);
        hits.truncate(limit);
    }
    hits.sort_unstable_by(cmp);
}

/// Calls `f` for every match of `q` (ignoring limit and cursor) in log order (`Asc`) or
/// reverse log order (`Desc`), one segment at a time, so memory stays bounded by a segment.
pub(crate) fn for_each_match(
    inner: &Inner,
    q: &Query,
    mut f: impl FnMut(&Segment, &Hit) -> Result<()>,
) -> Result<()> {
    let segs: Vec<Arc<Segment>> = inner.segments_snapshot();
    let snapshot = snapshot_of(&segs, inner.index_auth())?;
    let terms = Terms::new(q);
    let order: Vec<usize> = match q.order {
        Order::Asc => (0..segs.len()).collect(),
        Order::Desc => (0..segs.len()).rev().collect(),
    };
    for si in order {
        let seg = &segs[si];
        let hits: Vec<Hit> = seg.with_index_transient(inner.index_auth(), |idx| {
            let mut ords = segment_matches(idx, q, &terms, snapshot);
            if q.order == Order::Desc {
                ords.reverse();
            }
            ords.into_iter().map(|o| hit(idx, si, o)).collect()
        })?;
        for h in &hits {
            f(seg, h)?;
        }
    }
    Ok(())
}

/// The record with this seq as a returned event (its MAC rechecked), if the log holds it.
pub(crate) fn entry_at(
    inner: &Inner,
    seq: u64,
    include_details: bool,
) -> Result<Option<AuditLogEntry>> {
    let segs: Vec<Arc<Segment>> = inner.segments_snapshot();
    let Some(si) = segs.iter().rposition(|s| s.header.first_seq <= seq) else {
        return Ok(None);
    };
    let h = segs[si].with_index(inner.index_auth(), |idx| {
        let ord = seq - idx.first_seq;
        (ord < idx.len() as u64).then(|| hit(idx, si, ord as u32))
    })?;
    h.map(|h| entry(&segs[si], &h, inner, include_details))
        .transpose()
}

/// The newest record whose `event_id` is `id`, scanning segments newest first and decoding
/// only the borrowed fields of each record (no index holds event ids).
pub(crate) fn find_event_id(
    inner: &Inner,
    id: &str,
    include_details: bool,
) -> Result<Option<AuditLogEntry>> {
    let segs: Vec<Arc<Segment>> = inner.segments_snapshot();
    for si in (0..segs.len()).rev() {
        let seg = &segs[si];
        let found = seg.with_index(inner.index_auth(), |idx| -> Result<Option<Hit>> {
            let bytes = seg.bytes();
            for ord in (0..idx.len()).rev() {
                let off = idx.offsets[ord] as usize;
                let f =
                    decode_frame(bytes.get(off..).unwrap_or(&[])).map_err(|e| Error::Corrupt {
                        file: seg.path.clone(),
                        offset: off as u64,
                        detail: format!("indexed record {}: {e}", idx.first_seq + ord as u64),
                    })?;
                if codec::decode_record_fields(f.payload, f.flags)
                    .is_ok_and(|fields| fields.event_id == id)
                {
                    return Ok(Some(hit(idx, si, ord as u32)));
                }
            }
            Ok(None)
        })??;
        if let Some(h) = found {
            seg.check_mapped()?;
            return entry(seg, &h, inner, include_details).map(Some);
        }
    }
    Ok(None)
}

/// One distinct value of a field and how many matching events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

/// The distinct values of one field over the events a query matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facet {
    /// The dimension's name, as asked (`event_type`, `user_id`, …).
    pub dimension: String,
    /// How many distinct values there are (whatever `limit` kept).
    pub distinct: u64,
    /// The most frequent values first (ties by value), at most `limit` of them.
    pub values: Vec<FacetValue>,
}

/// The dimensions [`Log::facets`](crate::Log::facets) takes.
pub const FACET_DIMENSIONS: [&str; 9] = [
    "event_type",
    "action",
    "status",
    "severity",
    "user_id",
    "email",
    "ip_address",
    "resource_type",
    "resource_id",
];

fn facet_field(name: &str) -> Option<Field> {
    Some(match name {
        "event_type" => Field::EventType,
        "action" => Field::Action,
        "status" => Field::Status,
        "severity" => Field::Severity,
        "user_id" => Field::UserId,
        "email" => Field::Email,
        "ip_address" | "ip" => Field::Ip,
        "resource_type" => Field::ResourceType,
        "resource_id" => Field::ResourceId,
        _ => return None,
    })
}

/// Counts the distinct values of each dimension over the events `q` matches (its filters;
/// not its limit, cursor or page), from the term indexes.
pub(crate) fn facets(inner: &Inner, q: &Query, dims: &[&str], limit: usize) -> Result<Vec<Facet>> {
    q.validate()?;
    if dims.is_empty() {
        return Err(Error::InvalidQuery {
            param: "dimensions".into(),
            message: format!("name at least one of {}", FACET_DIMENSIONS.join(", ")),
        });
    }
    let fields: Vec<Field> = dims
        .iter()
        .map(|d| {
            facet_field(d).ok_or_else(|| Error::InvalidQuery {
                param: "dimensions".into(),
                message: format!(
                    "unknown dimension {d:?}; expected one of {}",
                    FACET_DIMENSIONS.join(", ")
                ),
            })
        })
        .collect::<Result<_>>()?;
    let segs: Vec<Arc<Segment>> = inner.segments_snapshot();
    preload(inner, &segs, q);
    let snapshot = snapshot_of(&segs, inner.index_auth())?;
    let terms = Terms::new(q);
    let (start, end) = bounds(q);
    let mut counts: Vec<std::collections::HashMap<String, u64>> =
        vec![std::collections::HashMap::new(); fields.len()];
    for seg in &segs {
        if seg.header.first_seq >= snapshot {
            break;
        }
        if seg
            .footer
            .is_some_and(|f| f.max_ts < start || f.min_ts > end)
        {
            continue;
        }
        seg.with_index(inner.index_auth(), |idx| {
            let ords = segment_matches(idx, q, &terms, snapshot);
            if ords.is_empty() {
                return;
            }
            // Every record of the segment matches: posting lengths are the counts.
            let mask: Option<Vec<bool>> = (ords.len() != idx.len()).then(|| {
                let mut m = vec![false; idx.len()];
                for &o in &ords {
                    m[o as usize] = true;
                }
                m
            });
            for (fi, field) in fields.iter().enumerate() {
                for (term, posts) in &idx.terms[*field as usize] {
                    let n = match &mask {
                        None => posts.len(),
                        Some(m) => posts.iter().filter(|&&o| m[o as usize]).count(),
                    } as u64;
                    if n > 0 {
                        match counts[fi].get_mut(term.as_str()) {
                            Some(c) => *c += n,
                            None => {
                                counts[fi].insert(term.as_str().to_string(), n);
                            }
                        }
                    }
                }
            }
        })?;
    }
    Ok(dims
        .iter()
        .zip(counts)
        .map(|(d, m)| {
            let distinct = m.len() as u64;
            let mut values: Vec<FacetValue> = m
                .into_iter()
                .map(|(value, count)| FacetValue { value, count })
                .collect();
            values
                .sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(limit);
            Facet {
                dimension: d.to_string(),
                distinct,
                values,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Slot;
    use crate::{Durability, HmacKey, Log, Options};

    fn cached_indexes(log: &Log) -> usize {
        log.inner_segments()
            .iter()
            .filter(|s| matches!(&s.index, Slot::Lazy(c) if c.get().is_some()))
            .count()
    }

    /// A streaming scan (reports, exports) holds one segment's index at a time: it leaves
    /// no index cached behind it, while a query caches what it loads.
    #[test]
    fn streaming_scans_do_not_cache_segment_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let key = HmacKey::from_bytes(&[7u8; 32]).unwrap();
        {
            let log = Log::open(
                dir.path(),
                Options::new(key.clone())
                    .segment_bytes(65536)
                    .durability(Durability::Buffered),
            )
            .unwrap();
            let mut g = crate::sample::Generator::standard(3);
            let evs: Vec<_> = (0..3000).map(|_| g.next_event()).collect();
            for c in evs.chunks(100) {
                log.append_batch(c).unwrap();
            }
            drop(log);
        }
        let log = Log::open_read_only(dir.path(), key).unwrap();
        let segs = log.inner_segments().len();
        assert!(segs > 5, "the test needs many segments, got {segs}");
        let mut seen = 0u64;
        for_each_match(log.inner_ref(), &Query::default(), |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 3000);
        // `snapshot_of` caches the newest segment's index only.
        assert!(cached_indexes(&log) <= 1, "{} cached", cached_indexes(&log));
        let page = log.query(&Query::default()).unwrap();
        assert_eq!(page.total_count, 3000);
        assert!(
            cached_indexes(&log) > 1,
            "a query caches the indexes it loads"
        );
    }

    /// Queries on the coded fields only (counted from each segment's joint code table where
    /// it covers the segment whole) and queries on other fields (whose later segments are
    /// only counted once the page is full) return exactly what a filter over every event
    /// returns: total, and the page's seqs in order, in both orders, for first and later
    /// pages, with and without a time range.
    #[test]
    fn coded_counts_and_page_pruning_match_a_full_filter() {
        let dir = tempfile::tempdir().unwrap();
        let key = HmacKey::from_bytes(&[7u8; 32]).unwrap();
        let evs: Vec<crate::Event> = crate::sample::Generator::standard(11).take(4000).collect();
        {
            let log = Log::open(
                dir.path(),
                Options::new(key.clone())
                    .segment_bytes(128 * 1024)
                    .durability(Durability::Buffered),
            )
            .unwrap();
            for c in evs.chunks(250) {
                log.append_batch(c).unwrap();
            }
        }
        let ts: Vec<i64> = evs
            .iter()
            .map(|e| e.timestamp.unwrap().timestamp_nanos_opt().unwrap())
            .collect();
        let log = Log::open_read_only(dir.path(), key).unwrap();
        assert!(log.inner_segments().len() > 5);
        let sev = |s: &str| s.parse::<crate::Severity>().unwrap();
        let mut queries: Vec<Query> = Vec::new();
        for (types, statuses, sevs) in [
            (vec!["security_event"], vec![], vec!["critical"]),
            (vec![], vec!["failed"], vec!["high"]),
            (vec![], vec!["failed", "blocked"], vec!["high", "medium"]),
            (vec!["authentication"], vec!["success"], vec![]),
            (vec!["no_such_type"], vec![], vec!["high"]),
        ] {
            let mut q = Query::new();
            q.event_types = types.iter().map(|s| s.to_string()).collect();
            q.statuses = statuses.iter().map(|s| s.to_string()).collect();
            q.severities = sevs.iter().map(|s| sev(s)).collect();
            queries.push(q);
        }
        let mut q = Query::new();
        q.user_ids = vec!["user-00007".into(), "user-00100".into()];
        queries.push(q);
        let mut all = Vec::new();
        for base in queries {
            for (order, limit, page, range) in [
                (Order::Desc, 1, None, None),
                (Order::Desc, 100, None, None),
                (Order::Asc, 7, Some(3), None),
                (Order::Asc, 100, None, Some((ts[500], ts[3100]))),
                (Order::Desc, 50, Some(2), Some((ts[10], ts[1999]))),
            ] {
                let mut q = base.clone();
                q.order = order;
                q.limit = limit;
                q.page = page;
                if let Some((a, b)) = range {
                    q.start = Some(a);
                    q.end = Some(b);
                }
                all.push(q);
            }
        }
        for q in all {
            let t = Terms::new(&q);
            let mut want: Vec<u64> = (0..evs.len())
                .filter(|&i| {
                    let e = &evs[i];
                    let any = |f: Field, v: Option<&str>| {
                        t.asked
                            .iter()
                            .filter(|(g, _)| *g == f)
                            .all(|(_, vals)| v.is_some_and(|v| vals.iter().any(|x| x == v)))
                    };
                    any(Field::EventType, Some(&e.event_type))
                        && any(Field::Status, Some(&e.status))
                        && any(Field::Severity, Some(e.severity.as_str()))
                        && any(Field::UserId, e.actor.user_id.as_deref())
                        && q.start.is_none_or(|s| ts[i] >= s)
                        && q.end.is_none_or(|x| ts[i] <= x)
                })
                .map(|i| i as u64)
                .collect();
            want.sort_by_key(|&i| (ts[i as usize], i));
            if q.order == Order::Desc {
                want.reverse();
            }
            let page = log.query(&q).unwrap();
            assert_eq!(page.total_count, want.len() as u64, "{q:?}");
            let skip = (q.page.unwrap_or(1) as usize - 1) * q.limit;
            let expect: Vec<u64> = want.iter().skip(skip).take(q.limit).copied().collect();
            let got: Vec<u64> = page.audit_logs.iter().map(|e| e.seq).collect();
            assert_eq!(got, expect, "{q:?}");
            assert!(page.audit_logs.iter().all(|e| e.verification.verified));
        }
    }
}
