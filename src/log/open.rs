//! Opening a data directory: creation, locking, key check, recovery, read-only loading.
//!
//! Recovery reads only the footers of sealed segments and scans only unsealed ones (normally
//! just the active segment), so its cost does not grow with the size of the log.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::options::{Options, WritePath};
use super::writer::{self, SyncState, WriterState};
use super::{worker, Inner, Log, Poison, LOCK_FILE, META_FILE};
use crate::chain::{ct_eq, hex, Chain};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::event::now_nanos;
use crate::format::{Footer, Meta, SegmentHeader, FOOTER_LEN, FORMAT_VERSION, HEADER_LEN};
use crate::fsio;
use crate::mmap::ReadMap;
use crate::segment::{self, ScanStop, Segment, SegmentData};

/// What recovery did when a log was opened for writing.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// True when the directory was created by this open.
    pub created: bool,
    /// Unsealed segments found and sealed (left by a crash between roll and seal).
    pub sealed_on_open: Vec<String>,
    /// A torn tail that was cut: segment file, byte offset, bytes cut.
    pub torn_tail: Option<TornTail>,
    /// Records found in the active segment.
    pub active_records: u64,
    /// Records a crashed writer had staged (`WritePath::Staged`) and that were copied into the
    /// active segment before it was scanned (included in `active_records`).
    pub staged_records: u64,
}

/// A torn tail cut by recovery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TornTail {
    pub segment: String,
    pub offset: u64,
    pub bytes: u64,
    /// When valid-looking records followed the cut (writeback is not in order, so a crash can
    /// persist a later unsynced record and not an earlier one), the cut bytes were first
    /// copied to this file in the data directory, for inspection.
    pub saved_as: Option<String>,
}

fn corrupt(file: &Path, offset: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        offset,
        detail: detail.into(),
    }
}

/// Reads `auditlog.meta` and checks the key against it.
fn load_meta(dir: &Path, chain: &Chain) -> Result<Option<Meta>> {
    let path = dir.join(META_FILE);
    let bytes = match crate::nofollow::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let meta = Meta::decode(&bytes).map_err(|d| {
        if d.starts_with("unsupported format version") {
            Error::UnsupportedVersion {
                file: path.clone(),
                found: u16::from_le_bytes([bytes[8], bytes[9]]),
                supported: FORMAT_VERSION,
            }
        } else {
            corrupt(&path, 0, d)
        }
    })?;
    if !ct_eq(&chain.key_check(&meta.log_id), &meta.key_check) {
        return Err(Error::WrongKey {
            log_id: hex(&meta.log_id),
        });
    }
    Ok(Some(meta))
}

fn read_header(path: &Path, file: &File) -> Result<SegmentHeader> {
    let mut b = [0u8; HEADER_LEN];
    file.read_exact_at(&mut b, 0)
        .map_err(|e| Error::io("reading segment header of", path, e))?;
    SegmentHeader::decode(&b).map_err(|e| match e {
        crate::format::HeaderError::Version(found) => Error::UnsupportedVersion {
            file: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        },
        other => corrupt(path, 0, other.to_string()),
    })
}

/// The footer of a sealed segment, read with `pread` (no map: an unsealed file may be
/// trimmed by a concurrent writer).
fn read_footer(file: &File) -> Option<Footer> {
    let len = file.metadata().ok()?.len();
    if len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return None;
    }
    let mut b = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut b, len - FOOTER_LEN as u64).ok()?;
    Footer::decode(&b).filter(|f| f.records_end == len - FOOTER_LEN as u64)
}

fn check_header(path: &Path, h: &SegmentHeader, name_seq: u64, log_id: &[u8; 16]) -> Result<()> {
    if &h.log_id != log_id {
        return Err(corrupt(
            path,
            16,
            format!(
                "segment belongs to log {}, not {}",
                hex(&h.log_id),
                hex(log_id)
            ),
        ));
    }
    if h.first_seq != name_seq {
        return Err(corrupt(
            path,
            32,
            format!(
                "header says first seq {}, file name says {name_seq}",
                h.first_seq
            ),
        ));
    }
    Ok(())
}

