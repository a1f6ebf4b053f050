//! Chain verification: every frame's CRC, every record's MAC, seq density, segment
//! continuity, and checkpoints. Read-only. Segments are checked in parallel (each header
//! anchors its part of the chain); the links between them are checked afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::chain::{ct_eq, hex, unhex, Chain, Hash};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::format::{decode_frame, Footer, FrameError, SegmentHeader, HEADER_LEN};
use crate::log::Inner;
use crate::segment::{next_valid_frame, Segment};

/// What kind of failure verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A frame, header or footer fails its checksum (torn write or corruption).
    CorruptFrame,
    /// A record's MAC does not match its contents and predecessor.
    TamperedRecord,
    /// Seqs jump forward: records are missing.
    MissingRecords,
    /// Seqs go backwards or out of order.
    ReorderedRecords,
    /// A whole segment is missing (a gap between segments, or the start of the log).
    MissingSegment,
    /// A segment belongs to another log or does not continue this log's chain.
    ForeignSegment,
    /// A checkpoint covers records that are no longer there (tail truncation, rollback).
    Truncated,
    /// A checkpoint names a record whose chain value differs (history was rewritten).
    CheckpointMismatch,
    /// A checkpoint does not verify with this key, or names another log.
    BadCheckpoint,
    /// `policy.log` (retention runs, legal holds) was edited, reordered or cut in the middle.
    PolicyTampered,
    /// A retention record removed records its own policy did not allow, or removals do not
    /// form one contiguous prefix of the log.
    RemovedBeyondPolicy,
    /// A segment's index side file does not verify with this log's key: it was edited (to
    /// hide events from queries, say) or made elsewhere. Queries never use it (they rebuild
    /// the index from the segment), but its presence is evidence of tampering.
    TamperedIndex,
    /// Forward-secure log: an epoch seal (`fss.seals`) was edited, forged with a later key, or
    /// is out of order.
    TamperedSeal,
    /// Forward-secure log: epochs without a seal (the log was cut back and resumed with a
    /// later key, or seals were removed).
    MissingEpochSeal,
    /// Forward-secure log: a record is dated after the end of the epoch it was sealed in.
    RecordOutsideEpoch,
    /// The log is forward-secure and verifying it needs the auditor's initial key.
    ForwardSecureKeyRequired,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::CorruptFrame => "corrupt frame",
            FailureKind::TamperedRecord => "tampered record",
            FailureKind::MissingRecords => "missing records",
            FailureKind::ReorderedRecords => "reordered records",
            FailureKind::MissingSegment => "missing segment",
            FailureKind::ForeignSegment => "foreign segment",
            FailureKind::Truncated => "truncated behind a checkpoint",
            FailureKind::CheckpointMismatch => "checkpoint mismatch",
            FailureKind::BadCheckpoint => "bad checkpoint",
            FailureKind::PolicyTampered => "policy log tampered",
            FailureKind::RemovedBeyondPolicy => "removed beyond policy",
            FailureKind::TamperedIndex => "tampered index",
            FailureKind::TamperedSeal => "tampered epoch seal",
            FailureKind::MissingEpochSeal => "missing epoch seal",
            FailureKind::RecordOutsideEpoch => "record outside its epoch",
            FailureKind::ForwardSecureKeyRequired => "forward-secure key required",
        }
    }
}

/// The first failure found, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The seq where it was found (the expected seq for missing records).
    pub seq: Option<u64>,
    /// Segment file name, relative to the data directory.
    pub segment: Option<String>,
    /// Byte offset inside that segment.
    pub offset: Option<u64>,
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        if let Some(s) = self.seq {
            write!(f, " at seq {s}")?;
        }
        if let Some(seg) = &self.segment {
            write!(f, " in {seg}")?;
            if let Some(o) = self.offset {
                write!(f, " at byte {o}")?;
            }
        }
        write!(f, ": {}", self.detail)
    }
}

/// The outcome of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// True when no failure was found (warnings allowed).
    pub ok: bool,
    pub records: u64,
    pub segments: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// `hmac-sha256:<hex>` of the last verified record.
    pub last_hash: Option<String>,
    /// How many checkpoints were checked against the records.
    pub checkpoints_checked: usize,
    /// How many index side files were authenticated (0 when skipped).
    pub indexes_checked: usize,
    pub failure: Option<Failure>,
    /// Things worth knowing that are not failures (a torn tail no checkpoint covers).
    pub warnings: Vec<String>,
}

/// Per-segment outcome.
struct SegResult {
    first_seq: u64,
    count: u64,
    last_seq: Option<u64>,
    last_mac: Option<Hash>,
    header: Option<SegmentHeader>,
    failure: Option<Failure>,
    /// A torn tail: offset, and the seq it would have held.
    torn: Option<(u64, u64)>,
    /// MACs of records that checkpoints name.
    found: Vec<(u64, Hash)>,
}

fn fail(
    kind: FailureKind,
    seq: Option<u64>,
    seg: &Segment,
    offset: Option<u64>,
    detail: String,
) -> Failure {
    Failure {
        kind,
        seq,
        segment: Some(seg.file_name()),
        offset,
        detail,
    }
}

