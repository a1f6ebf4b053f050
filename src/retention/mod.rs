//! Retention, compaction, legal holds and redaction: every way records leave the log or lose
//! content, each one leaving a log that still verifies and a signed record of what went.
//!
//! - Retention removes whole sealed segments from the start of the log whose newest event is
//!   older than the cutoff, after writing a signed entry to `policy.log` that names the seq
//!   range, the last chain value and the policy. `verify` then checks that the remaining log
//!   continues exactly from that chain value and that everything removed was past the cutoff.
//! - Compaction rewrites the first remaining segment without its expired prefix (never
//!   reordering, never changing a chain value), recorded the same way.
//! - Legal holds (global, by actor, by time range) stop deletion and redaction of what they
//!   cover.
//! - Redaction replaces a payload by its digest, a key-signed redaction marker and the event
//!   with the redacted fields cleared; the chain still verifies through the digest.
//!
//! Every action is also appended to the log itself as an `audit_log` event. All of them are
//! crash-safe: new files are written under a temporary name, synced and renamed into place,
//! and `open` finishes an interrupted removal.

pub mod policy;
mod rewrite;

pub(crate) use rewrite::remove_segment_files as remove_files;

/// Rewrites a sealed segment without its first `skip` records.
pub(crate) fn rewrite_segment(inner: &Inner, seg: &Segment, skip: usize) -> Result<Arc<Segment>> {
    rewrite::rewrite(inner, seg, skip, &HashMap::new())
}

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::codec::{self, Redacted, RedactionScope};
use crate::error::{Error, Result};
use crate::event::{format_ts, Event, Severity};
use crate::format::FRAME_FLAG_REDACTED;
use crate::index::Field;
use crate::log::Inner;
use crate::segment::Segment;
use policy::{Hold, HoldScope, PolicyEntry, Removed, RemovedSegment, RetentionRun};

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// What a retention run did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub retention_days: u32,
    /// Events older than this were eligible (RFC 3339); absent when retention is off.
    pub cutoff: Option<String>,
    /// Whole segments removed (or to be removed).
    pub removed: Option<Removed>,
    /// The expired prefix dropped from a straddling segment (with `compact`).
    pub compacted: Option<Removed>,
    /// Eligible segments kept because a legal hold covers them.
    pub held_back: Vec<String>,
    /// A segment that holds expired records but also newer ones: kept whole until it can go
    /// (or until compaction rewrites it).
    pub straddling: Option<String>,
    /// Records whose content was redacted by a per-event-type override.
    pub content_redacted: u64,
}

/// What a redaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedactReport {
    /// Seqs redacted now.
    pub redacted: Vec<u64>,
    /// Seqs that were already redacted.
    pub already_redacted: Vec<u64>,
    /// Seq of the `audit_log` event recording the redaction.
    pub audit_seq: Option<u64>,
}

fn hold_covers_segment(h: &Hold, seg: &Segment) -> Result<bool> {
    let Some(ft) = seg.footer else {
        return Ok(true);
    };
    Ok(match &h.scope {
        HoldScope::Global => true,
        HoldScope::TimeRange { start_ns, end_ns } => ft.min_ts <= *end_ns && ft.max_ts >= *start_ns,
        // From the records themselves (MAC-checked before anything is removed), not from
        // the index, which only a CRC protects.
        HoldScope::Actor { user_id } => {
            let mut found = false;
            for (_, f) in seg.frames() {
                if codec::decode_record(f.payload, f.flags)?
                    .0
                    .user_id
                    .as_deref()
                    == Some(user_id.as_str())
                {
                    found = true;
                    break;
                }
            }
            found
        }
    })
}

fn hold_covers_record(h: &Hold, ts: i64, user_id: Option<&str>) -> bool {
    match &h.scope {
        HoldScope::Global => true,
        HoldScope::TimeRange { start_ns, end_ns } => (*start_ns..=*end_ns).contains(&ts),
        HoldScope::Actor { user_id: u } => user_id == Some(u.as_str()),
    }
}

fn sealed_prefix(inner: &Inner) -> Vec<Arc<Segment>> {
    let segs = inner.segments.read().clone();
    let n = segs.len();
    // Never the newest segment (the active one), and only sealed segments.
    segs.into_iter()
        .take(n.saturating_sub(1))
        .take_while(|s| {
            s.footer.is_some()
                && matches!(
                    s.data,
                    crate::segment::SegmentData::Sealed(_)
                        | crate::segment::SegmentData::Archived(_)
                )
        })
        .collect()
}