/// How long `open` waits for a busy lock before it reports `Error::Locked`.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) fn open_write(dir: &Path, opts: Options) -> Result<Log> {
    opts.validate()?;
    // The forward-secure initial key is used once (to create such a log) and never kept.
    let (opts, fss_initial) = crate::fss::split_options(opts);
    fsio::create_dir_all("dir.create", dir)
        .map_err(|e| Error::io("creating data directory", dir, e))?;
    let lock_path = dir.join(LOCK_FILE);
    let (lock, _) = fsio::open_or_create("lock.open", &lock_path, false)
        .map_err(|e| Error::io("opening lock file", &lock_path, e))?;
    // A lock that is busy for a moment is not another writer: a process forked (to run a
    // command, say) while a previous writer of this directory was open holds a copy of its
    // lock descriptor until it execs, even after that writer closed. Another writer holds the
    // lock for as long as it runs, so a short wait tells the two apart.
    let mut waited = std::time::Duration::ZERO;
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if waited < LOCK_GRACE => {
                let step = std::time::Duration::from_millis(5);
                std::thread::sleep(step);
                waited += step;
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("locking", &lock_path, e)),
        }
    }
    let chain = Chain::new(&opts.key);
    let mut report = RecoveryReport::default();
    let segs_on_disk = segment::list_segments(dir)?;
    let meta = match load_meta(dir, &chain)? {
        Some(m) => m,
        None if !segs_on_disk.is_empty() => {
            return Err(Error::NotALog {
                dir: dir.to_path_buf(),
                detail: format!("segment files are present but {META_FILE} is missing"),
            })
        }
        None => {
            let mut log_id = [0u8; 16];
            getrandom::fill(&mut log_id)
                .map_err(|e| Error::Key(format!("random source failed: {e}")))?;
            let m = Meta {
                version: FORMAT_VERSION,
                log_id,
                created_ns: now_nanos(),
                key_check: chain.key_check(&log_id),
            };
            segment::write_atomic("meta.write", dir, META_FILE, &m.encode())?;
            report.created = true;
            m
        }
    };
    remove_leftovers(dir)?;

    let log_id = meta.log_id;
    let policy = crate::retention::policy::read(dir, &chain, &log_id)?;
    if let Some((line, why)) = &policy.problem {
        return Err(corrupt(
            &dir.join(crate::retention::policy::POLICY_FILE),
            0,
            format!("line {line}: {why}; run `auditlog verify`"),
        ));
    }
    let segs_on_disk = finish_retention(dir, segs_on_disk, policy.retained_to().map(|r| r.0))?;
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let (mut next_seq, mut prev) = match policy.retained_to() {
        Some((to, hash)) => (to + 1, hash),
        None => (0u64, chain.genesis(&log_id)),
    };
    let mut active = None;
    let n = segs_on_disk.len();
    let on_disk = segs_on_disk.clone();
    for (i, (name_seq, path)) in segs_on_disk.into_iter().enumerate() {
        if crate::archive::is_archived(&path) {
            let seg = archived_segment(path)?;
            check_header(&seg.path, &seg.header, name_seq, &log_id)?;
            let ft = seg.footer.expect("archived segments are sealed");
            if i == 0 && seg.header.first_seq < next_seq {
                let new = finish_compaction(dir, &opts, &chain, log_id, &seg, next_seq)?;
                let ft = new.footer.expect("rewritten segments are sealed");
                next_seq = ft.last_seq + 1;
                prev = ft.last_mac;
                segments.push(new);
                continue;
            }
            if seg.header.first_seq != next_seq || !ct_eq(&seg.header.prev_hash, &prev) {
                return Err(corrupt(
                    &seg.path,
                    32,
                    "archived segment does not continue the log; run `auditlog verify`",
                ));
            }
            next_seq = ft.last_seq + 1;
            prev = ft.last_mac;
            segments.push(seg);
            continue;
        }
        let file =
            crate::nofollow::open_rw(&path).map_err(|e| Error::io("opening segment", &path, e))?;
        let header = read_header(&path, &file)?;
        check_header(&path, &header, name_seq, &log_id)?;
        if i == 0 && header.first_seq < next_seq {
            // A compaction recorded in policy.log was interrupted before its rewrite: finish
            // it now (drop the records the signed record says were removed).
            let Some(footer) = read_footer(&file).filter(|f| f.last_seq >= next_seq) else {
                return Err(corrupt(&path, 32, "segment overlaps the range retention removed but is not sealed; run `auditlog verify`"));
            };
            let seg = Segment::sealed(path, &file, header, footer)?;
            let new = finish_compaction(dir, &opts, &chain, log_id, &seg, next_seq)?;
            let ft = new.footer.expect("rewritten segments are sealed");
            next_seq = ft.last_seq + 1;
            prev = ft.last_mac;
            segments.push(new);
            continue;
        }
        if header.first_seq != next_seq {
            return Err(corrupt(&path, 32, format!("segment starts at seq {} but the log continues at seq {next_seq}: records are missing; run `auditlog verify`", header.first_seq)));
        }
        if !ct_eq(&header.prev_hash, &prev) {
            return Err(corrupt(&path, 48, "segment does not continue the chain (of the previous segment, or the log's genesis value); run `auditlog verify`"));
        }
        if let Some(footer) = read_footer(&file) {
            if footer.first_seq != header.first_seq {
                return Err(corrupt(
                    &path,
                    footer.records_end,
                    "footer and header disagree on the first seq",
                ));
            }
            next_seq = footer.last_seq + 1;
            prev = footer.last_mac;
            segments.push(Segment::sealed(path, &file, header, footer)?);
            continue;
        }
        // Unsealed: first copy in the records a crashed writer had only staged, then scan it.
        report.staged_records += super::staging::replay(dir, &file, &path, &header, &chain)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading size of", &path, e))?
            .len() as usize;
        let map = ReadMap::new(&file).map_err(|e| Error::io("mapping", &path, e))?;
        let scan = segment::scan(map.bytes(), header.first_seq);
        let name = segment::segment_name(header.first_seq);
        match &scan.stop {
            ScanStop::Clean => {}
            ScanStop::Footer(ft) => {
                // A footer followed by zeros is a seal interrupted before the trim; it must
                // describe exactly the records before it, or it is damage.
                let consistent = ft.records_end == scan.end as u64
                    && ft.count == scan.count
                    && ft.first_seq == header.first_seq
                    && Some(ft.last_seq) == scan.last_seq
                    && ft.min_ts == scan.min_ts
                    && ft.max_ts == scan.max_ts
                    && scan.last_mac.is_some_and(|m| ct_eq(&m, &ft.last_mac));
                if !consistent {
                    return Err(corrupt(&path, scan.end as u64, "segment footer does not match the records before it; run `auditlog verify`"));
                }
            }
            ScanStop::Torn { len: torn, .. } => {
                // In a segment that later segments follow, only a partly written footer may be
                // cut (the roll synced every record first): the next segment must continue
                // the chain from the last intact record, or this is damage and is refused.
                if let Some((_, next_path)) = on_disk.get(i + 1) {
                    let next = if crate::archive::is_archived(next_path) {
                        crate::archive::read_preamble(next_path)?.0
                    } else {
                        let f = crate::nofollow::open(next_path)
                            .map_err(|e| Error::io("opening segment", next_path, e))?;
                        read_header(next_path, &f)?
                    };
                    let continues = scan.last_seq.is_some_and(|l| next.first_seq == l + 1)
                        && scan.last_mac.is_some_and(|m| ct_eq(&m, &next.prev_hash));
                    if !continues {
                        return Err(corrupt(&path, scan.end as u64, "damaged record in a segment that later segments follow; run `auditlog verify`"));
                    }
                }
                let zeros = vec![0u8; *torn];
                fsio::write_at("recovery.cut", &file, &zeros, scan.end as u64)
                    .and_then(|_| fsio::sync_data("recovery.cut", &file))
                    .map_err(|e| Error::io("cutting torn tail of", &path, e))?;
                report.torn_tail = Some(TornTail {
                    segment: name.clone(),
                    offset: scan.end as u64,
                    bytes: *torn as u64,
                    saved_as: None,
                });
            }
            ScanStop::Damaged { error, next } => {
                let missing = scan.last_seq.map_or(header.first_seq, |l| l + 1);
                let durable_past_gap = on_disk.get(i + 1).is_some()
                    || checkpointed_seq(dir, &log_id)?.is_some_and(|c| c >= missing);
                if durable_past_gap {
                    return Err(corrupt(&path, scan.end as u64, format!("{error}, followed by a valid frame at offset {next}: this is damage, not a torn tail, and is not repaired; run `auditlog verify`")));
                }
                // The last segment, and no checkpoint reaches the gap: no record from the gap
                // on was ever acknowledged (an acknowledgement follows a sync that covers every
                // earlier byte), so this is a crash that persisted later unsynced writes and
                // not an earlier one. Keep a copy of the cut bytes, then cut.
                let end = segment::end_of_data(map.bytes());
                let cut = &map.bytes()[scan.end..end];
                let saved = format!("{name}.{}.unsynced", scan.end);
                let saved_path = dir.join(&saved);
                (|| -> std::io::Result<()> {
                    let f = fsio::create_truncate("recovery.cut", &saved_path)?;
                    fsio::write_at("recovery.cut", &f, cut, 0)?;
                    fsio::sync_all("recovery.cut", &f)
                })()
                .map_err(|e| Error::io("saving cut bytes to", &saved_path, e))?;
                segment::sync_dir(dir)?;
                let zeros = vec![0u8; cut.len()];
                fsio::write_at("recovery.cut", &file, &zeros, scan.end as u64)
                    .and_then(|_| fsio::sync_data("recovery.cut", &file))
                    .map_err(|e| Error::io("cutting unsynced tail of", &path, e))?;
                report.torn_tail = Some(TornTail {
                    segment: name.clone(),
                    offset: scan.end as u64,
                    bytes: cut.len() as u64,
                    saved_as: Some(saved),
                });
            }
            ScanStop::SeqBreak { expected, found } => {
                return Err(corrupt(
                    &path,
                    scan.end as u64,
                    format!("record has seq {found}, expected {expected}; run `auditlog verify`"),
                ));
            }
        }
        drop(map);
        let is_last = i + 1 == n;
        if let Some(l) = scan.last_seq {
            next_seq = l + 1;
            prev = scan.last_mac.expect("mac with seq");
        }
        if is_last && !matches!(scan.stop, ScanStop::Footer(_)) {
            report.active_records = scan.count;
            let a = writer::activate(file, path, &header, len, scan.end, Some(&scan), Vec::new())?;
            active = Some(a);
        } else if scan.count > 0 {
            // Crash between roll and seal (or during seal): finish sealing now.
            let footer = Footer {
                count: scan.count,
                first_seq: header.first_seq,
                last_seq: scan.last_seq.expect("count > 0"),
                min_ts: scan.min_ts,
                max_ts: scan.max_ts,
                last_mac: prev,
                records_end: scan.end as u64,
                sealed_ns: now_nanos(),
            };
            segment::write_footer_and_trim(&file, &path, &footer)?;
            let cp = checkpoint::Checkpoint::sign(
                &chain,
                &log_id,
                footer.last_seq,
                &footer.last_mac,
                now_nanos(),
            );
            checkpoint::append(dir, &cp)?;
            report.sealed_on_open.push(name);
            segments.push(Segment::sealed(path, &file, header, footer)?);
        } else {
            // A roll never leaves an empty segment behind another one (an empty active
            // segment is replaced under the same name), so this is damage: refuse.
            return Err(corrupt(
                &path,
                HEADER_LEN as u64,
                "segment without records followed by later segments; run `auditlog verify`",
            ));
        }
    }
    let active = match active {
        Some(a) => a,
        None => {
            let (version, flags) =
                crate::fss::header_fields(crate::fss::wanted(dir, &opts, next_seq));
            let header = SegmentHeader {
                version,
                flags,
                log_id,
                first_seq: next_seq,
                created_ns: now_nanos(),
                prev_hash: prev,
            };
            let size = opts.segment_bytes;
            let dummy = Inner::bare(dir, opts.clone(), chain.clone(), log_id);
            writer::create_segment(&dummy, &header, size, None)?
        }
    };
    // Created after the replay above, which read what a crashed writer left in it.
    let staging = match opts.effective_write_path() {
        WritePath::Staged => Some(super::staging::Staging::create(
            dir,
            super::staging::capacity_for(opts.segment_bytes),
        )?),
        _ => {
            let _ =
                fsio::remove_if_exists("leftover.remove", &dir.join(super::staging::STAGING_FILE));
            None
        }
    };
    segment::sync_dir(dir)?;
    segments.push(active.seg.clone());
    let synced = active.offset;
    let seg_first = active.first_seq;
    let leaves = opts.merkle_tree.then(|| (next_seq, Vec::new()));
    let inner = Arc::new(Inner {
        dir: dir.to_path_buf(),
        opts,
        chain,
        log_id,
        read_only: false,
        _lock: Some(lock),
        segments: RwLock::new(segments),
        writer: Mutex::new(Some(WriterState {
            active,
            next_seq,
            prev,
            since_checkpoint: 0,
            frame_buf: Vec::new(),
            spare_asked: false,
            unsynced: Vec::new(),
            staged: Vec::new(),
            staging,
            leaves,
        })),
        sync: SyncState::new(next_seq, seg_first, synced),
        poison: Poison::default(),
        worker: Mutex::new(None),
        spare: Mutex::new(None),
        ro_checkpoints: Default::default(),
        recovery: report,
        last_checkpoint_seq: AtomicU64::new(u64::MAX),
        maintenance: Mutex::new(()),
        policy: Mutex::new(policy),
        follow: Default::default(),
        unpublished: AtomicBool::new(false),
        publish_armed: AtomicBool::new(false),
        publish_gen: AtomicU64::new(0),
        index_buffers: Mutex::new(Vec::new()),
        fss: Default::default(),
        fss_keys: Default::default(),
        loaded_ns: Default::default(),
        merkle: Default::default(),
    });
    crate::fss::attach(&inner, fss_initial)?;
    *inner.worker.lock() = Some(worker::start(&inner)?);
    if inner.opts.durability == super::Durability::Sync {
        super::flusher::start(&inner)?;
    }
    Ok(Log::from_inner(inner))
}

