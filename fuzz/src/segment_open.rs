//! A segment file of hostile bytes in a data directory that a real log created (fixed key):
//! `Log::open_read_only` + `verify` and `Log::open` may fail, but never panic; a read-only
//! open never changes a byte of the directory; and a log that opens and verifies keeps
//! verifying after an append and a reopen.
//!
//! The first input byte picks how the segment is built (bits 0-1), so that the fuzzer
//! reaches past the header's checksum: raw bytes, a valid header followed by the input, or a
//! real segment with input-driven byte patches and truncation. Bit 7 brings the real log's
//! checkpoints along; bit 6 names the file with a seq its header disagrees with.
//!
//! Shared with `tests/fuzz_corpus_smoke.rs`, which includes this file by path: it may only
//! use `auditlog`'s public API and `tempfile`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use auditlog::format::HEADER_LEN;
use auditlog::sample::Generator;
use auditlog::{Durability, HmacKey, Log, Options, CHECKPOINT_FILE, META_FILE};

const KEY: &[u8] = b"segment_open fuzz key, thirty-two bytes at least";
const SEGMENT: &str = "00000000000000000000.seg";

fn options() -> Options {
    Options::new(HmacKey::from_bytes(KEY).unwrap())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
}

/// A real log's files, made once per process.
struct Template {
    meta: Vec<u8>,
    checkpoints: Vec<u8>,
    /// Segment 0 up to the end of its records, then 256 zero bytes.
    segment: Vec<u8>,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let tmp = scratch();
        let dir = tmp.path();
        {
            let log = Log::open(dir, options()).unwrap();
            let events: Vec<_> = Generator::standard(1).take(6).collect();
            log.append_batch(&events).unwrap();
        }
        let mut segment = fs::read(dir.join(SEGMENT)).unwrap();
        let end = segment.iter().rposition(|&b| b != 0).unwrap() + 1;
        segment.truncate(end + 256);
        Template {
            meta: fs::read(dir.join(META_FILE)).unwrap(),
            checkpoints: fs::read(dir.join(CHECKPOINT_FILE)).unwrap(),
            segment,
        }
    })
}

/// A temporary directory, in memory where the machine has a tmpfs (fsyncs are free there).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Every file of a directory with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Builds the segment file from the input.
fn segment_bytes(mode: u8, input: &[u8]) -> Vec<u8> {
    let t = template();
    match mode & 3 {
        0 => input.to_vec(),
        1 => {
            let mut s = t.segment[..HEADER_LEN].to_vec();
            s.extend_from_slice(input);
            s
        }
        _ => {
            // Pairs of (offset, xor mask) patch the real segment; a final odd byte truncates.
            let mut s = t.segment.clone();
            let mut chunks = input.chunks_exact(3);
            for c in &mut chunks {
                let off = u16::from_le_bytes([c[0], c[1]]) as usize % s.len();
                s[off] ^= c[2];
            }
            if let [cut, ..] = chunks.remainder() {
                let keep = s.len() * (*cut as usize) / 256;
                s.truncate(keep.max(1));
            }
            s
        }
    }
}

/// How far an input got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reached {
    /// Too short to build a directory from.
    Nothing,
    /// The read-only open and verify ran; `Log::open` refused the directory.
    ReadOnly,
    /// `Log::open` succeeded; verify reported damage.
    Opened,
    /// The log verified, took an append and reopened intact.
    Appended,
}

pub fn run(data: &[u8]) -> Reached {
    let Some((&mode, input)) = data.split_first() else {
        return Reached::Nothing;
    };
    let t = template();
    let tmp = scratch();
    let dir = tmp.path();
    fs::write(dir.join(META_FILE), &t.meta).unwrap();
    if mode & 0x80 != 0 {
        fs::write(dir.join(CHECKPOINT_FILE), &t.checkpoints).unwrap();
    }
    // Sometimes under a name that disagrees with the header.
    let name = if mode & 0x40 != 0 {
        "00000000000000000001.seg"
    } else {
        SEGMENT
    };
    fs::write(dir.join(name), segment_bytes(mode, input)).unwrap();

    let before = snapshot(dir);
    if let Ok(log) = Log::open_read_only(dir, HmacKey::from_bytes(KEY).unwrap()) {
        let _ = log.verify();
        let _ = log.stats();
        let _ = log.next_seq();
        for r in log.iter().take(10_000) {
            let _ = r;
        }
    }
    assert!(
        snapshot(dir) == before,
        "a read-only open and verify changed the data directory"
    );

    let Ok(log) = Log::open(dir, options()) else {
        return Reached::ReadOnly;
    };
    let Ok(report) = log.verify() else {
        return Reached::Opened;
    };
    for r in log.iter().take(10_000) {
        let _ = r;
    }
    if !report.ok {
        return Reached::Opened;
    }
    // A log that opens and verifies stays intact through an append and a reopen.
    let next = log.next_seq();
    let event = Generator::standard(2).next_event();
    let receipt = log.append(&event).expect("append to a log that verified");
    assert_eq!(receipt.seq, next);
    let after = log.verify().unwrap();
    assert!(after.ok, "verify after one append: {:?}", after.failure);
    drop(log);
    let log = Log::open(dir, options()).expect("reopen of a log that verified");
    let again = log.verify().unwrap();
    assert!(again.ok, "verify after reopen: {:?}", again.failure);
    assert_eq!(log.next_seq(), next + 1);
    let got = log.get(next).unwrap().expect("the appended record");
    assert_eq!(got.hash, receipt.hash);
    Reached::Appended
}
