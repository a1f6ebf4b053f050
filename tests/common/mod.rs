//! Shared helpers for the integration tests: keys, deterministic events, writing logs,
//! copying data directories and parsing the byte layout of segment files.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::format::{decode_frame, Footer, FOOTER_LEN, HEADER_LEN};
use auditlog::sample::Generator;
use auditlog::{Durability, Event, HmacKey, Log, Options, Receipt, VerifyReport};

/// The key every test log is written with.
pub fn key() -> HmacKey {
    HmacKey::from_bytes(&[7u8; 32]).expect("32-byte key")
}

/// A different valid key.
pub fn other_key() -> HmacKey {
    HmacKey::from_bytes(&[9u8; 32]).expect("32-byte key")
}

/// Small segments (the minimum, 64 KiB) so that a few thousand events span several files.
pub const SMALL_SEGMENT: u64 = 64 * 1024;

/// `n` realistic, deterministic events.
pub fn events(seed: u64, n: usize) -> Vec<Event> {
    Generator::standard(seed).take(n).collect()
}

/// Options for test logs: the test key, buffered durability, 64 KiB segments.
pub fn buffered_opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(SMALL_SEGMENT)
}

/// Creates a log in `dir` holding `n` events of `Generator::standard(seed)`, appended in
/// batches, and closes it (dropping it seals every rolled segment and writes a final
/// checkpoint). Returns the receipts.
pub fn write_log(dir: &Path, seed: u64, n: usize) -> Vec<Receipt> {
    let log = Log::open(dir, buffered_opts()).expect("open log for writing");
    let evs = events(seed, n);
    let mut receipts = Vec::with_capacity(n);
    for chunk in evs.chunks(100) {
        receipts.extend(log.append_batch(chunk).expect("append batch"));
    }
    drop(log);
    receipts
}

/// Verifies the log in `dir` through a read-only open, as `auditlog verify` does.
pub fn verify_ro(dir: &Path) -> VerifyReport {
    Log::open_read_only(dir, key())
        .expect("open read-only")
        .verify()
        .expect("verify runs")
}

/// Copies every regular file of `src` into `dst` (created if needed), except the lock file.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("create copy directory");
    for entry in fs::read_dir(src).expect("read source directory") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        if name == auditlog::LOCK_FILE || !entry.file_type().expect("file type").is_file() {
            continue;
        }
        fs::copy(entry.path(), dst.join(&name)).expect("copy file");
    }
}

/// Every file of a directory with its bytes, sorted by name (to compare before/after).
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .expect("read directory")
        .map(|e| e.expect("directory entry"))
        .filter(|e| e.file_type().expect("file type").is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read file"),
            )
        })
        .collect();
    out.sort();
    out
}

/// Segment files of a data directory, oldest first.
pub fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The file name of a path, as a `String`.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// One record frame inside a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameAt {
    pub offset: usize,
    pub len: usize,
    pub seq: u64,
}

/// The byte layout of one segment file, parsed with the crate's own decoders.
#[derive(Debug, Clone)]
pub struct SegLayout {
    pub path: PathBuf,
    pub name: String,
    /// The first seq, from the file name (also right for a segment without records).
    pub name_seq: u64,
    pub frames: Vec<FrameAt>,
    /// Offset of the footer of a sealed segment.
    pub footer: Option<usize>,
    /// End of the written bytes: past the footer when sealed, else past the last frame.
    pub written_end: usize,
}

impl SegLayout {
    pub fn first_seq(&self) -> u64 {
        self.frames.first().expect("non-empty segment").seq
    }
    pub fn last_seq(&self) -> u64 {
        self.frames.last().expect("non-empty segment").seq
    }
    /// The frame that contains byte `pos`, if any.
    pub fn frame_containing(&self, pos: usize) -> Option<FrameAt> {
        self.frames
            .iter()
            .copied()
            .find(|f| pos >= f.offset && pos < f.offset + f.len)
    }
}

