//! Query execution: per segment, candidates from the term indexes (or the time index when no
//! term filter is given), then the time range, the paging snapshot and the cursor; an exact
//! count of every match; the page's events decoded and their MACs rechecked.

use std::sync::Arc;

use serde::Serialize;

use super::cursor::Cursor;
use super::{Order, Query};
use crate::chain::{ct_eq, hex, Chain};
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

fn union(lists: Vec<&[u32]>) -> Vec<u32> {
    match lists.len() {
        0 => Vec::new(),
        1 => lists[0].to_vec(),
        _ => {
            let mut v: Vec<u32> = lists.concat();
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

fn intersect(a: Vec<u32>, b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Ordinals matching every term filter, ascending; `None` when the query has none.
fn term_candidates(idx: &SegIndex, q: &Query) -> Option<Vec<u32>> {
    let mut lists: Vec<Vec<u32>> = Vec::new();
    let exact = |field: Field, vals: &[String]| -> Option<Vec<u32>> {
        (!vals.is_empty()).then(|| union(vals.iter().map(|v| idx.postings(field, v)).collect()))
    };
    let emails: Vec<String> = q.emails.iter().map(|e| normalize_email(e)).collect();
    let sevs: Vec<String> = q
        .severities
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    for l in [
        exact(Field::UserId, &q.user_ids),
        exact(Field::Email, &emails),
        exact(Field::EventType, &q.event_types),
        exact(Field::Action, &q.actions),
        exact(Field::Status, &q.statuses),
        exact(Field::Severity, &sevs),
        exact(Field::ResourceType, &q.resource_types),
        exact(Field::ResourceId, &q.resource_ids),
    ]
    .into_iter()
    .flatten()
    {
        lists.push(l);
    }
    if !q.ips.is_empty() {
        let mut parts: Vec<&[u32]> = Vec::new();
        let hosts: Vec<String> = q
            .ips
            .iter()
            .filter(|n| n.is_host())
            .map(|n| n.addr().to_string())
            .collect();
        for h in &hosts {
            parts.push(idx.postings(Field::Ip, h));
        }
        let nets: Vec<_> = q.ips.iter().filter(|n| !n.is_host()).collect();
        if !nets.is_empty() {
            for (term, posts) in &idx.terms[Field::Ip as usize] {
                if let Ok(ip) = term.parse() {
                    if nets.iter().any(|n| n.contains(ip)) {
                        parts.push(posts);
                    }
                }
            }
        }
        lists.push(union(parts));
    }
    if lists.is_empty() {
        return None;
    }
    lists.sort_by_key(|l| l.len());
    let mut it = lists.into_iter();
    let mut acc = it.next().unwrap_or_default();
    for l in it {
        if acc.is_empty() {
            break;
        }
        acc = intersect(acc, &l);
    }
    Some(acc)
}

fn bounds(q: &Query) -> (i64, i64) {
    (q.start.unwrap_or(i64::MIN), q.end.unwrap_or(i64::MAX))
}

/// Matches of one segment in seq order (ascending ordinals).
fn segment_matches(idx: &SegIndex, q: &Query, snapshot: u64) -> Vec<u32> {
    let (start, end) = bounds(q);
    if idx.is_empty() || idx.max_ts < start || idx.min_ts > end || idx.first_seq >= snapshot {
        return Vec::new();
    }
    let in_snapshot = |ord: u32| idx.first_seq + (ord as u64) < snapshot;
    match term_candidates(idx, q) {
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
    chain: &Chain,
    log_id: &[u8; 16],
    include_details: bool,
) -> Result<AuditLogEntry> {
    let bytes = seg.bytes();
    let corrupt = |at: u32, what: String| Error::Corrupt {
        file: seg.path.clone(),
        offset: at as u64,
        detail: what,
    };
    let f = decode_frame(bytes.get(h.offset as usize..).unwrap_or(&[]))
        .map_err(|e| corrupt(h.offset, format!("indexed record {}: {e}", h.seq)))?;
    let prev = match h.prev_offset {
        None => seg.header.prev_hash,
        Some(p) => {
            decode_frame(bytes.get(p as usize..).unwrap_or(&[]))
                .map_err(|e| corrupt(p, format!("record before {}: {e}", h.seq)))?
                .mac
        }
    };
    let verified = f.seq == h.seq
        && codec::chained_digest(chain, log_id, f.seq, f.flags, f.payload)
            .is_ok_and(|d| ct_eq(&chain.step(&prev, f.seq, f.ts, &d), &f.mac));
    let (stored, redaction) = codec::decode_record(f.payload, f.flags)
        .map_err(|e| corrupt(h.offset, format!("record {}: {e}", h.seq)))?;
    let mut event = stored
        .into_event(f.ts)
        .map_err(|e| corrupt(h.offset, format!("record {}: {e}", h.seq)))?;
    if !include_details {
        event.details = serde_json::Value::Null;
    }
    Ok(AuditLogEntry {
        event,
        seq: f.seq,
        redacted: redaction.map(|r| crate::RedactionInfo {
            reason: r.reason,
            scope: r.scope,
        }),
        verification: Verification {
            hash: format!("hmac-sha256:{}", hex(&f.mac)),
            verified,
        },
    })
}

fn snapshot_of(segs: &[Arc<Segment>]) -> Result<u64> {
    match segs.last() {
        Some(s) => s.with_index(|i| i.first_seq + i.len() as u64),
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
    let segs: Vec<Arc<Segment>> = inner.segments.read().clone();
    let snapshot = match cursor {
        Some(c) => c.snapshot,
        None => snapshot_of(&segs)?,
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
    for (si, seg) in segs.iter().enumerate() {
        if seg.header.first_seq >= snapshot {
            break;
        }
        // A sealed segment outside the time range is skipped without touching its index.
        let (start, end) = bounds(q);
        if seg
            .footer
            .is_some_and(|f| f.max_ts < start || f.min_ts > end)
        {
            continue;
        }
        seg.with_index(|idx| {
            let ords = segment_matches(idx, q, snapshot);
            total += ords.len() as u64;
            for o in ords {
                let h = hit(idx, si, o);
                if after(h.ts, h.seq) {
                    remaining += 1;
                    hits.push(h);
                }
            }
            // Keep memory bounded by the page size on broad queries.
            if hits.len() > 4 * keep + 4096 {
                select_top(&mut hits, q.order, keep);
            }
        })?;
    }
    select_top(&mut hits, q.order, keep);
    let hits: Vec<Hit> = hits.into_iter().skip(skip).collect();
    let remaining = remaining.saturating_sub(skip as u64);
    let mut audit_logs = Vec::with_capacity(hits.len());
    for h in &hits {
        audit_logs.push(entry(
            &segs[h.seg],
            h,
            &inner.chain,
            &inner.log_id,
            q.include_details,
        )?);
    }
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

/// Sorts `hits` in `order` by `(timestamp, seq)` and keeps the first `limit`.
fn select_top(hits: &mut Vec<Hit>, order: Order, limit: usize) {
    let cmp = |a: &Hit, b: &Hit| {
        let o = (a.ts, a.seq).cmp(&(b.ts, b.seq));
        if order == Order::Desc {
            o.reverse()
        } else {
            o
        }
    };
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
    let segs: Vec<Arc<Segment>> = inner.segments.read().clone();
    let snapshot = snapshot_of(&segs)?;
    let order: Vec<usize> = match q.order {
        Order::Asc => (0..segs.len()).collect(),
        Order::Desc => (0..segs.len()).rev().collect(),
    };
    for si in order {
        let seg = &segs[si];
        let hits: Vec<Hit> = seg.with_index(|idx| {
            let mut ords = segment_matches(idx, q, snapshot);
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
