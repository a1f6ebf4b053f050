//! One segment file: naming, preallocation, the three ways its bytes are held in memory, and
//! the tail scan that recovery and read-only opens share. Knows nothing about queries.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chain::Hash;
use crate::error::{Error, Result};
use crate::format::{decode_frame, Footer, FrameError, SegmentHeader, FOOTER_LEN, HEADER_LEN};
use crate::fsio;
use crate::mmap::{ReadMap, SharedMap};

/// Extension of segment files.
pub const SEGMENT_EXT: &str = "seg";

/// `00000000000000000042.seg` for first seq 42.
pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXT}")
}

/// The first seq encoded in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Segment files in `dir`, sorted by first seq.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let rd = fs::read_dir(dir).map_err(|e| Error::io("reading directory", dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("reading directory", dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push((seq, entry.path()));
        }
    }
    // Archived segments, unless the data directory still has the original (an archive run
    // interrupted before removing it): the original wins and the copy is redone later.
    let adir = dir.join(crate::archive::ARCHIVE_DIR);
    crate::nofollow::check_dir(&adir).map_err(|e| Error::io("reading directory", &adir, e))?;
    if let Ok(rd) = fs::read_dir(&adir) {
        for entry in rd.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(seq) = name.strip_suffix(".lz4").and_then(parse_segment_name) else {
                continue;
            };
            if !out.iter().any(|(s, _)| *s == seq) {
                out.push((seq, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Creates `path` with `size` bytes whose blocks all exist, and syncs it, so that later
/// stores through a map never allocate blocks (a full disk fails here, not as SIGBUS later).
/// With `zero`, the zeros are written (`fdatasync` after an append then has no extent
/// conversion to commit, which is what `Durability::Sync` pays for on every append);
/// otherwise the blocks are reserved with `posix_fallocate`, which writes nothing and costs
/// a fraction of a millisecond instead of a file's worth of writes.
pub fn preallocate(path: &Path, size: u64, zero: bool) -> Result<File> {
    let file = fsio::create_new("segment.create", path)
        .map_err(|e| Error::io("creating segment", path, e))?;
    let fill = (|| -> std::io::Result<()> {
        if zero {
            let chunk = vec![0u8; 1 << 20];
            let mut off = 0u64;
            while off < size {
                let n = chunk.len().min((size - off) as usize);
                fsio::write_at("segment.preallocate", &file, &chunk[..n], off)?;
                off += n as u64;
            }
        } else {
            fsio::allocate("segment.preallocate", &file, size)?;
        }
        fsio::sync_all("segment.preallocate", &file)
    })();
    if let Err(e) = fill {
        drop(file);
        let _ = fsio::remove("segment.preallocate", path);
        return Err(Error::io("preallocating segment", path, e));
    }
    Ok(file)
}

/// fsync of a directory, so that created, renamed and removed entries are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fsio::sync_dir("dir.sync", dir).map_err(|e| Error::io("syncing directory", dir, e))
}

/// How a segment's bytes are held.
pub enum SegmentData {
    /// The active segment of a writer: a shared writable map.
    Active(Arc<SharedMap>),
    /// A sealed segment: an immutable map of the whole file.
    Sealed(ReadMap),
    /// An unsealed segment opened read-only beside a possibly running writer: copied into
    /// memory, because that writer may trim the file when it seals it.
    Loaded(Vec<u8>),
    /// A sealed segment in the archive tier, decompressed on first use.
    Archived(crate::archive::ArchivedData),
}

/// A segment as readers see it.
pub struct Segment {
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub footer: Option<Footer>,
    pub data: SegmentData,
    /// For `Loaded` and `Sealed`: the end of the records (start of the footer, or of the
    /// unwritten tail). For `Active` the map's committed length is used instead.
    pub records_end: usize,
    /// The segment's secondary index.
    pub index: crate::index::Slot,
    /// Whether a rebuilt index may be written back to its side file (the process holds the
    /// directory's write lock).
    pub index_writable: bool,
}

impl Segment {
    /// A sealed segment over `file` (mapped whole), with its index loaded on first use.
    pub fn sealed(
        path: PathBuf,
        file: &File,
        header: SegmentHeader,
        footer: Footer,
    ) -> Result<Arc<Segment>> {
        let map = ReadMap::new(file).map_err(|e| Error::io("mapping", &path, e))?;
        Ok(Arc::new(Segment {
            path,
            header,
            footer: Some(footer),
            data: SegmentData::Sealed(map),
            records_end: footer.records_end as usize,
            index: crate::index::Slot::lazy(),
            index_writable: true,
        }))
    }

    /// Bytes from the start of the file to the end of the last committed record.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            SegmentData::Active(m) => m.committed(),
            SegmentData::Sealed(m) => &m.bytes()[..self.records_end],
            SegmentData::Loaded(v) => &v[..self.records_end],
            SegmentData::Archived(a) => a
                .get()
                .ok()
                .and_then(|b| b.get(..self.records_end))
                .unwrap_or(&[]),
        }
    }

    /// Every byte held for this segment: for sealed and loaded segments the whole file, for
    /// the active one the committed prefix. `verify` scans these.
    pub fn file_bytes(&self) -> &[u8] {
        match &self.data {
            SegmentData::Active(m) => m.committed(),
            SegmentData::Sealed(m) => m.bytes(),
            SegmentData::Loaded(v) => v,
            SegmentData::Archived(a) => a.get().unwrap_or(&[]),
        }
    }

    /// Why an archived segment's bytes cannot be read, if they cannot.
    pub fn load_error(&self) -> Option<String> {
        match &self.data {
            SegmentData::Archived(a) => a.get().err().map(str::to_string),
            _ => None,
        }
    }

    /// Whether a read through this segment's memory map faulted: the file was truncated (or
    /// could not be read) underneath this process, and from the fault on the map reads zeros.
    pub fn faulted(&self) -> bool {
        match &self.data {
            SegmentData::Active(m) => m.faulted(),
            SegmentData::Sealed(m) => m.faulted(),
            SegmentData::Loaded(_) | SegmentData::Archived(_) => false,
        }
    }

    /// `Err` if this segment's map faulted (see [`faulted`](Self::faulted)): what was read
    /// from it is not the file, so no answer built on it may be returned.
    pub fn check_mapped(&self) -> Result<()> {
        if !self.faulted() {
            return Ok(());
        }
        let at = match &self.data {
            SegmentData::Active(m) => m.fault_offset(),
            SegmentData::Sealed(m) => m.fault_offset(),
            SegmentData::Loaded(_) | SegmentData::Archived(_) => None,
        };
        match at {
            None => Ok(()),
            Some(off) => Err(Error::Corrupt {
                file: self.path.clone(),
                offset: off as u64,
                detail: "the segment file was truncated or resized underneath this reader (a read through its memory map found no file data); nothing read from it is trusted. Reopen the log and run `auditlog verify`".into(),
            }),
        }
    }

    /// `Err` if this sealed segment's map faulted, or if its file (still under its name)
    /// no longer has the length it had when it was mapped: sealed segments never change
    /// size, so someone else resized it. One `stat`.
    pub fn check_intact(&self) -> Result<()> {
        self.check_mapped()?;
        if let SegmentData::Sealed(m) = &self.data {
            if let Some(now) = m.resized(&self.path) {
                return Err(Error::Corrupt {
                    file: self.path.clone(),
                    offset: now,
                    detail: format!(
                        "the sealed segment file was truncated or resized underneath this reader: it was {} bytes when mapped and is {now} now; reopen the log and run `auditlog verify`",
                        m.bytes().len()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Path of the index side file.
    pub fn index_path(&self) -> PathBuf {
        self.path.with_extension(crate::index::INDEX_EXT)
    }

    /// Runs `f` on this segment's index, building, loading or catching it up first. A
    /// missing, stale, damaged, forged or unauthenticated side file (its MAC is checked with
    /// `auth`) is never used: the index is rebuilt from the segment (and the file rewritten
    /// when the process holds the write lock). `verify` reports such files.
    pub fn with_index<R>(
        &self,
        auth: crate::index::IndexAuth<'_>,
        f: impl FnOnce(&crate::index::SegIndex) -> R,
    ) -> Result<R> {
        use crate::index::Slot;
        self.check_mapped()?;
        match &self.index {
            Slot::Active(a) => {
                if a.needs_decode() {
                    self.seed_active_index(auth);
                }
                let r = a.with(self.bytes(), f);
                self.check_mapped()?;
                r
            }
            Slot::Lazy(cell) => {
                if let Some(idx) = cell.get() {
                    return Ok(f(idx));
                }
                let idx = Arc::new(self.load_or_build_index(auth)?);
                let idx = cell.get_or_init(|| idx);
                Ok(f(idx))
            }
        }
    }

    /// Whether this segment's index is neither in memory nor kept up to date in memory:
    /// the next [`with_index`](Self::with_index) loads or builds it.
    pub fn index_cold(&self) -> bool {
        matches!(&self.index, crate::index::Slot::Lazy(cell) if cell.get().is_none())
    }

    /// Loads (or builds) and caches the indexes of those of `segs` not in memory yet, on
    /// every core, each worker reading side files into one reused buffer: the first query
    /// after an open touches every segment's index, and loading them one by one on one core
    /// was most of its time. Failures are left to the caller's own `with_index`, which
    /// meets and reports them.
    pub fn preload_indexes(segs: &[&Arc<Segment>], auth: crate::index::IndexAuth<'_>) {
        if segs.iter().filter(|s| s.index_cold()).nth(1).is_none() {
            // Warm (the usual case for a long-lived log): nothing to spread over cores.
            return;
        }
        let cold: Vec<&Arc<Segment>> = segs.iter().copied().filter(|s| s.index_cold()).collect();
        // Read once: `available_parallelism` reads cgroup files on Linux.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let threads = cores.min(cold.len());
        if threads < 2 {
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut buf = Vec::new();
                    while let Some(seg) =
                        cold.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let crate::index::Slot::Lazy(cell) = &seg.index else {
                            continue;
                        };
                        if cell.get().is_some() || seg.check_mapped().is_err() {
                            continue;
                        }
                        if let Ok(idx) = seg.load_or_build_index_in(auth, &mut buf) {
                            let _ = cell.set(Arc::new(idx));
                        }
                    }
                });
            }
        });
    }

    /// Like [`with_index`](Self::with_index), for streaming scans (reports, exports): an
    /// index already cached is used, but one loaded here is dropped afterwards instead of
    /// being cached, so a scan over the whole log holds one segment's index at a time.
    pub fn with_index_transient<R>(
        &self,
        auth: crate::index::IndexAuth<'_>,
        f: impl FnOnce(&crate::index::SegIndex) -> R,
    ) -> Result<R> {
        use crate::index::Slot;
        match &self.index {
            Slot::Lazy(cell) if cell.get().is_none() => {
                self.check_mapped()?;
                let idx = self.load_or_build_index(auth)?;
                Ok(f(&idx))
            }
            _ => self.with_index(auth, f),
        }
    }

    fn load_or_build_index(
        &self,
        auth: crate::index::IndexAuth<'_>,
    ) -> Result<crate::index::SegIndex> {
        self.load_or_build_index_in(auth, &mut Vec::new())
    }

    /// The segment state an index side file must be bound to (`first_seq`, `count`,
    /// `records_end`, `last_mac`): the footer's when sealed. An unsealed segment's side file
    /// (written at a clean close, FORMAT.md §6) is bound to the segment's last record: the
    /// file's own count, records end and last MAC are taken as claims and checked against
    /// the segment itself, whose record at the last offset the file gives must have the
    /// last seq, end where the records end and carry that chain MAC (the file's MAC, checked
    /// next by the caller, covers those fields). `None`: the file cannot describe this state
    /// of the segment (stale), or the segment is forward-secure, whose unsealed side files
    /// are never used (the log key that authenticates them does not protect its history).
    pub(crate) fn index_binding(&self, file: &[u8]) -> Option<(u64, u64, u64, Hash)> {
        if let Some(ft) = &self.footer {
            return Some((ft.first_seq, ft.count, ft.records_end, ft.last_mac));
        }
        if self.header.flags & crate::format::HEADER_FLAG_FORWARD_SECURE != 0 {
            return None;
        }
        let field = |at: usize, n: usize| file.get(at..at.checked_add(n)?);
        let count = u64::from_le_bytes(field(24, 8)?.try_into().ok()?);
        let records_end = u64::from_le_bytes(field(32, 8)?.try_into().ok()?);
        let last_mac: Hash = field(40, 32)?.try_into().ok()?;
        if count == 0 || records_end != self.records_end as u64 {
            return None;
        }
        let at = usize::try_from(count - 1)
            .ok()?
            .checked_mul(4)?
            .checked_add(88)?;
        let off = u32::from_le_bytes(field(at, 4)?.try_into().ok()?) as usize;
        let f = decode_frame(self.bytes().get(off..)?).ok()?;
        let last_seq = self.header.first_seq.checked_add(count - 1)?;
        (f.seq == last_seq && off + f.len == self.records_end && f.mac == last_mac).then_some((
            self.header.first_seq,
            count,
            records_end,
            last_mac,
        ))
    }

    /// For a writer that reopened a log closed cleanly, at the first use of the active
    /// segment's index (a query, the seal): starts the in-memory index from the side file
    /// that close saved, when it still describes the records that were in the segment at
    /// open (see [`index_binding`](Self::index_binding)) and authenticates, instead of
    /// decoding them. Anything else leaves the index to be built from the records, as
    /// without a file. Not at open: reading the file would make every open pay for it.
    pub(crate) fn seed_active_index(&self, auth: crate::index::IndexAuth<'_>) {
        let crate::index::Slot::Active(a) = &self.index else {
            return;
        };
        let Ok(bytes) = crate::nofollow::read(&self.index_path()) else {
            return;
        };
        let Some((first, count, end, mac)) = self.index_binding(&bytes) else {
            return;
        };
        if let Ok(idx) = crate::index::decode_file(&bytes, first, count, end, &mac, auth) {
            if self.check_mapped().is_ok() {
                a.seed(idx);
            }
        }
    }

    /// Whether the side file of this unsealed segment already is the one a clean close
    /// would write now (its count, records end and last MAC are those given). Reads the
    /// file's first 72 bytes only.
    pub(crate) fn index_file_matches(&self, count: u64, records_end: u64, last_mac: &Hash) -> bool {
        let mut head = [0u8; 72];
        let Ok(mut f) = crate::nofollow::open(&self.index_path()) else {
            return false;
        };
        if f.read_exact(&mut head).is_err() {
            return false;
        }
        head[24..32] == count.to_le_bytes()
            && head[32..40] == records_end.to_le_bytes()
            && head[40..72] == last_mac[..]
    }

    /// [`load_or_build_index`](Self::load_or_build_index) reading the side file into `buf`.
    /// The file is read, not mapped: its MAC must be checked over the very bytes that are
    /// decoded, which a map another program can edit in place would not guarantee.
    fn load_or_build_index_in(
        &self,
        auth: crate::index::IndexAuth<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<crate::index::SegIndex> {
        self.check_intact()?;
        // A side file that is a symbolic link (or not a regular file) is not read: the
        // index is rebuilt from the segment instead.
        if crate::nofollow::read_into(&self.index_path(), buf).is_ok() {
            if let Some((first, count, end, mac)) = self.index_binding(buf) {
                if let Ok(idx) = crate::index::decode_file(buf, first, count, end, &mac, auth) {
                    // Read through this segment's map: trusted only if no read faulted.
                    self.check_mapped()?;
                    return Ok(idx);
                }
            }
        }
        if let Some(e) = self.load_error() {
            return Err(Error::Corrupt {
                file: self.path.clone(),
                offset: 0,
                detail: e,
            });
        }
        let idx = crate::index::build(self.bytes(), self.header.first_seq)?;
        // Built from zeros where the map faulted: neither used nor saved.
        self.check_mapped()?;
        if let (Some(ft), true) = (&self.footer, self.index_writable) {
            let bytes = crate::index::encode_file(&idx, ft.records_end, &ft.last_mac, auth);
            let dir = self.path.parent().unwrap_or(Path::new("."));
            let name = self
                .index_path()
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            // Best effort: the rebuilt index is used from memory even if it cannot be saved.
            let _ = write_atomic("index.write", dir, &name, &bytes);
        }
        Ok(idx)
    }

    /// Heap bytes of this segment's index if it is in memory (it is not loaded for this).
    pub fn index_memory(&self) -> usize {
        match &self.index {
            crate::index::Slot::Active(a) => a.heap_bytes(),
            crate::index::Slot::Lazy(cell) => cell.get().map_or(0, |i| i.heap_bytes()),
        }
    }

    /// File name relative to the data directory.
    pub fn file_name(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| segment_name(self.header.first_seq));
        if crate::archive::is_archived(&self.path) {
            format!("{}/{name}", crate::archive::ARCHIVE_DIR)
        } else {
            name
        }
    }

    /// Iterates the committed frames from the first record on.
    pub fn frames(&self) -> FrameIter<'_> {
        FrameIter {
            bytes: self.bytes(),
            off: HEADER_LEN,
        }
    }
}

/// Iterator over `(offset, frame)` of committed bytes; stops at the first non-frame.
pub struct FrameIter<'a> {
    bytes: &'a [u8],
    off: usize,
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = (usize, crate::format::Frame<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let f = decode_frame(self.bytes.get(self.off..)?).ok()?;
        let at = self.off;
        self.off += f.len;
        Some((at, f))
    }
}