fn audit_event(action: &str, severity: Severity, details: serde_json::Value) -> Event {
    let mut e = Event::new("audit_log", action);
    e.severity = severity;
    e.actor.user_id = Some("auditlog".into());
    e.details = details.into();
    e
}

fn write_policy(inner: &Inner, entry: PolicyEntry) -> Result<()> {
    let mut pol = inner.policy.lock();
    let (mac, len) = policy::append(
        &inner.dir,
        &inner.chain,
        &inner.log_id,
        &pol.last_mac,
        pol.len,
        &entry,
    )?;
    pol.entries.push(entry);
    pol.last_mac = mac;
    pol.len = len;
    Ok(())
}

/// Plans and (unless `dry_run`) applies retention at `now_ns`.
pub(crate) fn apply(
    inner: &Arc<Inner>,
    now_ns: i64,
    dry_run: bool,
    compact: bool,
) -> Result<RetentionReport> {
    let _m = inner.maintenance.lock();
    apply_locked(inner, now_ns, dry_run, compact)
}

/// The scheduler's run: skipped when another maintenance operation holds the lock (a
/// redaction may be waiting for this very worker thread).
pub(crate) fn scheduled(inner: &Arc<Inner>, now_ns: i64) {
    if let Some(_m) = inner.maintenance.try_lock() {
        let _ = apply_locked(inner, now_ns, false, false);
        let _ = archive_locked(inner, now_ns, false);
    }
}

