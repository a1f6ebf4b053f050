//! A crash that cuts the active segment at any byte keeps exactly the records whose frames
//! were complete before the cut, recovery cuts only the torn frame, the log verifies, and
//! appending continues the chain.
//!
//! In the spirit of redb's `crash_consistency` test: after a log is written and closed, each
//! case copies its directory and zeroes the active segment from offset `X` to its end, for
//! every `X` in the last two frames (the file is preallocated with zeros, so this is exactly
//! what a crash leaves when it stops the writer at `X`). `checkpoints.jsonl` is removed from
//! each copy, because the checkpoint written on close would rightly report the cut records as
//! truncated, and so is the writer's `staging` file, which a power loss may take with it (with
//! it intact, recovery copies the cut records back from it: the last test).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use auditlog::format::{decode_frame, encode_frame_into, HEADER_LEN};
use auditlog::sample::Generator;
use auditlog::{Durability, HmacKey, Log, Options, Receipt, CHECKPOINT_FILE, STAGING_FILE};

const KEY: &[u8] = b"torn-writes test key, at least thirty-two bytes";

fn options() -> Options {
    Options::new(HmacKey::from_bytes(KEY).unwrap())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// A closed log and what was appended to it.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    receipts: Vec<Receipt>,
    /// The newest segment file, which holds the last records.
    active: PathBuf,
    /// Start offsets of the frames in the active segment, then the end of the last one.
    bounds: Vec<usize>,
}