/// What a scan of a segment's records found.
#[derive(Debug, Clone)]
pub struct TailScan {
    pub count: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub last_mac: Option<Hash>,
    pub min_ts: i64,
    pub max_ts: i64,
    /// Offset just past the last valid frame.
    pub end: usize,
    pub stop: ScanStop,
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// Zeroed bytes (the preallocated tail) or the end of the bytes.
    Clean,
    /// A valid footer starts at `end`.
    Footer(Footer),
    /// Bytes that are not a frame start at `end`, and no valid frame follows them: a torn
    /// tail from a crash. `len` is how many non-zero bytes it spans.
    Torn { error: FrameError, len: usize },
    /// Bytes that are not a frame start at `end`, and a valid frame follows at `next`:
    /// damage that must never be cut.
    Damaged { error: FrameError, next: usize },
    /// A frame whose seq does not follow its predecessor's.
    SeqBreak { expected: u64, found: u64 },
}

/// Scans frames from `HEADER_LEN`, expecting seqs to start at `first_seq` and be dense.
pub fn scan(bytes: &[u8], first_seq: u64) -> TailScan {
    let mut s = TailScan {
        count: 0,
        first_seq: None,
        last_seq: None,
        last_mac: None,
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        end: HEADER_LEN.min(bytes.len()),
        stop: ScanStop::Clean,
    };
    let mut expected = first_seq;
    loop {
        let rest = &bytes[s.end..];
        if rest.is_empty() {
            return s;
        }
        match decode_frame(rest) {
            Ok(f) => {
                if f.seq != expected {
                    s.stop = ScanStop::SeqBreak {
                        expected,
                        found: f.seq,
                    };
                    return s;
                }
                s.first_seq.get_or_insert(f.seq);
                s.last_seq = Some(f.seq);
                s.last_mac = Some(f.mac);
                s.min_ts = s.min_ts.min(f.ts);
                s.max_ts = s.max_ts.max(f.ts);
                s.count += 1;
                s.end += f.len;
                expected += 1;
            }
            Err(FrameError::Zero) if crate::format::is_zero(rest) => return s,
            Err(FrameError::Footer) => {
                s.stop = match Footer::decode(rest) {
                    Some(footer) => ScanStop::Footer(footer),
                    None => classify_bad(bytes, s.end, FrameError::Checksum),
                };
                return s;
            }
            Err(error) => {
                s.stop = classify_bad(bytes, s.end, error);
                return s;
            }
        }
    }
}