fn apply_locked(
    inner: &Arc<Inner>,
    now_ns: i64,
    dry_run: bool,
    compact: bool,
) -> Result<RetentionReport> {
    if inner.read_only && !dry_run {
        return Err(Error::ReadOnly);
    }
    if !dry_run {
        finish_recorded(inner)?;
    }
    let days = inner.opts.retention_days;
    let mut report = RetentionReport {
        dry_run,
        retention_days: days,
        cutoff: None,
        removed: None,
        compacted: None,
        held_back: Vec::new(),
        straddling: None,
        content_redacted: 0,
    };
    let holds = inner.policy.lock().active_holds();
    let mut tree_keep = None;
    if days > 0 {
        let cutoff = now_ns.saturating_sub(i64::from(days) * DAY_NS);
        report.cutoff = Some(format_ts(cutoff));
        let mut removable: Vec<Arc<Segment>> = Vec::new();
        let mut straddling = None;
        'segs: for seg in sealed_prefix(inner) {
            let ft = seg.footer.expect("sealed");
            if ft.max_ts >= cutoff {
                if ft.min_ts < cutoff {
                    straddling = Some(seg);
                }
                break;
            }
            for h in &holds {
                if hold_covers_segment(h, &seg)? {
                    report.held_back.push(seg.file_name());
                    break 'segs;
                }
            }
            // Only what verifies is removed: the decision above rests on the footer's times,
            // which only a CRC protects, so the segment's MACs and footer are checked first.
            if let Some(f) = crate::verify::check_segment(&seg, &inner.chain, &inner.log_id) {
                return Err(Error::Corrupt {
                    file: seg.path.clone(),
                    offset: f.offset.unwrap_or(0),
                    detail: format!(
                        "retention refuses to remove a segment that does not verify: {f}"
                    ),
                });
            }
            removable.push(seg);
        }
        report.straddling = straddling.as_ref().map(|s| s.file_name());
        if let (Some(first), Some(last)) = (removable.first(), removable.last()) {
            let lf = last.footer.expect("sealed");
            report.removed = Some(Removed {
                from_seq: first.header.first_seq,
                to_seq: lf.last_seq,
                count: removable
                    .iter()
                    .map(|s| s.footer.map_or(0, |f| f.count))
                    .sum(),
                last_hash: crate::chain::hex(&lf.last_mac),
                segments: removable
                    .iter()
                    .map(|s| {
                        let f = s.footer.expect("sealed");
                        RemovedSegment {
                            file: s.file_name(),
                            first_seq: f.first_seq,
                            last_seq: f.last_seq,
                            max_ts: f.max_ts,
                        }
                    })
                    .collect(),
                compacted: false,
            });
        }
        if compact && report.held_back.is_empty() {
            if let Some(seg) = straddling {
                if let Some(f) = crate::verify::check_segment(&seg, &inner.chain, &inner.log_id) {
                    return Err(Error::Corrupt {
                        file: seg.path.clone(),
                        offset: f.offset.unwrap_or(0),
                        detail: format!(
                            "compaction refuses to rewrite a segment that does not verify: {f}"
                        ),
                    });
                }
                report.compacted = plan_compaction(&seg, cutoff, &holds)?;
            }
        }
        if !dry_run {
            let run = RetentionRun {
                retention_days: days,
                cutoff_ns: cutoff,
                time_ns: now_ns,
                removed: report.removed.clone(),
                held_back: report.held_back.clone(),
            };
            // The Merkle tree is extended over what goes before anything is recorded or
            // removed: a tree that cannot be extended stops the run here.
            let through = [&report.removed, &report.compacted]
                .into_iter()
                .flatten()
                .map(|r| r.to_seq)
                .max();
            let tree = crate::tiles::prepare_retention(inner, through)?;
            // The signed record goes first: a crash after it leaves segments that `open`
            // finishes removing and that `verify` knows were removed by policy.
            write_policy(inner, PolicyEntry::Retention(run))?;
            if !removable.is_empty() {
                inner
                    .segments
                    .write()
                    .retain(|s| !removable.iter().any(|r| Arc::ptr_eq(r, s)));
                for s in &removable {
                    rewrite::remove_segment_files("retention.delete", &s.path)?;
                }
                crate::segment::sync_dir(&inner.dir)?;
            }
            if let (Some(c), Some(seg)) = (&report.compacted, report.straddling.as_ref()) {
                let seg = inner
                    .segments
                    .read()
                    .iter()
                    .find(|s| &s.file_name() == seg)
                    .cloned()
                    .ok_or(Error::Empty("straddling segment vanished"))?;
                write_policy(
                    inner,
                    PolicyEntry::Retention(RetentionRun {
                        retention_days: days,
                        cutoff_ns: cutoff,
                        time_ns: now_ns,
                        removed: Some(c.clone()),
                        held_back: Vec::new(),
                    }),
                )?;
                let skip = (c.to_seq + 1 - seg.header.first_seq) as usize;
                let new = rewrite::rewrite(inner, &seg, skip, &HashMap::new())?;
                replace_segment(inner, &seg, new);
            }
            tree_keep = tree;
        }
    }
    report.content_redacted = content_overrides(inner, now_ns, dry_run, &holds)?;
    if !dry_run
        && (report.removed.is_some() || report.compacted.is_some() || report.content_redacted > 0)
    {
        let details = serde_json::to_value(&report).map_err(|e| Error::Codec(e.to_string()))?;
        crate::log::writer_append(
            inner,
            &audit_event("retention_applied", Severity::Medium, details),
        )?;
    }
    // Last: a failure here loses nothing (the removal is recorded) and the next run retries.
    if let Some(keep) = tree_keep {
        crate::tiles::after_retention(inner, &keep).map_err(|e| {
            Error::Transparency(format!(
                "retention ran (policy.log records it), but pruning the Merkle tree's tiles \
                 failed; the next run retries: {e}"
            ))
        })?;
    }
    Ok(report)
}

/// Finishes a removal that policy.log records but that failed part-way in this process (a
/// compaction whose rewrite or swap failed): the first sealed segment still holds records up
/// to `retained_to`. They are dropped now, as the next open would; planning from the segment
/// as it is would record the same removal a second time, which `verify` rejects.
fn finish_recorded(inner: &Inner) -> Result<()> {
    let Some((to, _)) = inner.policy.lock().retained_to() else {
        return Ok(());
    };
    for seg in sealed_prefix(inner) {
        let ft = seg.footer.expect("sealed");
        if seg.header.first_seq > to {
            break;
        }
        if ft.last_seq <= to {
            inner.segments.write().retain(|s| !Arc::ptr_eq(s, &seg));
            rewrite::remove_segment_files("retention.delete", &seg.path)?;
            crate::segment::sync_dir(&inner.dir)?;
            continue;
        }
        let skip = (to + 1 - seg.header.first_seq) as usize;
        let new = rewrite::rewrite(inner, &seg, skip, &HashMap::new())?;
        replace_segment(inner, &seg, new);
        break;
    }
    Ok(())
}