/// The highest seq a checkpoint of this log (in the directory's checkpoint log) covers: every
/// record up to it was durable when the checkpoint was written.
fn checkpointed_seq(dir: &Path, log_id: &[u8; 16]) -> Result<Option<u64>> {
    let id = hex(log_id);
    Ok(checkpoint::read_log(dir)?
        .checkpoints
        .iter()
        .filter(|c| c.log_id == id)
        .map(|c| c.seq)
        .max())
}

/// Rewrites `seg` without the records before `keep_from` (an interrupted compaction),
/// checking that the record before it carries the chain value the retention record signed.
fn finish_compaction(
    dir: &Path,
    opts: &Options,
    chain: &Chain,
    log_id: [u8; 16],
    seg: &Segment,
    keep_from: u64,
) -> Result<Arc<Segment>> {
    let skip = (keep_from - seg.header.first_seq) as usize;
    let bare = Inner::bare(dir, opts.clone(), chain.clone(), log_id);
    crate::retention::rewrite_segment(&bare, seg, skip)
}

/// An archived segment: header and footer from its preamble, bytes decompressed on use.
fn archived_segment(path: PathBuf) -> Result<Arc<Segment>> {
    let (header, footer) = crate::archive::read_preamble(&path)?;
    Ok(Arc::new(Segment {
        data: SegmentData::Archived(crate::archive::ArchivedData::new(path.clone())),
        path,
        header,
        footer: Some(footer),
        records_end: footer.records_end as usize,
        index: crate::index::Slot::lazy(),
        index_writable: false,
    }))
}