/// Damage at `at`: torn tail (nothing valid after it) or damage followed by a valid frame.
fn classify_bad(bytes: &[u8], at: usize, error: FrameError) -> ScanStop {
    match next_valid_frame(bytes, at + 1) {
        Some(next) => ScanStop::Damaged { error, next },
        None => {
            let len = end_of_data(bytes).saturating_sub(at);
            ScanStop::Torn { error, len }
        }
    }
}

/// One past the last non-zero byte (0 if all are zero); skips zero pages with memcmp.
pub fn end_of_data(bytes: &[u8]) -> usize {
    const PAGE: usize = 4096;
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(PAGE);
        let chunk = &bytes[start..end];
        if crate::format::is_zero(chunk) {
            end = start;
            continue;
        }
        return start + chunk.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    }
    0
}

/// The first offset at or after `from` where a valid frame or footer decodes.
pub fn next_valid_frame(bytes: &[u8], from: usize) -> Option<usize> {
    // No frame or footer starts in the all-zero tail (their first 8 bytes are never zero).
    let end = end_of_data(bytes);
    (from..end.min(bytes.len().saturating_sub(8))).find(|&o| {
        let rest = &bytes[o..];
        decode_frame(rest).is_ok() || Footer::decode(rest).is_some()
    })
}

/// Reads a whole file into memory.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    crate::nofollow::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(v)
}

