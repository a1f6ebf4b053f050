//! The writer's staging file, `staging` in the data directory (docs/FORMAT.md §19).
//!
//! With `WritePath::Staged` (the default) the writer does not store records into the active
//! segment's map one by one: each record's frame is copied into this small file's map, whose
//! pages stay resident, and the staged frames reach the segment with one `pwrite` when
//! a quarter of its capacity is staged (256 KiB of 1 MiB with 64 MiB segments), when a reader,
//! a sync or a roll needs them, or within a millisecond or two otherwise (the worker). Stores into fresh pages of a segment's map take a page
//! fault per page, which on this project's machines cost more than encoding and hashing the
//! record (docs/PERFORMANCE.md).
//!
//! The file is mapped shared, so staged frames are in the page cache the moment they are
//! copied: a process crash loses none of them. At the next open, [`replay`] copies the frames
//! that continue the active segment into it (each one checked: CRC, seq, offset, and its MAC
//! against the chain) before recovery scans the segment. A machine crash may lose the staging
//! file's unsynced pages, as it may lose any unsynced write; the syncs of `Durability::Sync`
//! and `Log::flush` write the staged frames to the segment first.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::chain::{digest, Chain};
use crate::error::{Error, Result};
use crate::format::{decode_frame, SegmentHeader, FOOTER_LEN};
use crate::fsio;
use crate::mmap::{ReadMap, StagingMap};
use crate::segment::{self, ScanStop, TailScan};

/// Name of the staging file inside a data directory.
pub const STAGING_FILE: &str = "staging";
const MAGIC: &[u8; 8] = b"ALSTAGE1";
const VERSION: u16 = 1;
/// Bytes before the first staged frame.
pub(crate) const HEADER: usize = 64;
/// Frame bytes the staging file holds at most (a quarter of the segment size if that is
/// smaller); a larger frame is written to the segment directly.
pub(crate) const MAX_CAPACITY: usize = 1 << 20;

/// The staging capacity for segments of `segment_bytes`.
pub(crate) fn capacity_for(segment_bytes: u64) -> usize {
    MAX_CAPACITY.min((segment_bytes / 4) as usize)
}

/// The staging file as the writer holds it.
pub(crate) struct Staging {
    map: StagingMap,
    path: PathBuf,
    /// Frame bytes staged since the run began.
    len: usize,
    /// Segment offset of the run's first byte.
    base: usize,
    /// Frame bytes the file holds.
    capacity: usize,
}

fn header_bytes(seg_first_seq: u64, base: u64, first_seq: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seg_first_seq.to_le_bytes());
    h[24..32].copy_from_slice(&base.to_le_bytes());
    h[32..40].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32fast::hash(&h[0..40]);
    h[40..44].copy_from_slice(&crc.to_le_bytes());
    h
}

/// `(segment first seq, base offset, run first seq)` of a valid header.
fn parse_header(h: &[u8]) -> Option<(u64, u64, u64)> {
    if h.len() < HEADER || &h[0..8] != MAGIC || h[8..10] != VERSION.to_le_bytes() {
        return None;
    }
    let crc = u32::from_le_bytes(h[40..44].try_into().ok()?);
    if crc != crc32fast::hash(&h[0..40]) {
        return None;
    }
    let u = |r: std::ops::Range<usize>| u64::from_le_bytes(h[r].try_into().expect("8 bytes"));
    Some((u(16..24), u(24..32), u(32..40)))
}

impl Staging {
    /// Creates (or empties) the staging file of `dir` and maps it. Call after [`replay`].
    pub(crate) fn create(dir: &Path, capacity: usize) -> Result<Staging> {
        let path = dir.join(STAGING_FILE);
        let map = (|| -> std::io::Result<StagingMap> {
            let f = fsio::create_truncate("staging.create", &path)?;
            // Blocks reserved, so a store never meets a full disk (which would be a SIGBUS).
            fsio::allocate("staging.create", &f, (HEADER + capacity) as u64)?;
            StagingMap::new(&f, HEADER + capacity)
        })()
        .map_err(|e| Error::io("creating staging file", &path, e))?;
        Ok(Staging {
            map,
            path,
            len: 0,
            base: 0,
            capacity,
        })
    }

    /// Staged frame bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Segment offset of the first staged byte.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Whether `flen` more bytes fit.
    pub(crate) fn fits(&self, flen: usize) -> bool {
        self.len + flen <= self.capacity
    }

    /// Whether a frame of `flen` bytes can be staged at all.
    pub(crate) fn holds(&self, flen: usize) -> bool {
        flen <= self.capacity
    }

    /// Staged bytes at which the writer writes them to the segment itself.
    pub(crate) fn publish_at(&self) -> usize {
        self.capacity / 4
    }

    /// The staged frames.
    pub(crate) fn staged(&self) -> &[u8] {
        &self.map.bytes()[HEADER..HEADER + self.len]
    }

    /// Room for the next frame (`flen` bytes, which must fit), which goes to segment offset
    /// `off`; a new run (after [`clear`](Self::clear)) first writes the header naming the
    /// segment, `off` and `seq`.
    pub(crate) fn slot(
        &mut self,
        seg_first_seq: u64,
        off: usize,
        seq: u64,
        flen: usize,
    ) -> &mut [u8] {
        debug_assert!(self.fits(flen));
        if self.len == 0 {
            self.base = off;
            let h = header_bytes(seg_first_seq, off as u64, seq);
            self.map.bytes_mut()[..HEADER].copy_from_slice(&h);
        }
        debug_assert_eq!(self.base + self.len, off);
        let at = HEADER + self.len;
        self.len += flen;
        &mut self.map.bytes_mut()[at..at + flen]
    }