/// The expired prefix of a straddling segment, stopping at the first record that is not
/// expired or that a hold covers (never reordering).
fn plan_compaction(seg: &Segment, cutoff: i64, holds: &[Hold]) -> Result<Option<Removed>> {
    let mut last: Option<(u64, [u8; 32])> = None;
    let mut max_ts = i64::MIN;
    let mut n = 0u64;
    for (_, f) in seg.frames() {
        if f.ts >= cutoff {
            break;
        }
        let user = codec::decode_record(f.payload, f.flags)?.0.user_id;
        if holds
            .iter()
            .any(|h| hold_covers_record(h, f.ts, user.as_deref()))
        {
            break;
        }
        last = Some((f.seq, f.mac));
        max_ts = max_ts.max(f.ts);
        n += 1;
    }
    let count = seg.footer.map_or(0, |f| f.count);
    Ok(match last {
        Some((to, mac)) if n < count => Some(Removed {
            from_seq: seg.header.first_seq,
            to_seq: to,
            count: n,
            last_hash: crate::chain::hex(&mac),
            segments: vec![RemovedSegment {
                file: seg.file_name(),
                first_seq: seg.header.first_seq,
                last_seq: to,
                max_ts,
            }],
            compacted: true,
        }),
        _ => None,
    })
}

fn replace_segment(inner: &Inner, old: &Arc<Segment>, new: Arc<Segment>) {
    let mut segs = inner.segments.write();
    if let Some(slot) = segs.iter_mut().find(|s| Arc::ptr_eq(s, old)) {
        *slot = new;
    }
}

/// Per-event-type overrides: content (details) of older events is redacted.
fn content_overrides(
    inner: &Arc<Inner>,
    now_ns: i64,
    dry_run: bool,
    holds: &[Hold],
) -> Result<u64> {
    let mut total = 0u64;
    for (event_type, days) in inner.opts.retention_overrides.clone() {
        let cutoff = now_ns.saturating_sub(i64::from(days) * DAY_NS);
        for seg in sealed_prefix(inner) {
            let ft = seg.footer.expect("sealed");
            if ft.min_ts >= cutoff {
                continue;
            }
            let mut targets: Vec<u64> = Vec::new();
            seg.with_index(inner.index_auth(), |idx| {
                for &o in idx.postings(Field::EventType, &event_type) {
                    if idx.ts[o as usize] < cutoff {
                        targets.push(idx.first_seq + o as u64);
                    }
                }
            })?;
            if targets.is_empty() {
                continue;
            }
            let reason = format!("retention: {event_type} content kept {days} days");
            let (repl, _) = redactions_for(
                inner,
                &seg,
                &targets,
                &reason,
                RedactionScope::Content,
                holds,
                false,
            )?;
            total += repl.len() as u64;
            if !dry_run && !repl.is_empty() {
                let new = rewrite::rewrite(inner, &seg, 0, &repl)?;
                replace_segment(inner, &seg, new);
            }
        }
    }
    Ok(total)
}

/// Redacted payloads for `seqs` of `seg` (skipping ones already redacted); a hold covering
/// any of them is an error when `strict`, else those are skipped.
#[allow(clippy::type_complexity)]
fn redactions_for(
    inner: &Inner,
    seg: &Segment,
    seqs: &[u64],
    reason: &str,
    scope: RedactionScope,
    holds: &[Hold],
    strict: bool,
) -> Result<(HashMap<u64, Vec<u8>>, Vec<u64>)> {
    let mut repl = HashMap::new();
    let mut already = Vec::new();
    let want: std::collections::HashSet<u64> = seqs.iter().copied().collect();
    for (_, f) in seg.frames() {
        if !want.contains(&f.seq) {
            continue;
        }
        if f.flags & FRAME_FLAG_REDACTED != 0 {
            already.push(f.seq);
            continue;
        }
        let stored = codec::decode(f.payload)?;
        if let Some(h) = holds
            .iter()
            .find(|h| hold_covers_record(h, f.ts, stored.user_id.as_deref()))
        {
            if strict {
                return Err(Error::Held {
                    seq: f.seq,
                    hold: h.id.clone(),
                });
            }
            continue;
        }
        let p = Redacted::build(&inner.chain, &inner.log_id, f.seq, f.payload, reason, scope)?;
        repl.insert(f.seq, p);
    }
    Ok((repl, already))
}