/// Writes `footer` at its `records_end`, syncs, trims the file just past it and syncs again.
pub fn write_footer_and_trim(file: &File, path: &Path, footer: &Footer) -> Result<()> {
    let at = footer.records_end;
    fsio::write_at("seal.footer", file, &footer.encode(), at)
        .and_then(|_| fsio::sync_data("seal.footer", file))
        .and_then(|_| fsio::set_len("seal.trim", file, at + FOOTER_LEN as u64))
        .and_then(|_| fsio::sync_all("seal.trim", file))
        .map_err(|e| Error::io("sealing segment", path, e))
}

/// The complete lines of a small append-only text file (an absent file has none), and
/// whether it ends with a line cut short by a crash (not returned).
pub fn read_complete_lines(path: &Path) -> Result<(Vec<String>, bool)> {
    let text = match crate::nofollow::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let text = String::from_utf8_lossy(&text);
    let torn = !text.is_empty() && !text.ends_with('\n');
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    // The piece after the last newline is empty, or the torn line.
    lines.pop();
    Ok((lines, torn))
}

/// What to do with a line cut short by a crash at the end of an append-only text file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TornLine {
    /// Terminate it, so it stays one unreadable line (safe with concurrent in-process appends).
    Terminate,
    /// Remove it (only for files written by the lock holder alone).
    Truncate,
}