    /// Forgets the staged frames (once they are in the segment file).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Zeroes the header once nothing is staged (a clean close): the next open then finds
    /// nothing to replay and does not scan the active segment for it.
    pub(crate) fn retire(&mut self) {
        if self.len == 0 {
            self.map.bytes_mut()[..HEADER].fill(0);
        }
    }

    /// `Err` if a store through the map faulted (the file was cut underneath the writer).
    pub(crate) fn check(&self) -> Result<()> {
        if self.map.faulted() {
            return Err(Error::Corrupt {
                file: self.path.clone(),
                offset: 0,
                detail: "the staging file was truncated underneath the writer".into(),
            });
        }
        Ok(())
    }
}

/// The staging file of `dir`, if there is one.
pub(crate) fn read_staging(dir: &Path) -> Result<Option<Vec<u8>>> {
    let spath = dir.join(STAGING_FILE);
    let mut bytes = Vec::new();
    match crate::nofollow::open(&spath) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| Error::io("reading staging file", &spath, e))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("opening staging file", &spath, e)),
    }
}

/// The staged frames of `staging` that continue the segment whose header is `header` and
/// whose records were scanned as `scan` (ending cleanly): the range of staged bytes, the
/// segment offset it goes to, and the number of frames. Each frame must decode, start exactly
/// where the records end, carry the next seq, MAC-chain from the record before it, and leave
/// room for a footer in a segment file of `file_len` bytes.
fn continuation(
    staging: &[u8],
    header: &SegmentHeader,
    scan: &TailScan,
    file_len: usize,
    chain: &Chain,
) -> Option<(std::ops::Range<usize>, usize, u64)> {
    let (seg_first, base, run_first) = parse_header(staging)?;
    if seg_first != header.first_seq || !matches!(scan.stop, ScanStop::Clean) {
        return None;
    }
    let mut end = scan.end;
    let mut expected = scan.last_seq.map_or(header.first_seq, |l| l + 1);
    let mut prev = scan.last_mac.unwrap_or(header.prev_hash);
    let staged = &staging[HEADER..];
    let (mut pos, mut from, mut count) = (0usize, None, 0u64);
    let mut want_seq = run_first;
    while pos < staged.len() {
        let Ok(f) = decode_frame(&staged[pos..]) else {
            break;
        };
        if f.seq != want_seq || f.flags != 0 {
            break;
        }
        let off = base as usize + pos;
        if off == end && f.seq == expected {
            // A forward-secure segment's MACs use epoch keys this check does not hold: there
            // the chain is left to `verify` with the initial key (FORMAT.md §19).
            let forward_secure = header.flags & crate::format::HEADER_FLAG_FORWARD_SECURE != 0;
            let mac_ok = forward_secure
                || crate::chain::ct_eq(&chain.step(&prev, f.seq, f.ts, &digest(f.payload)), &f.mac);
            if !mac_ok || end + f.len + FOOTER_LEN > file_len {
                break;
            }
            from.get_or_insert(pos);
            end += f.len;
            expected += 1;
            prev = f.mac;
            count += 1;
        } else if off >= end {
            break;
        }
        pos += f.len;
        want_seq += 1;
    }
    let from = from?;
    Some((HEADER + from..HEADER + pos, base as usize + from, count))
}

/// Copies staged frames that continue the unsealed segment `file` (whose header is `header`)
/// into it, and returns how many ([`continuation`]). Nothing is copied unless the staging
/// file names this segment and the segment's records end cleanly (zeros follow them): a
/// damaged or torn tail is left to recovery, which reports it, rather than overwritten.
pub(crate) fn replay(
    dir: &Path,
    file: &File,
    path: &Path,
    header: &SegmentHeader,
    chain: &Chain,
) -> Result<u64> {
    let Some(staging) = read_staging(dir)? else {
        return Ok(0);
    };
    // Nothing to scan the segment for unless the staging file names it.
    if parse_header(&staging).is_none_or(|(seg, _, _)| seg != header.first_seq) {
        return Ok(0);
    }
    let map = ReadMap::new(file).map_err(|e| Error::io("mapping", path, e))?;
    let scan = segment::scan(map.bytes(), header.first_seq);
    let Some((range, at, count)) = continuation(&staging, header, &scan, map.bytes().len(), chain)
    else {
        return Ok(0);
    };
    drop(map);
    fsio::write_at("recovery.staging", file, &staging[range], at as u64)
        .and_then(|_| fsio::sync_data("recovery.staging", file))
        .map_err(|e| Error::io("copying staged records into", path, e))?;
    Ok(count)
}

/// For a read-only view: appends to the copy `bytes` of an unsealed segment (scanned as
/// `scan`) the staged frames that continue it, so the view shows every record a
/// writer's `append` returned for, even those it has not written to the segment yet (or
/// never will, having crashed). Returns the new end of the records. `staging` must have been
/// read before the segment: a writer writes staged frames to the segment before it starts
/// staging anew, so the two reads miss nothing that was staged before the first.
pub(crate) fn overlay(
    staging: &[u8],
    header: &SegmentHeader,
    bytes: &mut Vec<u8>,
    scan: &TailScan,
    file_len: usize,
    chain: &Chain,
) -> usize {
    let Some((range, at, _)) = continuation(staging, header, scan, file_len, chain) else {
        return scan.end;
    };
    debug_assert_eq!(at, scan.end);
    bytes.truncate(scan.end);
    bytes.extend_from_slice(&staging[range]);
    bytes.len()
}