/// Parses a segment file: header, every frame, and the footer if it is sealed.
pub fn layout(path: &Path) -> SegLayout {
    let bytes = fs::read(path).expect("read segment");
    let mut frames = Vec::new();
    let mut off = HEADER_LEN;
    while off < bytes.len() {
        match decode_frame(&bytes[off..]) {
            Ok(f) => {
                frames.push(FrameAt {
                    offset: off,
                    len: f.len,
                    seq: f.seq,
                });
                off += f.len;
            }
            Err(_) => break,
        }
    }
    let footer = Footer::decode(&bytes[off.min(bytes.len())..]).map(|_| off);
    let written_end = footer.map_or(off, |f| f + FOOTER_LEN);
    let name = file_name(path);
    let name_seq = name
        .strip_suffix(".seg")
        .and_then(|s| s.parse().ok())
        .expect("segment file named by its first seq");
    SegLayout {
        path: path.to_path_buf(),
        name,
        name_seq,
        frames,
        footer,
        written_end,
    }
}

/// Layouts of every segment of a data directory, oldest first.
pub fn layouts(dir: &Path) -> Vec<SegLayout> {
    segment_paths(dir).iter().map(|p| layout(p)).collect()
}

/// XORs the byte at `pos` of `path` with `mask`, in place.
pub fn xor_byte(path: &Path, pos: usize, mask: u8) {
    let mut b = fs::read(path).expect("read file");
    b[pos] ^= mask;
    fs::write(path, b).expect("write file");
}

/// Writes a frame's CRC so that it matches its (possibly edited) bytes, leaving the MAC as it
/// is: only the keyed chain can then notice the edit.
pub fn fix_frame_crc(bytes: &mut [u8], frame: FrameAt) {
    let crc_at = frame.offset + frame.len - 4;
    let crc = crc32fast::hash(&bytes[frame.offset..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The `FailureKind`, seq, segment and offset of a failed report, for assertions.
pub fn failure_of(
    report: &VerifyReport,
) -> (
    auditlog::FailureKind,
    Option<u64>,
    Option<String>,
    Option<u64>,
) {
    assert!(
        !report.ok,
        "expected a failure, got an ok report: {report:?}"
    );
    let f = report
        .failure
        .as_ref()
        .expect("a failed report names its failure");
    (f.kind, f.seq, f.segment.clone(), f.offset)
}

/// Creates a log whose segments are small: each batch of `per_segment` events goes into its
/// own segment, because the segments roll by age (1 ms) between batches. Verifying such a log
/// is cheap, so tests can afford to damage it at many positions one at a time. The last batch
/// is appended after reopening without the age limit, so the layout is always the same:
/// `segments - 1` sealed segments and an active one holding the last batch. The log is closed
/// on return.
pub fn write_small_segments(dir: &Path, seed: u64, segments: usize, per_segment: usize) {
    assert!(segments >= 1 && per_segment >= 1);
    let evs = events(seed, segments * per_segment);
    let mut batches = evs.chunks(per_segment);
    let opts = buffered_opts()
        .segment_max_age(std::time::Duration::from_millis(1))
        .checkpoint_interval(std::time::Duration::from_millis(5));
    let log = Log::open(dir, opts).expect("open log for writing");
    for i in 0..segments - 1 {
        log.append_batch(batches.next().expect("batch"))
            .expect("append batch");
        // Wait for the worker to roll the segment that holds this batch.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.stats().expect("stats").segments < i + 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the segment did not roll by age"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    drop(log);
    let log = Log::open(dir, buffered_opts()).expect("reopen log for writing");
    log.append_batch(batches.next().expect("last batch"))
        .expect("append batch");
    drop(log);
    let segs = layouts(dir);
    assert_eq!(segs.len(), segments, "one segment per batch");
    assert!(segs.iter().all(|s| s.frames.len() == per_segment));
}

/// Adds one to the timestamp of record `seq` in its segment file and fixes the frame's CRC:
/// the bytes are whole, only the keyed chain can tell.
pub fn forge_timestamp(dir: &Path, seq: u64) {
    for l in layouts(dir) {
        if let Some(f) = l.frames.iter().find(|f| f.seq == seq).copied() {
            let mut b = fs::read(&l.path).unwrap();
            b[f.offset + 20] ^= 1;
            fix_frame_crc(&mut b, f);
            fs::write(&l.path, b).unwrap();
            return;
        }
    }
    panic!("no record {seq}");
}