/// Checks one segment on its own (CRCs, MACs from its header's chain value, seq density, and
/// that its footer matches its records); `None` when it is intact. A forward-secure segment's
/// MACs need epoch keys that the writer no longer has: only its structure is checked here.
pub(crate) fn check_segment(seg: &Segment, chain: &Chain, log_id: &[u8; 16]) -> Option<Failure> {
    let r = verify_segment(seg, chain, log_id, &[], &AtomicU64::new(0), JOB_BYTES, None);
    if let Err(crate::Error::Corrupt { offset, detail, .. }) = seg.check_intact() {
        return Some(fail(
            FailureKind::CorruptFrame,
            None,
            seg,
            Some(offset),
            detail,
        ));
    }
    match (r.failure, r.torn) {
        (Some(f), _) => Some(f),
        (None, Some((off, seq))) => Some(fail(
            FailureKind::CorruptFrame,
            Some(seq),
            seg,
            Some(off),
            "damaged bytes after the last record".into(),
        )),
        (None, None) if seg.footer.is_none() => Some(fail(
            FailureKind::CorruptFrame,
            None,
            seg,
            None,
            "segment is not sealed".into(),
        )),
        (None, None) => None,
    }
}

/// Bytes per verification job. A segment is split into jobs of about this size, each
/// starting at the first frame found (a valid CRC) at or after its share's first byte, from
/// the MAC stored in the 36 bytes before it, with the seq that frame claims; so every core
/// stays busy whatever the number and sizes of the segments. A job's result only counts when
/// the job before it passed and ended exactly at that frame, expecting that seq: which makes
/// the start a real frame boundary and the MAC it started from a verified one. Otherwise the
/// job before it simply goes on to the end of the segment. So the first failure of the
/// earliest job is the one a single pass would have met first, with the same kind, seq,
/// offset and detail.
///
/// Debug builds (the test suite) use jobs of 4 KiB (a dozen records), so that every tamper
/// and crash test also crosses job boundaries.
const JOB_BYTES: usize = if cfg!(debug_assertions) {
    4096
} else {
    4 << 20
};

/// How far past its share's first byte a job looks for a frame to start at.
const JOB_SCAN: usize = 1 << 20;

/// A segment whose header checks passed: where each of its jobs starts.
struct Plan {
    header: SegmentHeader,
    /// `(offset, claimed seq)` of each job's first frame, ascending; the last job runs to
    /// the end of the segment (zero tail, footer or damage), the others to the next start.
    starts: Vec<(usize, u64)>,
}

/// The outcome of one job.
#[derive(Default)]
struct JobResult {
    count: u64,
    last_seq: Option<u64>,
    last_mac: Option<Hash>,
    min_ts: i64,
    max_ts: i64,
    failure: Option<Failure>,
    torn: Option<(u64, u64)>,
    found: Vec<(u64, Hash)>,
    /// The footer the job reached, and its offset: it is checked against the whole
    /// segment's records once the jobs are merged.
    footer: Option<(usize, Footer)>,
    /// The job stopped at the next job's start, expecting its seq (else it ran to the end).
    reached: bool,
}

/// Header-level checks of a segment and its split into jobs of about `job_bytes`; the
/// segment's result when a header-level check fails.
fn plan_segment(
    seg: &Segment,
    log_id: &[u8; 16],
    job_bytes: usize,
) -> Result<Plan, Box<SegResult>> {
    let bytes = seg.file_bytes();
    let file_name = seg
        .path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let name_seq = crate::segment::parse_segment_name(&file_name).unwrap_or(seg.header.first_seq);
    let mut r = SegResult {
        first_seq: name_seq,
        count: 0,
        last_seq: None,
        last_mac: None,
        header: None,
        failure: None,
        torn: None,
        found: Vec::new(),
    };
    if let Some(e) = seg.load_error() {
        r.failure = Some(fail(
            FailureKind::CorruptFrame,
            Some(name_seq),
            seg,
            Some(0),
            e,
        ));
        return Err(Box::new(r));
    }
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            r.failure = Some(fail(
                FailureKind::CorruptFrame,
                Some(name_seq),
                seg,
                Some(0),
                format!("segment header: {e}"),
            ));
            return Err(Box::new(r));
        }
    };
    r.header = Some(header);
    if &header.log_id != log_id {
        r.failure = Some(fail(
            FailureKind::ForeignSegment,
            Some(header.first_seq),
            seg,
            Some(16),
            format!(
                "segment belongs to log {}, not this log {}",
                hex(&header.log_id),
                hex(log_id)
            ),
        ));
        return Err(Box::new(r));
    }
    if header.first_seq != name_seq {
        r.failure = Some(fail(
            FailureKind::CorruptFrame,
            Some(name_seq),
            seg,
            Some(32),
            format!(
                "header says first seq {}, the file name says {name_seq}",
                header.first_seq
            ),
        ));
        return Err(Box::new(r));
    }
    let mut starts = vec![(HEADER_LEN, header.first_seq)];
    let mut pos = HEADER_LEN + job_bytes;
    while pos < bytes.len() {
        let scan_end = pos.saturating_add(JOB_SCAN).min(bytes.len());
        let Some((off, seq)) =
            (pos..scan_end).find_map(|o| decode_frame(&bytes[o..]).ok().map(|f| (o, f.seq)))
        else {
            break;
        };
        starts.push((off, seq));
        pos = off + job_bytes;
    }
    Ok(Plan { header, starts })
}