/// Seals the active segment if it holds any of `seqs`, and waits until every rolled segment
/// is sealed (one rolled by an earlier append may still be queued for its seal).
fn seal_active_if_needed(inner: &Arc<Inner>, seqs: &[u64]) -> Result<()> {
    {
        let mut g = inner.writer.lock();
        let w = g.as_mut().ok_or(Error::ReadOnly)?;
        if w.active.count > 0 && seqs.iter().any(|&s| s >= w.active.first_seq) {
            crate::log::publish(inner, w)?;
            crate::log::roll_for_maintenance(inner, w)?;
        }
    }
    crate::log::worker_barrier(inner)
}

/// Redacts the given records (personal data or content), recording it as an audit event.
pub(crate) fn redact(
    inner: &Arc<Inner>,
    seqs: &[u64],
    reason: &str,
    scope: RedactionScope,
) -> Result<RedactReport> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    if reason.trim().is_empty() {
        return Err(Error::InvalidEvent("a redaction needs a reason".into()));
    }
    let mut seqs: Vec<u64> = seqs.to_vec();
    seqs.sort_unstable();
    seqs.dedup();
    let seqs = &seqs[..];
    let _m = inner.maintenance.lock();
    let next = crate::log::next_seq_of(inner);
    if let Some(&bad) = seqs.iter().find(|&&s| s >= next) {
        return Err(Error::Empty(if bad == u64::MAX {
            "no such record"
        } else {
            "no record with that seq (past the end of the log)"
        }));
    }
    seal_active_if_needed(inner, seqs)?;
    let holds = inner.policy.lock().active_holds();
    let mut report = RedactReport {
        redacted: Vec::new(),
        already_redacted: Vec::new(),
        audit_seq: None,
    };
    let segs = inner.segments_snapshot();
    let mut plans = Vec::new();
    for seg in &segs {
        let Some(ft) = seg.footer else { continue };
        let mine: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|s| (ft.first_seq..=ft.last_seq).contains(s))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let (repl, already) = redactions_for(inner, seg, &mine, reason, scope, &holds, true)?;
        report.already_redacted.extend(already);
        plans.push((seg.clone(), repl));
    }
    let found: usize =
        plans.iter().map(|(_, r)| r.len()).sum::<usize>() + report.already_redacted.len();
    if found < seqs.len() {
        return Err(Error::Empty(
            "some of those records are no longer in the log (removed by retention)",
        ));
    }
    for (seg, repl) in plans {
        if repl.is_empty() {
            continue;
        }
        let mut done: Vec<u64> = repl.keys().copied().collect();
        let new = rewrite::rewrite(inner, &seg, 0, &repl)?;
        replace_segment(inner, &seg, new);
        done.sort_unstable();
        report.redacted.extend(done);
    }
    if !report.redacted.is_empty() {
        let shown: Vec<u64> = report.redacted.iter().copied().take(1000).collect();
        let details = serde_json::json!({
            "redacted_seqs": shown,
            "count": report.redacted.len(),
            "reason": reason,
            "scope": scope,
        });
        let r = crate::log::writer_append(
            inner,
            &audit_event("record_redacted", Severity::High, details),
        )?;
        report.audit_seq = Some(r.seq);
    }
    Ok(report)
}

/// Every seq of one actor (for erasure requests).
pub(crate) fn seqs_of_actor(inner: &Inner, user_id: &str) -> Result<Vec<u64>> {
    let segs = inner.segments_snapshot();
    let mut out = Vec::new();
    for seg in segs {
        seg.with_index(inner.index_auth(), |i| {
            out.extend(
                i.postings(Field::UserId, user_id)
                    .iter()
                    .map(|&o| i.first_seq + o as u64),
            )
        })?;
    }
    Ok(out)
}