/// Finishes a retention run interrupted by a crash: removes segments wholly inside the
/// removed range, and a segment superseded by its compacted rewrite.
fn finish_retention(
    dir: &Path,
    segs: Vec<(u64, PathBuf)>,
    retained_to: Option<u64>,
) -> Result<Vec<(u64, PathBuf)>> {
    let Some(to) = retained_to else {
        return Ok(segs);
    };
    let mut keep = Vec::with_capacity(segs.len());
    for (i, (first, path)) in segs.iter().enumerate() {
        let footer = if crate::archive::is_archived(path) {
            Some(crate::archive::read_preamble(path)?.1)
        } else {
            read_footer(
                &crate::nofollow::open(path).map_err(|e| Error::io("opening segment", path, e))?,
            )
        };
        let wholly_removed = footer.is_some_and(|f| f.last_seq <= to);
        let superseded = *first <= to && segs.get(i + 1).is_some_and(|(next, _)| *next == to + 1);
        if wholly_removed || superseded {
            crate::retention::remove_files("retention.delete", path)?;
            continue;
        }
        keep.push((*first, path.clone()));
    }
    if keep.len() != segs.len() {
        segment::sync_dir(dir)?;
    }
    Ok(keep)
}

/// Removes temporaries and spare segments left by a crash.
fn remove_leftovers(dir: &Path) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(|e| Error::io("reading directory", dir, e))?;
    for entry in rd.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".prealloc") || name.ends_with(".tmp") {
            let p = entry.path();
            fsio::remove("leftover.remove", &p)
                .map_err(|e| Error::io("removing leftover", &p, e))?;
        }
    }
    // An archive run that failed and could not clean up leaves `archive/NNN.seg.lz4.tmp`.
    let adir = dir.join(crate::archive::ARCHIVE_DIR);
    if let Ok(rd) = fs::read_dir(&adir) {
        for entry in rd.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let p = entry.path();
                fsio::remove("leftover.remove", &p)
                    .map_err(|e| Error::io("removing leftover", &p, e))?;
            }
        }
    }
    Ok(())
}