/// Checks the frames of one job: from `start` (offset, claimed seq) to `stop` (the next
/// job's start, when reached at that offset expecting that seq), or to the end of the
/// segment.
#[allow(clippy::too_many_arguments)]
fn verify_job(
    seg: &Segment,
    chain: &Chain,
    log_id: &[u8; 16],
    header: &SegmentHeader,
    start: (usize, u64),
    stop: Option<(usize, u64)>,
    wanted: &[u64],
    progress: &AtomicU64,
    fss: Option<&crate::fss::FssVerifier>,
) -> JobResult {
    let bytes = seg.file_bytes();
    let mut epochs = fss.map(|v| v.cursor());
    // A forward-secure segment checked without the epoch keys (retention on the writer,
    // which holds only the current epoch's key): structure only, no MACs.
    let structure_only =
        fss.is_none() && header.flags & crate::format::HEADER_FLAG_FORWARD_SECURE != 0;
    let mut r = JobResult {
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        ..Default::default()
    };
    let (mut off, mut expected) = start;
    // The first job starts from the header's chain value, the others from the MAC of the
    // frame before them (the last 36 bytes of a frame are its MAC and CRC).
    let mut prev = if off == HEADER_LEN {
        header.prev_hash
    } else {
        crate::format::arr32(bytes, off - crate::format::FRAME_TRAILER_LEN)
    };
    let mut want = wanted.partition_point(|&w| w < expected);
    let mut batch = 0u64;
    loop {
        if stop == Some((off, expected)) {
            r.reached = true;
            break;
        }
        let rest = &bytes[off..];
        if rest.is_empty() {
            break;
        }
        match decode_frame(rest) {
            Ok(f) => {
                if f.seq != expected {
                    let next_seq = decode_frame(&rest[f.len..]).ok().map(|n| n.seq);
                    let kind = if f.seq < expected || next_seq == Some(expected) {
                        FailureKind::ReorderedRecords
                    } else {
                        FailureKind::MissingRecords
                    };
                    r.failure = Some(fail(
                        kind,
                        Some(expected),
                        seg,
                        Some(off as u64),
                        format!("expected seq {expected}, found seq {}", f.seq),
                    ));
                    break;
                }
                let d = match crate::codec::chained_digest(chain, log_id, f.seq, f.flags, f.payload)
                {
                    Ok(d) => d,
                    Err(why) => {
                        r.failure = Some(fail(
                            FailureKind::TamperedRecord,
                            Some(f.seq),
                            seg,
                            Some(off as u64),
                            why,
                        ));
                        break;
                    }
                };
                if let Some(cur) = epochs.as_mut() {
                    if let Err((kind, seq, why)) = cur.check(chain, &prev, f.seq, f.ts, &d, &f.mac)
                    {
                        r.failure = Some(fail(kind, seq, seg, Some(off as u64), why));
                        break;
                    }
                } else if !structure_only && !ct_eq(&chain.step(&prev, f.seq, f.ts, &d), &f.mac) {
                    r.failure = Some(fail(
                        FailureKind::TamperedRecord,
                        Some(f.seq),
                        seg,
                        Some(off as u64),
                        "MAC does not match the record's contents and its predecessor".into(),
                    ));
                    break;
                }
                if wanted.get(want) == Some(&f.seq) {
                    r.found.push((f.seq, f.mac));
                    want += 1;
                }
                prev = f.mac;
                r.min_ts = r.min_ts.min(f.ts);
                r.max_ts = r.max_ts.max(f.ts);
                r.last_seq = Some(f.seq);
                r.last_mac = Some(f.mac);
                r.count += 1;
                expected += 1;
                off += f.len;
                batch += 1;
                if batch == 4096 {
                    progress.fetch_add(batch, Ordering::Relaxed);
                    batch = 0;
                }
            }
            Err(FrameError::Zero) if crate::format::is_zero(rest) => break,
            Err(FrameError::Footer) => {
                match Footer::decode(rest) {
                    Some(ft) => r.footer = Some((off, ft)),
                    None => {
                        r.failure = Some(fail(
                            FailureKind::CorruptFrame,
                            Some(expected),
                            seg,
                            Some(off as u64),
                            "segment footer fails its checksum".into(),
                        ));
                    }
                }
                break;
            }
            Err(e) => {
                match next_valid_frame(bytes, off + 1) {
                    Some(next) => {
                        r.failure = Some(fail(
                            FailureKind::CorruptFrame,
                            Some(expected),
                            seg,
                            Some(off as u64),
                            format!("{e}; valid data follows at byte {next}"),
                        ));
                    }
                    None => r.torn = Some((off as u64, expected)),
                }
                break;
            }
        }
    }
    progress.fetch_add(batch, Ordering::Relaxed);
    r
}

/// Merges a segment's job results, in order, into what one pass over it finds.
fn merge_jobs(seg: &Segment, plan: &Plan, jobs: Vec<JobResult>) -> SegResult {
    let header = plan.header;
    let mut r = SegResult {
        first_seq: header.first_seq,
        count: 0,
        last_seq: None,
        last_mac: None,
        header: Some(header),
        failure: None,
        torn: None,
        found: Vec::new(),
    };
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for j in jobs {
        r.count += j.count;
        if j.last_seq.is_some() {
            r.last_seq = j.last_seq;
            r.last_mac = j.last_mac;
        }
        min_ts = min_ts.min(j.min_ts);
        max_ts = max_ts.max(j.max_ts);
        r.found.extend(j.found);
        if j.failure.is_some() || j.torn.is_some() {
            r.failure = j.failure;
            r.torn = j.torn;
            return r;
        }
        let Some((off, ft)) = j.footer else {
            if j.reached {
                continue;
            }
            return r;
        };
        let bytes = seg.file_bytes();
        let rest = &bytes[off..];
        let consistent = ft.records_end == off as u64
            && ft.count == r.count
            && ft.first_seq == header.first_seq
            && Some(ft.last_seq) == r.last_seq
            && ft.min_ts == min_ts
            && ft.max_ts == max_ts
            && r.last_mac.is_some_and(|m| ct_eq(&m, &ft.last_mac));
        if !consistent {
            r.failure = Some(fail(
                FailureKind::CorruptFrame,
                r.last_seq,
                seg,
                Some(off as u64),
                "footer does not match the records before it".into(),
            ));
        } else if rest.len() > crate::format::FOOTER_LEN
            && !crate::format::is_zero(&rest[crate::format::FOOTER_LEN..])
        {
            r.failure = Some(fail(
                FailureKind::CorruptFrame,
                r.last_seq,
                seg,
                Some((off + crate::format::FOOTER_LEN) as u64),
                "bytes after the footer".into(),
            ));
        }
        return r;
    }
    r
}