/// Adds a legal hold; recorded in `policy.log` and as an audit event.
pub(crate) fn add_hold(inner: &Arc<Inner>, scope: HoldScope, reason: &str) -> Result<Hold> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    if reason.trim().is_empty() {
        return Err(Error::InvalidEvent("a legal hold needs a reason".into()));
    }
    if let HoldScope::TimeRange { start_ns, end_ns } = scope {
        if start_ns > end_ns {
            return Err(Error::InvalidQuery {
                param: "end".into(),
                message: "the hold's end is before its start".into(),
            });
        }
    }
    let _m = inner.maintenance.lock();
    let hold = Hold {
        id: format!("hold-{}", uuid::Uuid::now_v7().simple()),
        scope,
        reason: reason.to_string(),
        time_ns: crate::event::now_nanos(),
    };
    write_policy(inner, PolicyEntry::HoldAdded(hold.clone()))?;
    let details = serde_json::to_value(&hold).map_err(|e| Error::Codec(e.to_string()))?;
    crate::log::writer_append(
        inner,
        &audit_event("legal_hold_added", Severity::High, details),
    )?;
    Ok(hold)
}

/// Lifts a hold; recorded in `policy.log` and as an audit event.
pub(crate) fn remove_hold(inner: &Arc<Inner>, id: &str, reason: &str) -> Result<()> {
    if inner.read_only {
        return Err(Error::ReadOnly);
    }
    if reason.trim().is_empty() {
        return Err(Error::InvalidEvent(
            "lifting a legal hold needs a reason".into(),
        ));
    }
    let _m = inner.maintenance.lock();
    if !inner
        .policy
        .lock()
        .active_holds()
        .iter()
        .any(|h| h.id == id)
    {
        return Err(Error::InvalidQuery {
            param: "hold".into(),
            message: format!("no active legal hold with id {id:?}"),
        });
    }
    let time_ns = crate::event::now_nanos();
    write_policy(
        inner,
        PolicyEntry::HoldRemoved {
            id: id.to_string(),
            reason: reason.to_string(),
            time_ns,
        },
    )?;
    let details = serde_json::json!({"id": id, "reason": reason});
    crate::log::writer_append(
        inner,
        &audit_event("legal_hold_removed", Severity::High, details),
    )?;
    Ok(())
}

/// What an archive run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveReport {
    pub dry_run: bool,
    pub archive_days: u32,
    /// Segments moved (or, for a dry run, to be moved) to the archive tier.
    pub archived: Vec<String>,
    /// Bytes of the originals and of their compressed archive files.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Moves sealed segments whose newest event is older than `archive_days` to the archive.
pub(crate) fn archive(inner: &Arc<Inner>, now_ns: i64, dry_run: bool) -> Result<ArchiveReport> {
    let _m = inner.maintenance.lock();
    archive_locked(inner, now_ns, dry_run)
}

fn archive_locked(inner: &Arc<Inner>, now_ns: i64, dry_run: bool) -> Result<ArchiveReport> {
    if inner.read_only && !dry_run {
        return Err(Error::ReadOnly);
    }
    let days = inner.opts.archive_days;
    let mut report = ArchiveReport {
        dry_run,
        archive_days: days,
        archived: Vec::new(),
        bytes_before: 0,
        bytes_after: 0,
    };
    if days == 0 {
        return Ok(report);
    }
    let cutoff = now_ns.saturating_sub(i64::from(days) * DAY_NS);
    for seg in sealed_prefix(inner) {
        let ft = seg.footer.expect("sealed");
        if ft.max_ts >= cutoff || !matches!(seg.data, crate::segment::SegmentData::Sealed(_)) {
            continue;
        }
        report.archived.push(seg.file_name());
        report.bytes_before += seg.file_bytes().len() as u64;
        if dry_run {
            continue;
        }
        let apath = crate::archive::write(
            &inner.dir,
            &seg.file_name(),
            seg.file_bytes(),
            &seg.header,
            &ft,
        )?;
        report.bytes_after += std::fs::metadata(&apath).map(|m| m.len()).unwrap_or(0);
        let archived = Arc::new(Segment {
            data: crate::segment::SegmentData::Archived(crate::archive::ArchivedData::new(
                apath.clone(),
            )),
            path: apath,
            header: seg.header,
            footer: Some(ft),
            records_end: ft.records_end as usize,
            index: crate::index::Slot::lazy(),
            index_writable: false,
        });
        replace_segment(inner, &seg, archived);
        rewrite::remove_segment_files("archive.write", &seg.path)?;
        crate::segment::sync_dir(&inner.dir)?;
    }
    if !dry_run && !report.archived.is_empty() {
        let details = serde_json::to_value(&report).map_err(|e| Error::Codec(e.to_string()))?;
        crate::log::writer_append(
            inner,
            &audit_event("segments_archived", Severity::Info, details),
        )?;
    }
    Ok(report)
}