pub(crate) fn open_read_only(dir: &Path, opts: Options) -> Result<Log> {
    opts.validate()?;
    if !dir.is_dir() {
        return Err(Error::NotALog {
            dir: dir.to_path_buf(),
            detail: "no such directory".into(),
        });
    }
    let chain = Chain::new(&opts.key);
    let meta = load_meta(dir, &chain)?.ok_or_else(|| Error::NotALog {
        dir: dir.to_path_buf(),
        detail: format!("{META_FILE} is missing"),
    })?;
    // Checkpoints first: every checkpoint read now covers records already in the files.
    let cps = checkpoint::read_log(dir)?;
    let loaded_ns = now_nanos();
    let segments = load_segments_read_only(dir, writer_holds_lock(dir), &chain)?;
    // The policy log after the segments: a removal is recorded before its files go, so
    // every segment missing from the listing is covered by a record read now.
    let policy = crate::retention::policy::read(dir, &chain, &meta.log_id)?;
    let segments = set_aside_removed(segments, policy.retained_to().map(|r| r.0));
    let mut inner = Inner::bare(dir, opts, chain, meta.log_id);
    inner.segments = RwLock::new(segments);
    inner.ro_checkpoints = cps;
    inner.policy = Mutex::new(policy);
    inner.loaded_ns = loaded_ns.into();
    Ok(Log::from_inner(Arc::new(inner)))
}