/// A log with `sealed` sealed segments of three records each (rolled by age, so that they
/// stay small and each case verifies quickly), then an active segment with exactly
/// `in_active` records (at least two); closed.
fn fixture(seed: u64, sealed: usize, in_active: u64) -> Fixture {
    assert!(in_active >= 2);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut gen = Generator::standard(seed);
    let mut receipts = Vec::new();
    if sealed > 0 {
        let log = Log::open(&dir, options().segment_max_age(Duration::from_millis(50))).unwrap();
        for n in 1..=sealed {
            for _ in 0..3 {
                receipts.push(log.append(&gen.next_event()).unwrap());
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while log.stats().unwrap().segments <= n {
                assert!(Instant::now() < deadline, "the segment never rolled by age");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Reopened with the default age, so that nothing rolls while the active segment fills.
    let log = Log::open(&dir, options()).unwrap();
    for _ in 0..in_active {
        receipts.push(log.append(&gen.next_event()).unwrap());
    }
    drop(log);
    let active = segment_files(&dir).pop().unwrap();
    let bytes = fs::read(&active).unwrap();
    let mut bounds = vec![HEADER_LEN];
    while let Ok(f) = decode_frame(&bytes[*bounds.last().unwrap()..]) {
        bounds.push(bounds.last().unwrap() + f.len);
    }
    assert_eq!(
        bounds.len() as u64,
        in_active + 1,
        "the active segment holds {} frames",
        bounds.len() - 1
    );
    assert!(
        bytes[*bounds.last().unwrap()..].iter().all(|&b| b == 0),
        "the active segment's unwritten tail is not zero"
    );
    assert_eq!(segment_files(&dir).len(), sealed + 1);
    Fixture {
        _tmp: tmp,
        dir,
        receipts,
        active,
        bounds,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn assert_records(log: &Log, want: &[Receipt], from: u64, ctx: &str) {
    let got: Vec<_> = log.iter_from(from).map(|r| r.unwrap()).collect();
    let want = &want[from as usize..];
    assert_eq!(got.len(), want.len(), "{ctx}: records from seq {from}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(
            (g.seq, g.event.event_id.as_ref(), g.timestamp_ns, g.hash),
            (w.seq, Some(&w.event_id), w.timestamp_ns, w.hash),
            "{ctx}"
        );
    }
}

/// The crash at `cut`: zero the active segment from `cut` on, reopen, check, append, reopen.
fn crash_at(fx: &Fixture, cut: usize, case_dir: &Path) {
    let ctx = format!("cut at byte {cut}");
    copy_dir(&fx.dir, case_dir);
    fs::remove_file(case_dir.join(CHECKPOINT_FILE)).unwrap();
    fs::remove_file(case_dir.join(STAGING_FILE)).unwrap();
    let seg = case_dir.join(fx.active.file_name().unwrap());
    let mut bytes = fs::read(&seg).unwrap();
    let original = bytes.clone();
    bytes[cut..].iter_mut().for_each(|b| *b = 0);
    fs::write(&seg, &bytes).unwrap();

    // Records of the active segment whose frames end at or before the cut survive, and so does
    // a frame whose bytes past the cut were zero already (its CRC can end in zero bytes): the
    // crash changed nothing in it.
    let active_first = fx.receipts.len() as u64 - (fx.bounds.len() as u64 - 1);
    let complete = fx.bounds[1..]
        .iter()
        .take_while(|&&end| end <= cut || original[cut..end].iter().all(|&b| b == 0))
        .count() as u64;
    let kept = active_first + complete;
    let torn_start = fx.bounds[complete as usize];

    let log = Log::open(case_dir, options()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
    match &log.recovery().torn_tail {
        None => assert!(
            bytes[torn_start.min(cut)..cut].iter().all(|&b| b == 0),
            "{ctx}: a partial frame at {torn_start} was not reported"
        ),
        Some(t) => {
            let written = bytes[torn_start.min(cut)..cut]
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |p| p + 1);
            assert_eq!(
                (t.segment.as_str(), t.offset, t.bytes),
                (
                    fx.active.file_name().unwrap().to_str().unwrap(),
                    torn_start as u64,
                    written as u64
                ),
                "{ctx}: recovery cut the wrong bytes"
            );
        }
    }
    assert_eq!(log.next_seq(), kept, "{ctx}: next seq after recovery");
    assert_records(&log, &fx.receipts[..kept as usize], active_first, &ctx);

    // Appending continues the chain from the last surviving record. (One verify, after the
    // append, covers the recovered records too: it keeps the debug-build runtime down.)
    let mut next = Generator::standard(7_777).next_event();
    next.event_id = Some(format!("after-cut-{cut}"));
    let r = log.append(&next).unwrap();
    assert_eq!(r.seq, kept, "{ctx}: seq of the first append after recovery");
    drop(log);
    let log = Log::open_read_only(case_dir, HmacKey::from_bytes(KEY).unwrap()).unwrap();
    let report = log.verify().unwrap();
    assert!(
        report.ok,
        "{ctx}: verify after append: {:?}",
        report.failure
    );
    assert_eq!(report.records, kept + 1, "{ctx}");
    assert!(
        report.warnings.is_empty(),
        "{ctx}: warnings after recovery: {:?}",
        report.warnings
    );
    let mut want = fx.receipts[..kept as usize].to_vec();
    want.push(r);
    assert_records(&log, &want, active_first, &ctx);
    drop(log);
    fs::remove_dir_all(case_dir).unwrap();
}

/// Cases run in memory when the machine has a tmpfs: the crash is simulated by editing
/// files, so the file system's own durability plays no part, and its fsyncs would dominate.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap()),
        false => tempfile::tempdir().unwrap(),
    }
}

fn crash_at_every_byte_of_the_last_two_frames(fx: &Fixture) {
    let n = fx.bounds.len();
    let (from, to) = (fx.bounds[n - 3], fx.bounds[n - 1]);
    let scratch = scratch_dir();
    for cut in from..=to {
        crash_at(fx, cut, &scratch.path().join(cut.to_string()));
    }
}

#[test]
fn cut_inside_the_last_two_frames_of_a_busy_segment() {
    // A sealed segment, then 24 records in the active one.
    let fx = fixture(1, 1, 24);
    crash_at_every_byte_of_the_last_two_frames(&fx);
}

#[test]
fn cut_inside_the_only_two_frames_of_a_fresh_segment() {
    // Two sealed segments, then an active one with only the two frames, so the deepest cut
    // empties it and recovery must continue the chain from the last sealed segment's footer.
    let fx = fixture(2, 2, 2);
    crash_at_every_byte_of_the_last_two_frames(&fx);
}

/// A process crash leaves the staging file in the page cache: records whose frames had only
/// been staged (here: a copy of a live writer's directory, the segment's last two frames
/// zeroed, the staging file kept) are copied back at open, reported, and verify; a staged
/// frame edited with its CRC fixed fails its MAC and is not copied in. (A clean close empties
/// the staging file's header, so a closed log has nothing to replay.)
#[test]
fn staged_records_survive_a_cut_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, options()).unwrap();
    let mut gen = Generator::standard(3);
    let receipts: Vec<Receipt> = (0..6)
        .map(|_| log.append(&gen.next_event()).unwrap())
        .collect();
    log.flush().unwrap();
    // The live writer's files, as a process crash leaves them.
    let crashed = tmp.path().join("crashed");
    copy_dir(&dir, &crashed);
    drop(log);
    let closed = fs::read(dir.join(STAGING_FILE)).unwrap();
    assert!(
        closed[..64].iter().all(|&b| b == 0),
        "a clean close retires the staging header"
    );
    let seg = segment_files(&crashed).pop().unwrap();
    let pristine = fs::read(&seg).unwrap();
    let mut bounds = vec![HEADER_LEN];
    while let Ok(f) = decode_frame(&pristine[*bounds.last().unwrap()..]) {
        bounds.push(bounds.last().unwrap() + f.len);
    }
    assert_eq!(bounds.len(), 7, "six frames");
    let cut = bounds[4];
    let last_two = pristine[cut..bounds[6]].to_vec();
    for edit_staged in [false, true] {
        let scratch = scratch_dir();
        let case_dir = scratch.path().join("case");
        copy_dir(&crashed, &case_dir);
        let seg = case_dir.join(seg.file_name().unwrap());
        let mut bytes = pristine.clone();
        bytes[cut..].iter_mut().for_each(|b| *b = 0);
        fs::write(&seg, &bytes).unwrap();
        let staging = case_dir.join(STAGING_FILE);
        let mut st = fs::read(&staging).unwrap();
        let at = st
            .windows(last_two.len())
            .position(|w| w == last_two.as_slice())
            .expect("the last frames are in the staging file");
        if edit_staged {
            // The last staged frame with one payload byte changed and its CRC recomputed (the
            // MAC kept): the chain check refuses it.
            let second = at + (bounds[5] - cut);
            let f = decode_frame(&st[second..]).unwrap();
            let mut payload = f.payload.to_vec();
            payload[0] ^= 1;
            let (seq, ts, flags, mac, len) = (f.seq, f.ts, f.flags, f.mac, f.len);
            encode_frame_into(
                &mut st[second..second + len],
                flags,
                seq,
                ts,
                &payload,
                &mac,
            );
            assert!(
                decode_frame(&st[second..]).is_ok(),
                "the forged frame decodes"
            );
        }
        fs::write(&staging, &st).unwrap();
        let log = Log::open(&case_dir, options()).unwrap();
        let want = if edit_staged { 1 } else { 2 };
        assert_eq!(log.recovery().staged_records, want, "edited: {edit_staged}");
        let kept = 4 + want as usize;
        assert_eq!(log.next_seq(), kept as u64);
        assert_records(&log, &receipts[..kept], 0, "staged");
        assert!(log.verify().unwrap().ok);
    }
}