/// Appends `line` (which ends with a newline) to `path` and syncs it, dealing with a torn last
/// line first; syncs the directory when the file is new.
pub fn append_line(point: &'static str, path: &Path, line: &str, torn: TornLine) -> Result<()> {
    let mut line = line.to_string();
    let mut created = false;
    fsio::open_or_create(point, path, true)
        .and_then(|(f, new)| {
            created = new;
            let len = f.metadata()?.len();
            if len > 0 {
                let mut all = vec![0u8; len as usize];
                f.read_exact_at(&mut all, 0)?;
                if all.last() != Some(&b'\n') {
                    match torn {
                        TornLine::Terminate => line.insert(0, '\n'),
                        TornLine::Truncate => {
                            let keep = all.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                            fsio::set_len(point, &f, keep as u64)?;
                        }
                    }
                }
            }
            fsio::append(point, &f, line.as_bytes())?;
            fsio::sync_data(point, &f)
        })
        .map_err(|e| Error::io("appending to", path, e))?;
    if created {
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// [`write_atomic`] without the syncs, for derived data that is checked when read (a crash
/// may leave it missing, empty or torn, never half old and half new under its name).
pub fn write_atomic_unsynced(
    point: &'static str,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    (|| -> std::io::Result<()> {
        let f = fsio::create_truncate(point, &tmp)?;
        fsio::write_at(point, &f, bytes, 0)?;
        fsio::rename(point, &tmp, &dst)
    })()
    .map_err(|e| {
        let _ = fsio::remove_if_exists("leftover.remove", &tmp);
        Error::io("writing", &dst, e)
    })
}

/// Atomically writes a small file: temp file, sync, rename, sync directory.
pub fn write_atomic(point: &'static str, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    (|| -> std::io::Result<()> {
        let f = fsio::create_truncate(point, &tmp)?;
        fsio::write_at(point, &f, bytes, 0)?;
        fsio::sync_all(point, &f)?;
        fsio::rename(point, &tmp, &dst)
    })()
    .map_err(|e| {
        // A temporary left behind would hold its bytes until the next open removes it: on a
        // full disk, that is space the log needs.
        let _ = fsio::remove_if_exists("leftover.remove", &tmp);
        Error::io("writing", &dst, e)
    })?;
    sync_dir(dir)
}