/// The jobs of a plan: `(start, stop)` of each.
fn jobs_of(plan: &Plan) -> impl Iterator<Item = ((usize, u64), Option<(usize, u64)>)> + '_ {
    plan.starts
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, plan.starts.get(i + 1).copied()))
}

/// Checks one segment on this thread (its jobs of about `job_bytes` in turn).
fn verify_segment(
    seg: &Segment,
    chain: &Chain,
    log_id: &[u8; 16],
    wanted: &[u64],
    progress: &AtomicU64,
    job_bytes: usize,
    fss: Option<&crate::fss::FssVerifier>,
) -> SegResult {
    let plan = match plan_segment(seg, log_id, job_bytes) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let jobs = jobs_of(&plan)
        .map(|(start, stop)| {
            verify_job(
                seg,
                chain,
                log_id,
                &plan.header,
                start,
                stop,
                wanted,
                progress,
                fss,
            )
        })
        .collect();
    merge_jobs(seg, &plan, jobs)
}

/// Verifies the log behind `inner` and the given external checkpoints.
pub(crate) fn verify_log(
    inner: &Inner,
    external: &[Checkpoint],
    progress: Option<&(dyn Fn(u64) + Sync)>,
    check_indexes: bool,
) -> Result<VerifyReport> {
    // Checkpoints are read before the segment snapshot is taken, so each one covers records
    // that are already in the snapshot.
    let cp_log = if inner.read_only {
        inner.ro_checkpoints.clone()
    } else {
        crate::checkpoint::read_log(&inner.dir)?
    };
    let mut warnings = Vec::new();
    for (line, problem) in &cp_log.bad_lines {
        warnings.push(format!(
            "{} line {line} is not a checkpoint and was skipped: {problem}",
            crate::checkpoint::CHECKPOINT_FILE
        ));
    }
    if cp_log.torn_last_line {
        warnings.push(format!(
            "{} ends with a torn line (a crash while appending a checkpoint); it was skipped",
            crate::checkpoint::CHECKPOINT_FILE
        ));
    }
    let mut checkpoints: Vec<(Checkpoint, bool)> =
        cp_log.checkpoints.into_iter().map(|c| (c, false)).collect();
    checkpoints.extend(external.iter().cloned().map(|c| (c, true)));
    let mut first_failure: Option<Failure> = None;
    // Forward-secure logs: every epoch key, derived from the initial key, and the seals.
    let fss_failure = |(kind, seq, detail): crate::fss::Problem| Failure {
        kind,
        seq,
        segment: Some(crate::fss::SEALS_FILE.into()),
        offset: None,
        detail,
    };
    let fss = match crate::fss::verifier_for(inner)? {
        crate::fss::Mode::Plain => None,
        crate::fss::Mode::Refused(p) => {
            first_failure = Some(fss_failure(p));
            None
        }
        crate::fss::Mode::ForwardSecure(mut v) => {
            warnings.append(&mut v.warnings);
            if let Some(p) = v.problem.take() {
                first_failure = Some(fss_failure(p));
            }
            Some(v)
        }
    };
    let fss = fss.as_deref();
    // The seals were read before the snapshot, so each covers records already in it (a
    // writer publishes records before sealing them); a read-only open's snapshot is older.
    let snapshot_ns = if inner.read_only {
        inner.loaded_ns.load(Ordering::Acquire)
    } else {
        i64::MAX
    };
    let segs: Vec<Arc<Segment>> = inner.segments_snapshot();

    // Check checkpoint signatures up front and collect the seqs they name.
    let mut valid_cps: Vec<(u64, Hash, bool)> = Vec::new();
    for (cp, is_external) in &checkpoints {
        match cp.check(&inner.chain) {
            Ok((id, hash)) if id == inner.log_id => valid_cps.push((cp.seq, hash, *is_external)),
            Ok((id, _)) => {
                let msg = format!(
                    "checkpoint for seq {} names log {}, not this log {}",
                    cp.seq,
                    hex(&id),
                    hex(&inner.log_id)
                );
                if *is_external {
                    first_failure.get_or_insert(Failure {
                        kind: FailureKind::BadCheckpoint,
                        seq: Some(cp.seq),
                        segment: None,
                        offset: None,
                        detail: msg,
                    });
                } else {
                    warnings.push(msg);
                }
            }
            Err(e) => {
                first_failure.get_or_insert(Failure {
                    kind: FailureKind::BadCheckpoint,
                    seq: Some(cp.seq),
                    segment: None,
                    offset: None,
                    detail: if *is_external {
                        e.to_string()
                    } else {
                        format!("{} (in {})", e, crate::checkpoint::CHECKPOINT_FILE)
                    },
                });
            }
        }
    }
    // Retention: the policy log says which prefix was removed, and by which policy.
    let policy = inner.policy.lock().clone();
    if let Some((line, why)) = &policy.problem {
        first_failure.get_or_insert(Failure {
            kind: FailureKind::PolicyTampered,
            seq: None,
            segment: None,
            offset: None,
            detail: format!(
                "{} line {line}: {why}",
                crate::retention::policy::POLICY_FILE
            ),
        });
    }
    if policy.torn_last_line {
        warnings.push(format!(
            "{} ends with a torn line (a crash while appending); it is ignored",
            crate::retention::policy::POLICY_FILE
        ));
    }
    if let Some(f) = check_removals(&policy) {
        first_failure.get_or_insert(f);
    }
    let retained = policy.retained_to();
    // Segments left behind by an interrupted run (wholly removed, or superseded by their
    // compacted rewrite) are set aside; a writer's next open deletes them.
    let segs = crate::log::set_aside_removed(segs, retained.map(|r| r.0));
    let mut wanted: Vec<u64> = valid_cps.iter().map(|(s, _, _)| *s).collect();
    if let Some((to, _)) = retained {
        wanted.push(to);
    }
    if let Some(v) = fss {
        wanted.extend(v.named_seqs());
    }
    wanted.sort_unstable();
    wanted.dedup();

    // Per-segment checks, in parallel: first each segment's header checks and its split
    // into jobs, then every job of every segment (and every index file) on every core.
    let done = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plans = parallel_map(threads, segs.len(), None, |i| {
        plan_segment(&segs[i], &inner.log_id, JOB_BYTES)
    });
    let jobs: Vec<JobSpec> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().ok().map(|p| (i, p)))
        .flat_map(|(i, p)| jobs_of(p).map(move |(start, stop)| (i, start, stop)))
        .collect();
    let index_jobs = if check_indexes { segs.len() } else { 0 };
    let done = &done;
    let poll = progress.map(|p| move || p(done.load(Ordering::Relaxed)));
    let mut outcomes = parallel_map(
        threads,
        jobs.len() + index_jobs,
        poll.as_ref().map(|p| p as &(dyn Fn() + Sync)),
        |k| match jobs.get(k) {
            Some(&(i, start, stop)) => {
                let Ok(plan) = &plans[i] else {
                    unreachable!("jobs come from plans")
                };
                Job::Records(Box::new(verify_job(
                    &segs[i],
                    &inner.chain,
                    &inner.log_id,
                    &plan.header,
                    start,
                    stop,
                    &wanted,
                    done,
                    fss,
                )))
            }
            None => Job::Index(check_index_file(
                &segs[k - jobs.len()],
                inner.index_auth(),
                fss.is_some(),
            )),
        },
    )
    .into_iter();
    let mut per_seg: Vec<Vec<JobResult>> = segs.iter().map(|_| Vec::new()).collect();
    for &(i, _, _) in &jobs {
        match outcomes.next() {
            Some(Job::Records(r)) => per_seg[i].push(*r),
            _ => unreachable!("record jobs come first"),
        }
    }
    let index_checks: Vec<IndexCheck> = outcomes
        .map(|o| match o {
            Job::Index(c) => c,
            Job::Records(_) => unreachable!("index jobs come last"),
        })
        .collect();
    let results: Vec<SegResult> = plans
        .into_iter()
        .zip(per_seg)
        .zip(&segs)
        .map(|((plan, jobs), seg)| match plan {
            Ok(plan) => merge_jobs(seg, &plan, jobs),
            Err(r) => *r,
        })
        .collect();
    // A segment truncated or resized underneath this process read (partly) as zeros through
    // its map: no verdict about it would be about the file. An error, not a report.
    for seg in &segs {
        seg.check_intact()?;
    }
    if let Some(p) = progress {
        p(done.load(Ordering::Relaxed));
    }

    // Links between segments, in order.
    let genesis = inner.chain.genesis(&inner.log_id);
    let mut records = 0u64;
    let mut first_seq = None;
    let mut last: Option<(u64, Hash)> = retained;
    let mut torn: Option<(String, u64, u64)> = None;
    let mut found: HashMap<u64, Hash> = HashMap::new();
    for (i, (seg, r)) in segs.iter().zip(&results).enumerate() {
        if first_failure.is_some() {
            break;
        }
        // A segment whose own header is bad is reported as such, not as a broken link.
        let header_level = r.header.is_none()
            || r.failure
                .as_ref()
                .is_some_and(|f| f.offset.is_some_and(|o| o < HEADER_LEN as u64));
        if header_level {
            if let Some(f) = &r.failure {
                first_failure = Some(f.clone());
                break;
            }
        }
        if let Some(h) = &r.header {
            let link = match last {
                None if h.first_seq == 0 => (ct_eq(&h.prev_hash, &genesis))
                    .then_some(())
                    .ok_or("the first segment does not start from this log's genesis value"),
                None => Err("the log does not start at seq 0: earlier segments are missing"),
                Some((l, _)) if h.first_seq > l + 1 => {
                    Err("a gap before this segment: a segment is missing")
                }
                // A segment that a retention run removed records from but did not rewrite yet
                // (interrupted): it must hold the retained chain value at `to`, checked below.
                Some((l, _)) if i == 0 && retained.is_some() && h.first_seq <= l => Ok(()),
                Some((l, _)) if h.first_seq <= l => Err("this segment overlaps the previous one"),
                Some((_, mac)) => (ct_eq(&h.prev_hash, &mac))
                    .then_some(())
                    .ok_or("this segment does not continue the chain of the previous one"),
            };
            if let (Err(why), true) = (&link, i == 0 && retained.is_some()) {
                if why.contains("gap") || why.contains("does not continue") {
                    first_failure = Some(fail(
                        if why.contains("gap") {
                            FailureKind::MissingSegment
                        } else {
                            FailureKind::ForeignSegment
                        },
                        Some(last.map_or(0, |(l, _)| l + 1)),
                        seg,
                        Some(0),
                        format!(
                            "the log must continue where retention stopped (after seq {}): {why}",
                            last.map_or(0, |(l, _)| l)
                        ),
                    ));
                    break;
                }
            }
            if let Err(why) = link {
                let kind = match (last, why.contains("missing")) {
                    (_, true) => FailureKind::MissingSegment,
                    (Some((l, _)), _) if h.first_seq <= l => FailureKind::ReorderedRecords,
                    _ => FailureKind::ForeignSegment,
                };
                first_failure = Some(fail(
                    kind,
                    Some(last.map_or(0, |(l, _)| l + 1)),
                    seg,
                    Some(0),
                    why.into(),
                ));
                break;
            }
        }
        if let Some(f) = &r.failure {
            first_failure = Some(f.clone());
            break;
        }
        if let (Some(l), Some(m)) = (r.last_seq, r.last_mac) {
            first_seq = first_seq.or(Some(r.first_seq));
            last = Some((l, m));
        }
        records += r.count;
        found.extend(r.found.iter().copied());
        if let Some((off, seq)) = r.torn {
            if i + 1 != segs.len() {
                first_failure = Some(fail(
                    FailureKind::CorruptFrame,
                    Some(seq),
                    seg,
                    Some(off),
                    "damaged record followed by later segments".into(),
                ));
                break;
            }
            torn = Some((seg.file_name(), off, seq));
        }
    }

    // Checkpoints against what is there.
    let last_seq = last.map(|(l, _)| l);
    let mut checked = 0;
    if first_failure.is_none() {
        if let Some((to, hash)) = retained {
            if found.get(&to).is_some_and(|m| !ct_eq(m, &hash)) {
                first_failure = Some(Failure {
                    kind: FailureKind::CheckpointMismatch,
                    seq: Some(to),
                    segment: None,
                    offset: None,
                    detail: format!(
                        "record {to} differs from the chain value the retention record signed"
                    ),
                });
            }
        }
        let removed_ends: HashMap<u64, String> = policy
            .removals()
            .iter()
            .map(|r| (r.to_seq, r.last_hash.clone()))
            .collect();
        let mut cps = valid_cps.clone();
        cps.sort_by_key(|c| c.0);
        for (seq, hash, external) in cps {
            if first_failure.is_some() {
                break;
            }
            if let Some((to, _)) =
                retained.filter(|(to, _)| seq <= *to && !found.contains_key(&seq))
            {
                // Removed by policy: only a checkpoint at the end of a removed range can be
                // compared (with the retention record's chain value).
                if let Some(h) = removed_ends.get(&seq) {
                    checked += 1;
                    if crate::chain::unhex::<32>(h).is_none_or(|h| !ct_eq(&h, &hash)) {
                        first_failure = Some(Failure {
                            kind: FailureKind::CheckpointMismatch,
                            seq: Some(seq),
                            segment: None,
                            offset: None,
                            detail: format!(
                                "the retention record up to seq {to} disagrees with a checkpoint"
                            ),
                        });
                    }
                }
                continue;
            }
            checked += 1;
            let source = if external {
                "external checkpoint"
            } else {
                "checkpoint"
            };
            if last_seq.is_none_or(|l| seq > l) {
                if let Some((seg, off, torn_seq)) = &torn {
                    if seq >= *torn_seq {
                        first_failure = Some(Failure {
                            kind: FailureKind::CorruptFrame,
                            seq: Some(*torn_seq),
                            segment: Some(seg.clone()),
                            offset: Some(*off),
                            detail: format!(
                                "damaged record at the tail, covered by a {source} for seq {seq}"
                            ),
                        });
                        break;
                    }
                }
                first_failure = Some(Failure {
                    kind: FailureKind::Truncated,
                    seq: Some(last_seq.map_or(0, |l| l + 1)),
                    segment: None,
                    offset: None,
                    detail: format!(
                        "a {source} covers seq {seq} but the log ends at {}: records were removed from the tail or the directory was rolled back",
                        last_seq.map_or("no records".to_string(), |l| format!("seq {l}"))
                    ),
                });
                break;
            }
            match found.get(&seq) {
                Some(m) if ct_eq(m, &hash) => {}
                _ => {
                    first_failure = Some(Failure {
                        kind: FailureKind::CheckpointMismatch,
                        seq: Some(seq),
                        segment: None,
                        offset: None,
                        detail: format!("record {seq} differs from the one the {source} signed: history was rewritten"),
                    });
                    break;
                }
            }
        }
    }
    if let (None, Some(v)) = (&first_failure, fss) {
        let first_kept = segs.first().map(|s| s.header.first_seq);
        if let Some(p) =
            crate::fss::check_seal_bindings(v, &found, &genesis, first_kept, last_seq, snapshot_ns)
        {
            first_failure = Some(fss_failure(p));
        }
    }
    let mut indexes_checked = 0;
    if first_failure.is_none() && check_indexes {
        for (seg, check) in segs.iter().zip(index_checks) {
            match check {
                IndexCheck::Absent => {}
                IndexCheck::Authentic => indexes_checked += 1,
                IndexCheck::Unusable(why) => warnings.push(format!(
                    "index {}: {why}; it is not used, and is rebuilt from the segment",
                    index_name(seg)
                )),
                IndexCheck::Forged => {
                    first_failure = Some(fail(
                        FailureKind::TamperedIndex,
                        seg.footer.map(|f| f.first_seq),
                        seg,
                        None,
                        format!(
                            "index file {} does not verify with this log's key: it was edited or made elsewhere (queries rebuild the index from the segment instead of using it)",
                            index_name(seg)
                        ),
                    ));
                    break;
                }
                IndexCheck::Differs => {
                    first_failure = Some(fail(
                        FailureKind::TamperedIndex,
                        seg.footer.map(|f| f.first_seq),
                        seg,
                        None,
                        format!(
                            "index file {} carries a valid MAC of the writer's log key but does not match the records of its segment (entries hidden, added or moved): in a forward-secure log that key does not protect history, so the file was forged with a stolen key",
                            index_name(seg)
                        ),
                    ));
                    break;
                }
            }
        }
    }
    if first_failure.is_none() {
        if let Some((seg, off, seq)) = &torn {
            warnings.push(format!(
                "torn tail in {seg} at byte {off} (where seq {seq} would start): an unacknowledged write cut short by a crash; no checkpoint covers it. A writer's next open cuts it."
            ));
        }
    }
    Ok(VerifyReport {
        ok: first_failure.is_none(),
        records,
        segments: segs.len(),
        first_seq,
        last_seq,
        last_hash: last.map(|(_, m)| format!("hmac-sha256:{}", hex(&m))),
        checkpoints_checked: checked,
        indexes_checked,
        failure: first_failure,
        warnings,
    })
}