/// Leaves out the segments a retention run that did not finish left behind (wholly inside
/// the removed range, or superseded by their compacted rewrite), as `verify` sets them aside
/// and a writer's open deletes them (`finish_retention`): readers must not return their
/// records, which a superseded segment shares with its rewrite.
pub(crate) fn set_aside_removed(
    segs: Vec<Arc<Segment>>,
    retained_to: Option<u64>,
) -> Vec<Arc<Segment>> {
    let Some(to) = retained_to else {
        return segs;
    };
    let keep: Vec<bool> = (0..segs.len())
        .map(|i| {
            let s = &segs[i];
            let wholly = s.footer.is_some_and(|f| f.last_seq <= to);
            let superseded = s.header.first_seq <= to
                && segs
                    .get(i + 1)
                    .is_some_and(|n| n.header.first_seq == to + 1);
            !(wholly || superseded)
        })
        .collect();
    segs.into_iter()
        .zip(keep)
        .filter_map(|(s, k)| k.then_some(s))
        .collect()
}

/// Whether a writer holds the write lock of `dir` (or may: when the lock file cannot be
/// probed, the answer is yes). The probe takes a shared lock and drops it at once; a writer
/// opening at that instant finds the lock busy and waits for it (`LOCK_GRACE`).
fn writer_holds_lock(dir: &Path) -> bool {
    match crate::nofollow::open(&dir.join(LOCK_FILE)) {
        Ok(f) => f.try_lock_shared().is_err(),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// How long a read-only load waits, in turn, before reading an unsealed segment again whose
/// bytes end in something other than zeros or a footer (see [`load_read_only`]).
const SETTLE_WAITS_MS: [u64; 3] = [5, 10, 20];

/// One segment file for a read-only log: mapped when sealed, else copied (up to its last
/// non-zero byte: the preallocated zero tail holds nothing that verification or queries need,
/// and it is most of a fresh segment).
///
/// A read-only log takes no lock, so a writer may be changing an unsealed file while it is
/// copied: appending frames to the active segment (in place, through a map), or writing the
/// footer of a segment it has just rolled and then trimming the file. A copy made while those
/// bytes are being written can hold half of them, which a scan takes for a torn frame, or for
/// damage when a later write landed before an earlier one was copied; `verify` would then
/// report a crash or damage that never happened (fuzzing found it: a read-only view beside a
/// writer saw "damaged record followed by later segments" in a segment whose seal was in
/// progress). So a copy whose records end in anything but zeros or a footer is made again,
/// after 5, 10 and 20 ms, and a segment sealed meanwhile is mapped as sealed. Real damage
/// stays: it only costs those 35 ms, and only while a writer holds the directory's lock
/// (`writer`); with none, nothing is changing the files and the first copy is the answer.
///
/// Returns the footer if sealed, the bytes, and the end of the records (0 when the header
/// does not decode).
fn load_read_only(
    path: &Path,
    file: &File,
    writer: bool,
    chain: &Chain,
) -> Result<(Option<Footer>, SegmentData, usize)> {
    let mut waits = SETTLE_WAITS_MS[..if writer { SETTLE_WAITS_MS.len() } else { 0 }].iter();
    loop {
        if let Some(footer) = read_footer(file) {
            let map = ReadMap::new(file).map_err(|e| Error::io("mapping", path, e))?;
            let end = footer.records_end as usize;
            return Ok((Some(footer), SegmentData::Sealed(map), end));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let staging = super::staging::read_staging(dir)?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading size of", path, e))?
            .len() as usize;
        let mut bytes = segment::read_file(path)?;
        // A frame or footer can end in zero bytes (a CRC, reserved fields), never in more
        // than a few dozen: keep a margin past the last non-zero byte.
        let end = (segment::end_of_data(&bytes) + 256)
            .max(HEADER_LEN)
            .min(bytes.len());
        bytes.truncate(end);
        bytes.shrink_to_fit();
        let (end, settled) = match SegmentHeader::decode(&bytes) {
            Ok(h) => {
                let scan = segment::scan(&bytes, h.first_seq);
                let settled = matches!(scan.stop, ScanStop::Clean | ScanStop::Footer(_));
                match &staging {
                    // Records a writer staged but has not written to the segment (yet).
                    Some(st) if matches!(scan.stop, ScanStop::Clean) => (
                        super::staging::overlay(st, &h, &mut bytes, &scan, file_len, chain),
                        true,
                    ),
                    _ => (scan.end, settled),
                }
            }
            Err(_) => (0, true),
        };
        match waits.next() {
            Some(ms) if !settled => std::thread::sleep(std::time::Duration::from_millis(*ms)),
            _ => return Ok((None, SegmentData::Loaded(bytes), end)),
        }
    }
}

/// Loads every segment without writing: sealed ones mapped, unsealed ones copied.
///
/// `writer`: a writer may be changing the files meanwhile (see [`load_read_only`]).
pub(crate) fn load_segments_read_only(
    dir: &Path,
    writer: bool,
    chain: &Chain,
) -> Result<Vec<Arc<Segment>>> {
    let mut out = Vec::new();
    for (_, path) in segment::list_segments(dir)? {
        out.push(load_one_read_only(path, writer, chain)?);
    }
    Ok(out)
}

/// One segment file for a read-only log (see [`load_read_only`]).
fn load_one_read_only(path: PathBuf, writer: bool, chain: &Chain) -> Result<Arc<Segment>> {
    if crate::archive::is_archived(&path) {
        return archived_segment(path);
    }
    let file = crate::nofollow::open(&path).map_err(|e| Error::io("opening segment", &path, e))?;
    let (footer, data, records_end) = load_read_only(&path, &file, writer, chain)?;
    let all: &[u8] = match &data {
        SegmentData::Sealed(m) => m.bytes(),
        SegmentData::Loaded(v) => v,
        SegmentData::Active(_) | SegmentData::Archived(_) => {
            unreachable!(
                "read-only loads never create active maps; archived ones are handled above"
            )
        }
    };
    // A damaged header is kept with an empty body so that `verify` can report it.
    let header = SegmentHeader::decode(all).unwrap_or(SegmentHeader {
        version: 0,
        flags: 0,
        log_id: [0; 16],
        first_seq: segment::parse_segment_name(
            &path.file_name().unwrap_or_default().to_string_lossy(),
        )
        .unwrap_or(0),
        created_ns: 0,
        prev_hash: [0; 32],
    });
    Ok(Arc::new(Segment {
        path,
        header,
        footer,
        data,
        records_end,
        index: crate::index::Slot::lazy(),
        index_writable: false,
    }))
}

/// Brings a read-only log's view up to date with what a writer process appended since it
/// was opened (or last refreshed): lists the segment files again, keeps the sealed and
/// archived segments already loaded (a sealed file never changes), and loads the others
/// afresh — the unsealed tail is copied again and scanned frame by frame, so a torn or
/// half-written frame at its end is left out (its CRC does not match) until it is whole.
/// New segments (rolls) are picked up, and segments a retention run removed are set aside
/// as at open. Records are only ever added at the end of the view: a refresh whose view
/// would end before the current one (a file that shrank, damage) is refused, and the view
/// stays as it was. Readers (and a [`Subscription`](crate::Subscription)) recheck each
/// record's chained MAC when they hand out entries, as for any read-only open.
pub(crate) fn refresh_read_only(inner: &Inner) -> Result<()> {
    debug_assert!(inner.read_only);
    let old = inner.segments.read().clone();
    let before = super::reader::next_seq(inner);
    let loaded_ns = now_nanos();
    let mut fresh = Vec::new();
    let writer = writer_holds_lock(&inner.dir);
    for (_, path) in segment::list_segments(&inner.dir)? {
        let kept = old.iter().find(|s| {
            s.path == path && (s.footer.is_some() || matches!(s.data, SegmentData::Archived(_)))
        });
        match kept {
            Some(s) => fresh.push(s.clone()),
            None => fresh.push(load_one_read_only(path, writer, &inner.chain)?),
        }
    }
    let policy = crate::retention::policy::read(&inner.dir, &inner.chain, &inner.log_id)?;
    let fresh = set_aside_removed(fresh, policy.retained_to().map(|r| r.0));
    let after = fresh
        .iter()
        .rev()
        .find_map(|s| match &s.footer {
            Some(f) => Some(f.last_seq + 1),
            None => s.frames().last().map(|(_, f)| f.seq + 1),
        })
        .unwrap_or(0);
    if after < before {
        return Err(Error::Corrupt {
            file: inner.dir.clone(),
            offset: 0,
            detail: format!(
                "the log's files now end before seq {before}, which this reader already saw \
                 (they end at {after}); run `auditlog verify`"
            ),
        });
    }
    *inner.segments.write() = fresh;
    *inner.policy.lock() = policy;
    inner
        .loaded_ns
        .store(loaded_ns, std::sync::atomic::Ordering::Release);
    Ok(())
}

impl Inner {
    /// An `Inner` with no writer, no worker and no segments.
    pub(crate) fn bare(dir: &Path, opts: Options, chain: Chain, log_id: [u8; 16]) -> Inner {
        Inner {
            dir: dir.to_path_buf(),
            opts,
            chain,
            log_id,
            read_only: true,
            _lock: None,
            segments: RwLock::new(Vec::new()),
            writer: Mutex::new(None),
            sync: SyncState::new(0, 0, 0),
            poison: Poison::default(),
            worker: Mutex::new(None),
            spare: Mutex::new(None),
            ro_checkpoints: Default::default(),
            recovery: RecoveryReport::default(),
            last_checkpoint_seq: AtomicU64::new(u64::MAX),
            maintenance: Mutex::new(()),
            policy: Mutex::new(Default::default()),
            follow: Default::default(),
            unpublished: AtomicBool::new(false),
            publish_armed: AtomicBool::new(false),
            publish_gen: AtomicU64::new(0),
            index_buffers: Mutex::new(Vec::new()),
            fss: Default::default(),
            fss_keys: Default::default(),
            loaded_ns: Default::default(),
            merkle: Default::default(),
        }
    }
}