/// A job: its segment, its start and where it stops (see [`verify_job`]).
type JobSpec = (usize, (usize, u64), Option<(usize, u64)>);

/// One unit of parallel work: a job of a segment's records, or one index file.
enum Job {
    Records(Box<JobResult>),
    Index(IndexCheck),
}

/// `f(0..n)` on up to `threads` threads, results in order. With `poll`, this thread calls it
/// every 20 ms while the others work (progress reports).
fn parallel_map<T: Send>(
    threads: usize,
    n: usize,
    poll: Option<&(dyn Fn() + Sync)>,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let slots: Vec<parking_lot::Mutex<Option<T>>> =
        (0..n).map(|_| parking_lot::Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        *slots[i].lock() = Some(f(i));
        finished.fetch_add(1, Ordering::Release);
    };
    let threads = threads.clamp(1, n.max(1));
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(work);
        }
        match poll {
            // This thread reports; the others (at least one) work.
            Some(p) => {
                if threads == 1 {
                    scope.spawn(work);
                }
                while finished.load(Ordering::Acquire) < n {
                    p();
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            None => work(),
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().expect("every item was computed"))
        .collect()
}

enum IndexCheck {
    Absent,
    Authentic,
    /// Damaged, stale or unauthenticated (version 1): not evidence of tampering by itself.
    Unusable(String),
    Forged,
    /// Authentic, but not the index of its segment's records (forward-secure logs).
    Differs,
}

fn index_name(seg: &Segment) -> String {
    seg.index_path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Authenticates a sealed segment's index side file, if it has one.
///
/// With `compare` (forward-secure logs, where the writer's log key that authenticates index
/// files does not protect history), an authentic file must also equal the index rebuilt from
/// the segment's records, which the epoch keys do protect: a file that hides or moves
/// entries is forged even when its MAC verifies.
fn check_index_file(seg: &Segment, auth: crate::index::IndexAuth<'_>, compare: bool) -> IndexCheck {
    use crate::index::IndexFileError;
    if crate::archive::is_archived(&seg.path) {
        return IndexCheck::Absent;
    }
    let bytes = match crate::nofollow::read(&seg.index_path()) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return IndexCheck::Absent,
        Err(e) => return IndexCheck::Unusable(format!("cannot be read: {e}")),
    };
    // Sealed: bound to the footer. Unsealed (saved at a clean close): bound to the last
    // record; once the segment has grown past it, the file is left unused (not evidence of
    // anything: the seal replaces it) and not reported.
    let Some((first_seq, count, records_end, last_mac)) = seg.index_binding(&bytes) else {
        return match &seg.footer {
            Some(_) => IndexCheck::Unusable("cannot be read as an index file".into()),
            None => IndexCheck::Absent,
        };
    };
    if compare {
        return match crate::index::decode_file(
            &bytes,
            first_seq,
            count,
            records_end,
            &last_mac,
            auth,
        ) {
            Ok(idx) => match crate::index::build(seg.bytes(), first_seq) {
                Ok(rebuilt) if rebuilt == idx => IndexCheck::Authentic,
                Ok(_) => IndexCheck::Differs,
                Err(e) => IndexCheck::Unusable(format!("cannot be compared with its segment: {e}")),
            },
            Err(IndexFileError::Forged) => IndexCheck::Forged,
            Err(e) => IndexCheck::Unusable(e.to_string()),
        };
    }
    // Authenticated and bound to this segment's footer: only the key holder wrote it, for
    // this state of the segment (its body is not decoded here; queries decode what they use).
    match crate::index::authenticate_file(&bytes, first_seq, count, records_end, &last_mac, auth) {
        Ok(_) => IndexCheck::Authentic,
        Err(IndexFileError::Forged) => IndexCheck::Forged,
        Err(e) => IndexCheck::Unusable(e.to_string()),
    }
}

/// Checks that retention removals form one contiguous prefix and stayed within their policy.
fn check_removals(policy: &crate::retention::policy::PolicyLog) -> Option<Failure> {
    const DAY_NS: i64 = 86_400 * 1_000_000_000;
    let mut next = 0u64;
    for e in &policy.entries {
        let crate::retention::policy::PolicyEntry::Retention(run) = e else {
            continue;
        };
        let Some(r) = &run.removed else { continue };
        let bad = |detail: String| Failure {
            kind: FailureKind::RemovedBeyondPolicy,
            seq: Some(r.from_seq),
            segment: None,
            offset: None,
            detail,
        };
        if r.from_seq != next || r.to_seq < r.from_seq || r.count != r.to_seq - r.from_seq + 1 {
            return Some(bad(format!(
                "retention removed seqs {}..={} but the log continued at seq {next}",
                r.from_seq, r.to_seq
            )));
        }
        if run.retention_days == 0
            || run.cutoff_ns
                != run
                    .time_ns
                    .saturating_sub(i64::from(run.retention_days) * DAY_NS)
        {
            return Some(bad(
                "a retention record's cutoff does not follow from its retention_days".into(),
            ));
        }
        if let Some(s) = r.segments.iter().find(|s| s.max_ts >= run.cutoff_ns) {
            return Some(bad(format!(
                "{} held events newer than the retention cutoff",
                s.file
            )));
        }
        next = r.to_seq + 1;
    }
    None
}

/// Parses `hmac-sha256:<hex>` or bare hex into a hash.
pub fn parse_hash(s: &str) -> Option<Hash> {
    unhex::<32>(s.strip_prefix("hmac-sha256:").unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{frame_len, FRAME_HEADER_LEN};
    use crate::{Durability, HmacKey, Log, Options};

    fn key() -> HmacKey {
        HmacKey::from_bytes(&[3u8; 32]).unwrap()
    }

    /// What a segment's check found, comparable across job sizes.
    type Outcome = (
        Option<Failure>,
        u64,
        Option<u64>,
        Option<Hash>,
        Option<(u64, u64)>,
        Vec<(u64, Hash)>,
    );

    fn outcome(dir: &std::path::Path, job_bytes: usize, wanted: &[u64]) -> Outcome {
        let log = Log::open_read_only(dir, key()).unwrap();
        let seg = log.inner_segments()[0].clone();
        let inner = log.inner_ref();
        let r = verify_segment(
            &seg,
            &inner.chain,
            &inner.log_id,
            wanted,
            &AtomicU64::new(0),
            job_bytes,
            None,
        );
        (r.failure, r.count, r.last_seq, r.last_mac, r.torn, r.found)
    }

    /// Job sizes from under a record (every frame starts a job) to a few records.
    const JOB_SIZES: [usize; 4] = [1, 300, 1000, 4096];

    /// Rewrites a frame's CRC after an edit, as an attacker without the key can.
    fn fix_crc(b: &mut [u8], off: usize) {
        let n = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        let end = off + frame_len(n) - 4;
        let crc = crc32fast::hash(&b[off..end]);
        b[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Splitting a segment into jobs finds exactly what one pass finds: the same first
    /// failure (kind, seq, offset, detail), counts, torn tail and checkpointed MACs, for edits
    /// at, just before and just after job boundaries, in the first and the last record, and
    /// in sealed and unsealed segments.
    #[test]
    fn jobs_find_what_one_pass_finds() {
        let src = tempfile::tempdir().unwrap();
        let n = 300usize;
        for sealed in [true, false] {
            let d = src.path().join(if sealed { "sealed" } else { "active" });
            {
                let log = Log::open(
                    &d,
                    Options::new(key())
                        .durability(Durability::Buffered)
                        .segment_bytes(if sealed { 96 * 1024 } else { 1 << 20 }),
                )
                .unwrap();
                let evs: Vec<_> = crate::sample::Generator::standard(9).take(n).collect();
                log.append_batch(&evs).unwrap();
            }
            // The segment's bytes are edited below: a read-only open must not fill a cut tail
            // back in from the writer's staging file.
            std::fs::remove_file(d.join(crate::log::STAGING_FILE)).unwrap();
            let seg_path = crate::segment::list_segments(&d).unwrap()[0].1.clone();
            let pristine = std::fs::read(&seg_path).unwrap();
            let mut offs = Vec::new();
            let mut off = HEADER_LEN;
            while let Ok(f) = decode_frame(&pristine[off..]) {
                offs.push(off);
                off += f.len;
            }
            assert!(
                offs.len() > 40,
                "{} records in the first segment",
                offs.len()
            );
            let last = offs.len() - 1;
            let wanted = [3u64, 16, 17, 40, last as u64];
            let base = outcome(&d, usize::MAX / 2, &wanted);
            assert!(base.0.is_none() && base.4.is_none(), "{:?}", base.0);
            for js in JOB_SIZES {
                assert_eq!(outcome(&d, js, &wanted), base, "untouched, jobs of {js} B");
            }
            type Edit = fn(&mut Vec<u8>, usize, usize);
            let edits: [(&str, Edit); 6] = [
                ("payload flip", |b, o, _| b[o + FRAME_HEADER_LEN + 3] ^= 4),
                ("payload edit, CRC fixed", |b, o, _| {
                    b[o + FRAME_HEADER_LEN + 3] ^= 4;
                    fix_crc(b, o)
                }),
                ("MAC edit, CRC fixed", |b, o, nx| {
                    b[nx - 20] ^= 1;
                    fix_crc(b, o)
                }),
                ("seq edit, CRC fixed", |b, o, _| {
                    b[o + 12] ^= 2;
                    fix_crc(b, o)
                }),
                ("length flip", |b, o, _| b[o] ^= 1),
                ("zeroed from here", |b, o, _| {
                    let l = b.len();
                    b[o..l].iter_mut().for_each(|x| *x = 0)
                }),
            ];
            for &at in &[0, 6, 7, 15, 16, 17, 31, 32, last] {
                for (what, edit) in &edits {
                    let mut b = pristine.clone();
                    let next = offs.get(at + 1).copied().unwrap_or(off);
                    edit(&mut b, offs[at], next);
                    std::fs::write(&seg_path, &b).unwrap();
                    let one = outcome(&d, usize::MAX / 2, &wanted);
                    assert!(
                        one.0.is_some() || one.4.is_some() || one.1 < base.1,
                        "{what} at record {at} went unnoticed (sealed {sealed})"
                    );
                    for js in JOB_SIZES {
                        assert_eq!(
                            outcome(&d, js, &wanted),
                            one,
                            "{what} at record {at}, jobs of {js} B, sealed {sealed}"
                        );
                    }
                }
            }
            std::fs::write(&seg_path, &pristine).unwrap();
        }
    }
}
