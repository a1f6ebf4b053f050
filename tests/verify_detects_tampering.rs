//! Invariant: any change to a log's files that the writer did not make — a flipped byte, an
//! edited record, a removed, reordered or foreign record or segment, a truncated tail, a
//! rolled-back directory, an edited checkpoint — makes `verify` fail with the right
//! `FailureKind` at the right seq / segment / offset; an untouched log verifies ok.

mod common;

use std::fs;
use std::path::Path;

use auditlog::format::{decode_frame, HEADER_LEN};
use auditlog::{Checkpoint, Error, FailureKind, Log, CHECKPOINT_FILE};
use common::*;

const EVENTS: usize = 3000;

/// Writes the standard test log of this file: 3000 events over many 64 KiB segments.
fn base_log(dir: &Path) -> Vec<auditlog::Receipt> {
    let receipts = write_log(dir, 1, EVENTS);
    assert!(
        segment_paths(dir).len() >= 5,
        "the test log must span several segments"
    );
    receipts
}

fn verify_with(dir: &Path, external: &[Checkpoint]) -> auditlog::VerifyReport {
    Log::open_read_only(dir, key())
        .expect("open read-only")
        .verify_with(external)
        .expect("verify runs")
}

type Located = (FailureKind, Option<u64>, Option<String>, Option<u64>);

/// What `verify` must report for a single changed byte at `pos` of the segment `seg`.
///
/// A damaged header is a corrupt frame at offset 0; a damaged record frame is a corrupt frame
/// at that record's seq and offset (whether valid data follows it or a checkpoint covers it);
/// a damaged footer is a corrupt frame at the footer's offset, where the next seq would start.
fn expected_for_flip(seg: &SegLayout, pos: usize) -> Located {
    let here = |seq: u64, off: usize| {
        (
            FailureKind::CorruptFrame,
            Some(seq),
            Some(seg.name.clone()),
            Some(off as u64),
        )
    };
    if pos < HEADER_LEN {
        return here(seg.name_seq, 0);
    }
    if let Some(f) = seg.frame_containing(pos) {
        return here(f.seq, f.offset);
    }
    match seg.footer {
        Some(fo) if pos >= fo && pos < seg.written_end => here(seg.last_seq() + 1, fo),
        _ => panic!(
            "position {pos} of {} is outside the written region",
            seg.name
        ),
    }
}

/// Flips `mask` at `pos` of `seg` (in the log in `dir`), verifies, checks the report against
/// [`expected_for_flip`], and restores the byte.
fn flip_and_check(dir: &Path, seg: &SegLayout, pos: usize, mask: u8) {
    xor_byte(&seg.path, pos, mask);
    let report = verify_ro(dir);
    xor_byte(&seg.path, pos, mask);
    assert!(
        !report.ok,
        "byte {pos} of {} (mask {mask:#04x}) changed and verify said ok",
        seg.name
    );
    assert_eq!(
        failure_of(&report),
        expected_for_flip(seg, pos),
        "byte {pos} of {} (mask {mask:#04x}): {:?}",
        seg.name,
        report.failure
    );
}

#[test]
fn untouched_log_verifies_with_all_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = base_log(dir.path());
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let cp = log.checkpoint().unwrap();
    assert_eq!(cp.seq, EVENTS as u64 - 1);
    let in_dir = fs::read_to_string(dir.path().join(CHECKPOINT_FILE))
        .unwrap()
        .lines()
        .count();
    assert!(in_dir >= segment_paths(dir.path()).len() - 1);

    let report = log.verify_with(&[cp]).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.failure.is_none());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.records, EVENTS as u64);
    assert_eq!(report.first_seq, Some(0));
    assert_eq!(report.last_seq, Some(EVENTS as u64 - 1));
    assert_eq!(report.segments, segment_paths(dir.path()).len());
    assert_eq!(report.checkpoints_checked, in_dir + 1);
    assert_eq!(
        report.last_hash.as_deref(),
        Some(receipts.last().unwrap().hash_string().as_str())
    );

    // The same through a writable open.
    drop(log);
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    let report = log.verify().unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, EVENTS as u64);
}

#[test]
fn flipped_byte_at_structural_positions_of_every_segment() {
    // Three 64 KiB segments rolled by size: two sealed ones and the active one.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 2, 450);
    let segs = layouts(dir.path());
    assert_eq!(segs.len(), 3);
    assert!(segs[0].footer.is_some() && segs[1].footer.is_some() && segs[2].footer.is_none());
    let mut checked = 0;
    for seg in &segs {
        let mut positions: Vec<usize> = vec![0, 7, 12, 33, 60, 124];
        for f in [seg.frames[0], seg.frames[seg.frames.len() - 1]] {
            let p = f.len - 64; // payload length
            for rel in [0, 5, 8, 13, 21, 28 + p / 2, 28 + p + 16, f.len - 1] {
                positions.push(f.offset + rel);
            }
        }
        if let Some(fo) = seg.footer {
            for rel in [0, 5, 8, 24, 56, 88, 110, 127] {
                positions.push(fo + rel);
            }
        }
        for (i, pos) in positions.into_iter().enumerate() {
            flip_and_check(dir.path(), seg, pos, 1 << (i % 8));
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked} positions checked");
    assert!(verify_ro(dir.path()).ok, "bytes were restored");
}

#[test]
fn flipped_byte_with_a_stride_across_every_segment() {
    // Small segments (rolled by age) so that verifying after each of hundreds of flips is cheap.
    let dir = tempfile::tempdir().unwrap();
    write_small_segments(dir.path(), 3, 5, 6);
    let segs = layouts(dir.path());
    assert!(segs.len() >= 5, "{} segments", segs.len());
    assert!(segs.iter().filter(|s| s.footer.is_some()).count() >= 4);
    assert!(verify_ro(dir.path()).ok);
    let mut checked = 0;
    for (k, seg) in segs.iter().enumerate() {
        // A different phase per segment, so headers and footers are hit at different bytes.
        let mut pos = (k * 13) % 37;
        while pos < seg.written_end {
            flip_and_check(dir.path(), seg, pos, 1 << (pos % 8));
            checked += 1;
            pos += 37;
        }
    }
    assert!(checked > 250, "{checked} positions checked");
    assert!(verify_ro(dir.path()).ok, "bytes were restored");
}

#[test]
fn flipped_byte_anywhere_in_a_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    write_small_segments(dir.path(), 4, 3, 5);
    let segs = layouts(dir.path());
    // A record in the middle of a sealed segment: valid frames and the footer follow it.
    let sealed = &segs[1];
    assert!(sealed.footer.is_some());
    let mid = sealed.frames[2];
    // The last record of the log: nothing valid follows, but the close checkpoint covers it.
    let last_seg = segs.iter().rev().find(|s| !s.frames.is_empty()).unwrap();
    let last = *last_seg.frames.last().unwrap();
    // Every byte of the sealed segment's record.
    for pos in mid.offset..mid.offset + mid.len {
        flip_and_check(dir.path(), sealed, pos, 0x80 >> (pos % 8));
    }
    // Every byte of the last record's header and trailer, and every 16th of its payload (each
    // check of the unsealed segment reads and scans its whole preallocated file).
    for rel in 0..last.len {
        if rel < 28 || rel >= last.len - 36 || rel % 16 == 0 {
            flip_and_check(dir.path(), last_seg, last.offset + rel, 0xFF);
        }
    }
}

/// Edits bytes of record `frame` with `edit`, then recomputes the frame's CRC, so that only the
/// MAC can notice.
fn edit_record(seg: &SegLayout, frame: FrameAt, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = fs::read(&seg.path).unwrap();
    edit(&mut bytes[frame.offset..frame.offset + frame.len]);
    fix_frame_crc(&mut bytes, frame);
    assert_ne!(
        decode_frame(&bytes[frame.offset..]),
        Err(auditlog::format::FrameError::Checksum),
        "the edited frame passes its CRC"
    );
    fs::write(&seg.path, bytes).unwrap();
}

/// An edit of one record's bytes.
type RecordEdit = Box<dyn Fn(&mut [u8])>;

#[test]
fn edited_record_with_a_valid_crc_is_a_tampered_record() {
    let base = tempfile::tempdir().unwrap();
    base_log(base.path());
    let segs = layouts(base.path());
    let mid = segs.len() / 2;
    let last = segs.len() - 1;
    let cases: Vec<(&str, usize, usize, RecordEdit)> = vec![
        // A payload byte of a record in the middle of a sealed segment.
        (
            "payload",
            mid,
            40,
            Box::new(|f: &mut [u8]| f[28 + 20] ^= 0x01),
        ),
        // The last payload byte of a segment's first record (chained from the header).
        (
            "payload end",
            mid,
            0,
            Box::new(|f: &mut [u8]| {
                let n = f.len() - 64;
                f[28 + n - 1] = f[28 + n - 1].wrapping_add(1)
            }),
        ),
        // The timestamp of a record.
        ("timestamp", 1, 7, Box::new(|f: &mut [u8]| f[20] ^= 0x10)),
        // The stored MAC itself.
        (
            "mac",
            2,
            3,
            Box::new(|f: &mut [u8]| f[f.len() - 36] ^= 0x04),
        ),
        // A record of the active (unsealed) segment.
        (
            "active payload",
            last,
            10,
            Box::new(|f: &mut [u8]| f[28 + 50] ^= 0x20),
        ),
    ];
    for (what, s, i, edit) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let seg = &layouts(dir.path())[s];
        let frame = seg.frames[i];
        edit_record(seg, frame, edit);
        let bytes = fs::read(&seg.path).unwrap();
        decode_frame(&bytes[frame.offset..]).expect("the edited frame is well-formed");
        let report = verify_ro(dir.path());
        assert_eq!(
            failure_of(&report),
            (
                FailureKind::TamperedRecord,
                Some(frame.seq),
                Some(seg.name.clone()),
                Some(frame.offset as u64)
            ),
            "{what}: {:?}",
            report.failure
        );
    }
}

#[test]
fn deleted_record_is_missing_records() {
    let base = tempfile::tempdir().unwrap();
    base_log(base.path());
    let n = segment_paths(base.path()).len();
    // A record in the middle of a sealed segment, and one in the active segment.
    for (s, i) in [(n / 2, 77), (n - 1, 5)] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let seg = &layouts(dir.path())[s];
        let frame = seg.frames[i];
        let mut bytes = fs::read(&seg.path).unwrap();
        bytes.drain(frame.offset..frame.offset + frame.len);
        fs::write(&seg.path, bytes).unwrap();
        let report = verify_ro(dir.path());
        assert_eq!(
            failure_of(&report),
            (
                FailureKind::MissingRecords,
                Some(frame.seq),
                Some(seg.name.clone()),
                Some(frame.offset as u64)
            ),
            "{:?}",
            report.failure
        );
    }
}

#[test]
fn swapped_adjacent_records_are_reordered_records() {
    let base = tempfile::tempdir().unwrap();
    base_log(base.path());
    let n = segment_paths(base.path()).len();
    for (s, i) in [(1, 100), (n - 1, 2)] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let seg = &layouts(dir.path())[s];
        let (a, b) = (seg.frames[i], seg.frames[i + 1]);
        assert_ne!(a.len, 0);
        let mut bytes = fs::read(&seg.path).unwrap();
        let fa = bytes[a.offset..a.offset + a.len].to_vec();
        let fb = bytes[b.offset..b.offset + b.len].to_vec();
        let swapped: Vec<u8> = fb.into_iter().chain(fa).collect();
        bytes[a.offset..b.offset + b.len].copy_from_slice(&swapped);
        fs::write(&seg.path, bytes).unwrap();
        let report = verify_ro(dir.path());
        assert_eq!(
            failure_of(&report),
            (
                FailureKind::ReorderedRecords,
                Some(a.seq),
                Some(seg.name.clone()),
                Some(a.offset as u64)
            ),
            "{:?}",
            report.failure
        );
    }
}

#[test]
fn truncated_tail_is_caught_by_a_checkpoint() {
    let base = tempfile::tempdir().unwrap();
    let log = Log::open(base.path(), buffered_opts()).unwrap();
    for chunk in events(5, EVENTS).chunks(500) {
        log.append_batch(chunk).unwrap();
    }
    let cp = log.checkpoint().unwrap();
    assert_eq!(cp.seq, EVENTS as u64 - 1);
    drop(log);
    let segs = layouts(base.path());
    let last = segs.last().unwrap();
    let cut = last.frames[last.frames.len() - 10];

    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        dir
    };
    let truncated = |kind, seq| (kind, Some(seq), None::<String>, None::<u64>);

    // Records removed from the end of the file, and the directory's own checkpoints with them:
    // the bare chain cannot tell, the externally kept checkpoint can.
    let dir = fresh();
    let seg_path = dir.path().join(&last.name);
    fs::OpenOptions::new()
        .write(true)
        .open(&seg_path)
        .unwrap()
        .set_len(cut.offset as u64)
        .unwrap();
    fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let report = verify_ro(dir.path());
    assert!(
        report.ok,
        "no checkpoint to compare against: {:?}",
        report.failure
    );
    assert_eq!(report.last_seq, Some(cut.seq - 1));
    let report = verify_with(dir.path(), std::slice::from_ref(&cp));
    assert_eq!(
        failure_of(&report),
        truncated(FailureKind::Truncated, cut.seq),
        "{:?}",
        report.failure
    );

    // The same cut with the directory's checkpoints left in place.
    let dir = fresh();
    fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(&last.name))
        .unwrap()
        .set_len(cut.offset as u64)
        .unwrap();
    let report = verify_ro(dir.path());
    assert_eq!(
        failure_of(&report),
        truncated(FailureKind::Truncated, cut.seq)
    );

    // The whole last segment removed.
    let dir = fresh();
    fs::remove_file(dir.path().join(&last.name)).unwrap();
    fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let report = verify_with(dir.path(), std::slice::from_ref(&cp));
    assert_eq!(
        failure_of(&report),
        truncated(FailureKind::Truncated, last.name_seq),
        "{:?}",
        report.failure
    );

    // The tail zeroed from inside a record, as a crash would leave it: a damaged record that a
    // checkpoint covers is a failure, located at that record.
    let dir = fresh();
    let mut bytes = fs::read(dir.path().join(&last.name)).unwrap();
    bytes[cut.offset + 20..].iter_mut().for_each(|b| *b = 0);
    fs::write(dir.path().join(&last.name), bytes).unwrap();
    let report = verify_with(dir.path(), std::slice::from_ref(&cp));
    assert_eq!(
        failure_of(&report),
        (
            FailureKind::CorruptFrame,
            Some(cut.seq),
            Some(last.name.clone()),
            Some(cut.offset as u64)
        ),
        "{:?}",
        report.failure
    );
}

#[test]
fn deleted_segment_is_missing_segment() {
    let base = tempfile::tempdir().unwrap();
    base_log(base.path());
    let segs = layouts(base.path());
    for gone in [segs.len() / 2, 0] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        fs::remove_file(dir.path().join(&segs[gone].name)).unwrap();
        let report = verify_ro(dir.path());
        assert_eq!(
            failure_of(&report),
            (
                FailureKind::MissingSegment,
                Some(segs[gone].name_seq),
                Some(segs[gone + 1].name.clone()),
                Some(0)
            ),
            "{:?}",
            report.failure
        );
    }
}

#[test]
fn segment_from_another_log_is_a_foreign_segment() {
    let base = tempfile::tempdir().unwrap();
    base_log(base.path());
    // Another log with the same key and the very same events: same segment names and sizes,
    // different log id.
    let other = tempfile::tempdir().unwrap();
    base_log(other.path());
    let segs = layouts(base.path());
    let other_segs = layouts(other.path());
    assert_eq!(
        segs.iter().map(|s| &s.name).collect::<Vec<_>>(),
        other_segs.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for s in [segs.len() / 2, 0, segs.len() - 1] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let name = &segs[s].name;
        assert_eq!(
            fs::metadata(base.path().join(name)).unwrap().len(),
            fs::metadata(other.path().join(name)).unwrap().len()
        );
        fs::copy(other.path().join(name), dir.path().join(name)).unwrap();
        let report = verify_ro(dir.path());
        let (kind, seq, segment, offset) = failure_of(&report);
        assert_eq!(
            (kind, seq, segment),
            (
                FailureKind::ForeignSegment,
                Some(segs[s].name_seq),
                Some(name.clone())
            ),
            "segment {s}: {:?}",
            report.failure
        );
        // Located in the header: at its start (the chain link) or at the log id (byte 16).
        assert!(matches!(offset, Some(0) | Some(16)), "{offset:?}");
    }
}

#[test]
fn rolled_back_directory_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    base_log(dir.path());
    let old = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), old.path());

    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    log.append_batch(&events(6, 500)).unwrap();
    let later = log.checkpoint().unwrap();
    assert_eq!(later.seq, EVENTS as u64 + 499);
    drop(log);
    assert!(verify_ro(dir.path()).ok);

    // Restore the old copy in place of the directory.
    for entry in fs::read_dir(dir.path()).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    copy_dir(old.path(), dir.path());

    // On its own the old directory is consistent; the later checkpoint exposes the rollback.
    assert!(verify_ro(dir.path()).ok);
    let report = verify_with(dir.path(), &[later]);
    assert_eq!(
        failure_of(&report),
        (FailureKind::Truncated, Some(EVENTS as u64), None, None),
        "{:?}",
        report.failure
    );
}

#[test]
fn rewritten_history_behind_a_checkpoint_is_a_checkpoint_mismatch() {
    // Somebody with the key drops the last record and appends a different one in its place:
    // the chain is valid again, but the checkpoint of the original record no longer matches.
    let dir = tempfile::tempdir().unwrap();
    base_log(dir.path());
    let last = layouts(dir.path()).pop().unwrap();
    let f = *last.frames.last().unwrap();
    let mut bytes = fs::read(&last.path).unwrap();
    bytes[f.offset..f.offset + f.len]
        .iter_mut()
        .for_each(|b| *b = 0);
    fs::write(&last.path, bytes).unwrap();
    // The writer's staging file still holds the record (the next open would copy it back):
    // the attacker removes it too.
    fs::remove_file(dir.path().join(auditlog::STAGING_FILE)).unwrap();
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    assert_eq!(log.next_seq(), f.seq);
    let r = log.append(&events(99, 1)[0]).unwrap();
    assert_eq!(r.seq, f.seq);
    drop(log);
    let report = verify_ro(dir.path());
    let (kind, seq, _, _) = failure_of(&report);
    assert_eq!(
        (kind, seq),
        (FailureKind::CheckpointMismatch, Some(f.seq)),
        "{:?}",
        report.failure
    );
}

#[test]
fn edited_checkpoint_is_a_bad_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    base_log(dir.path());
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let cp = log.checkpoint().unwrap();
    assert!(log.verify_with(std::slice::from_ref(&cp)).unwrap().ok);

    let bad = |report: auditlog::VerifyReport, seq: u64| {
        let (kind, s, _, _) = failure_of(&report);
        assert_eq!((kind, s), (FailureKind::BadCheckpoint, Some(seq)));
    };

    // The seq changed (and the count with it, so that only the signature can tell).
    let mut edited = cp.clone();
    edited.seq -= 10;
    edited.count -= 10;
    bad(log.verify_with(&[edited]).unwrap(), cp.seq - 10);

    // The seq changed alone.
    let mut edited = cp.clone();
    edited.seq = 5;
    bad(log.verify_with(&[edited]).unwrap(), 5);

    // The hash changed.
    let mut edited = cp.clone();
    let c = if edited.hash.starts_with('0') {
        '1'
    } else {
        '0'
    };
    edited.hash = format!("{c}{}", &cp.hash[1..]);
    bad(log.verify_with(&[edited]).unwrap(), cp.seq);

    // Edited as JSON text, as somebody would edit a kept file.
    let text = cp
        .to_json()
        .replace(&format!("\"seq\":{}", cp.seq), "\"seq\":1000")
        .replace(&format!("\"count\":{}", cp.count), "\"count\":1001");
    let edited = Checkpoint::from_json(&text).unwrap();
    assert_eq!(edited.seq, 1000);
    bad(log.verify_with(&[edited]).unwrap(), 1000);

    // Signed with the same key for another log.
    let other = tempfile::tempdir().unwrap();
    write_log(other.path(), 1, 10);
    let foreign = Log::open_read_only(other.path(), key())
        .unwrap()
        .checkpoint()
        .unwrap();
    bad(log.verify_with(&[foreign]).unwrap(), 9);
    drop(log);

    // A checkpoint edited inside the directory's own checkpoint log.
    let path = dir.path().join(CHECKPOINT_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let first = Checkpoint::from_json(text.lines().next().unwrap()).unwrap();
    let edited_line = first
        .to_json()
        .replace(&format!("\"seq\":{}", first.seq), "\"seq\":3")
        .replace(&format!("\"count\":{}", first.count), "\"count\":4");
    fs::write(&path, text.replacen(&first.to_json(), &edited_line, 1)).unwrap();
    bad(verify_ro(dir.path()), 3);
}

#[test]
fn wrong_key_is_refused_with_a_wrong_key_error() {
    let dir = tempfile::tempdir().unwrap();
    base_log(dir.path());
    let log_id = Log::open_read_only(dir.path(), key()).unwrap().log_id();
    // The right key opens it for writing.
    drop(Log::open(dir.path(), buffered_opts()).expect("the right key opens the log"));
    let without_lock = |dir: &Path| {
        let mut s = snapshot(dir);
        s.retain(|(n, _)| n != auditlog::LOCK_FILE);
        s
    };
    let before = without_lock(dir.path());
    match Log::open_read_only(dir.path(), other_key()) {
        Err(Error::WrongKey { log_id: id }) => assert_eq!(id, log_id),
        Err(e) => panic!("expected WrongKey, got {e}"),
        Ok(_) => panic!("a wrong key opened the log"),
    }
    match Log::open(
        dir.path(),
        auditlog::Options::new(other_key()).segment_bytes(SMALL_SEGMENT),
    ) {
        Err(e @ Error::WrongKey { .. }) => {
            assert!(e.to_string().contains("wrong key"), "{e}");
            assert!(e.to_string().contains(&log_id), "{e}");
        }
        Err(e) => panic!("expected WrongKey, got {e}"),
        Ok(_) => panic!("a wrong key opened the log for writing"),
    }
    // The refused opens changed nothing in the directory (the lock file aside).
    assert!(before == without_lock(dir.path()), "the directory changed");
    assert!(verify_ro(dir.path()).ok);
}

/// Sets byte `at` of a segment's header (or, with `footer`, of its footer) to `value` (to
/// `!value` when it already holds `value`) and
/// recomputes that structure's CRC, so that only the structure's own rules can catch it.
fn edit_with_valid_crc(seg: &SegLayout, footer: bool, at: usize, value: u8) {
    let base = if footer { seg.footer.unwrap() } else { 0 };
    let mut b = fs::read(&seg.path).unwrap();
    // A byte of the random log id or of a chain value already holds `value` once in 256
    // logs: the edit must still change it.
    b[base + at] = if b[base + at] == value { !value } else { value };
    let crc = crc32fast::hash(&b[base..base + 124]);
    b[base + 124..base + 128].copy_from_slice(&crc.to_le_bytes());
    fs::write(&seg.path, b).unwrap();
}

#[test]
fn record_flags_or_reserved_bytes_edited_with_a_valid_crc_are_caught() {
    // Unknown flags and non-zero reserved bytes are not this writer's (corrupt frame). The
    // one known flag, "redacted" (bit 0, format version 2), on a record that was never
    // redacted makes its payload fail the redaction checks (tampered record).
    let base = tempfile::tempdir().unwrap();
    write_small_segments(base.path(), 7, 3, 5);
    for (what, rel, value, kind) in [
        ("redacted flag", 8, 0x01, FailureKind::TamperedRecord),
        ("flags", 8, 0x02, FailureKind::CorruptFrame),
        ("flags", 9, 0x80, FailureKind::CorruptFrame),
        ("reserved", 10, 0x01, FailureKind::CorruptFrame),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let seg = &layouts(dir.path())[1];
        let frame = seg.frames[2];
        edit_record(seg, frame, |f| f[rel] = value);
        let report = verify_ro(dir.path());
        assert_eq!(
            failure_of(&report),
            (
                kind,
                Some(frame.seq),
                Some(seg.name.clone()),
                Some(frame.offset as u64)
            ),
            "{what}: {:?}",
            report.failure
        );
    }
}

#[test]
fn segment_header_edited_with_a_valid_crc_is_caught() {
    let base = tempfile::tempdir().unwrap();
    write_small_segments(base.path(), 8, 3, 4);
    let segs = layouts(base.path());
    let seg = &segs[1];
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        (dir, layouts(base.path()).remove(1))
    };
    // The chain value it continues from: it no longer continues the previous segment.
    let (dir, s) = fresh();
    let s = SegLayout {
        path: dir.path().join(&s.name),
        ..s
    };
    edit_with_valid_crc(&s, false, 48, 0x5a);
    let report = verify_ro(dir.path());
    assert_eq!(
        failure_of(&report),
        (
            FailureKind::ForeignSegment,
            Some(seg.name_seq),
            Some(seg.name.clone()),
            Some(0)
        ),
        "{:?}",
        report.failure
    );
    // The log id.
    let (dir, s) = fresh();
    let s = SegLayout {
        path: dir.path().join(&s.name),
        ..s
    };
    edit_with_valid_crc(&s, false, 16, 0x5a);
    let report = verify_ro(dir.path());
    let (kind, seq, segment, _) = failure_of(&report);
    assert_eq!(
        (kind, seq, segment),
        (
            FailureKind::ForeignSegment,
            Some(seg.name_seq),
            Some(seg.name.clone())
        )
    );
    // Reserved header bytes.
    for at in [12, 80, 123] {
        let (dir, s) = fresh();
        let s = SegLayout {
            path: dir.path().join(&s.name),
            ..s
        };
        edit_with_valid_crc(&s, false, at, 0x01);
        let report = verify_ro(dir.path());
        assert_eq!(
            failure_of(&report),
            (
                FailureKind::CorruptFrame,
                Some(seg.name_seq),
                Some(seg.name.clone()),
                Some(0)
            ),
            "reserved byte {at}: {:?}",
            report.failure
        );
    }
}

/// The first seq in a segment's header must agree with its file name; when it does not, the
/// failure must name the file that is actually damaged.
#[test]
fn segment_header_first_seq_edit_is_located_in_the_real_file() {
    let base = tempfile::tempdir().unwrap();
    write_small_segments(base.path(), 8, 3, 4);
    let seg = layouts(base.path()).remove(1);
    let mut wrong = Vec::new();
    for new_first in [seg.name_seq + 5, seg.name_seq - 1] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let s = SegLayout {
            path: dir.path().join(&seg.name),
            ..seg.clone()
        };
        edit_with_valid_crc(&s, false, 32, new_first as u8);
        let report = verify_ro(dir.path());
        let (kind, _, segment, offset) = failure_of(&report);
        if (kind, segment.as_deref(), offset)
            != (FailureKind::CorruptFrame, Some(seg.name.as_str()), Some(32))
        {
            wrong.push(format!(
                "header of {} edited to first seq {new_first}: reported {:?}",
                seg.name, report.failure
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected a corrupt frame at offset 32 of the edited file itself:\n{}",
        wrong.join("\n")
    );
}

/// Header flags and footer reserved bytes hold values version 1 never writes; like the frame
/// flags and the header's reserved bytes, they must not pass verification.
#[test]
fn unknown_header_flags_and_footer_reserved_bytes_are_refused() {
    let base = tempfile::tempdir().unwrap();
    write_small_segments(base.path(), 9, 3, 4);
    let seg = layouts(base.path()).remove(1);
    let mut wrong = Vec::new();
    for (footer, at) in [(false, 10), (false, 11), (true, 104), (true, 123)] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let s = SegLayout {
            path: dir.path().join(&seg.name),
            ..seg.clone()
        };
        edit_with_valid_crc(&s, footer, at, 0x01);
        let report = verify_ro(dir.path());
        let what = if footer { "footer" } else { "header" };
        let located = report
            .failure
            .as_ref()
            .map(|f| (f.kind, f.segment.as_deref()));
        if located != Some((FailureKind::CorruptFrame, Some(seg.name.as_str()))) {
            wrong.push(format!(
                "{what} byte {at} of {} set to 1 (CRC fixed): ok = {}, failure {:?}",
                seg.name, report.ok, report.failure
            ));
        }
    }
    assert!(wrong.is_empty(), "not caught:\n{}", wrong.join("\n"));
}

/// The index attack: an index side file edited so that a query no longer finds one actor's
/// events in a segment, its checksum recomputed. The file's MAC (keyed, bound to the
/// segment's footer) exposes it: `verify` fails with `TamperedIndex` naming the segment,
/// queries rebuild the index from the segment and still find every event, and a writer's
/// rebuild replaces the file so that the log verifies again.
#[test]
fn index_edited_to_hide_events_is_a_tampered_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    base_log(dir);
    let count_of = |user: &str| {
        let log = Log::open_read_only(dir, key()).unwrap();
        let q = auditlog::Query::from_params([("user_id", user)]).unwrap();
        log.query(&q).unwrap().total_count
    };
    // Make sure every sealed segment has its side file (a query loads or rebuilds them all).
    {
        let log = Log::open(dir, buffered_opts()).unwrap();
        let q = auditlog::Query::from_params([("user_id", "nobody")]).unwrap();
        log.query(&q).unwrap();
    }
    let idx: Vec<_> = {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "idx"))
            .collect();
        v.sort();
        v
    };
    assert!(!idx.is_empty(), "sealed segments have index files");
    let report = verify_with(dir, &[]);
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.indexes_checked, idx.len());

    // Pick an actor present in the first index file and rename its term (same length).
    let path = &idx[0];
    let mut bytes = fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("user-").expect("an actor term in the index");
    let user = text[at..at + 10].to_string();
    let before = count_of(&user);
    assert!(before > 0);
    bytes[at + 5] = b'X';
    let n = bytes.len();
    let crc = crc32fast::hash(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, &bytes).unwrap();

    let report = verify_with(dir, &[]);
    let f = report.failure.expect("a forged index must fail verify");
    assert_eq!(f.kind, FailureKind::TamperedIndex, "{f}");
    let seg_name = path.with_extension("seg");
    assert_eq!(
        f.segment.as_deref(),
        seg_name.file_name().and_then(|n| n.to_str())
    );
    // Skipping the index check is explicit.
    let skipped = Log::open_read_only(dir, key())
        .unwrap()
        .verify_with_options(&[], false)
        .unwrap();
    assert!(skipped.ok && skipped.indexes_checked == 0);
    // Queries never trust it: the actor's events are all still found.
    assert_eq!(count_of(&user), before, "a forged index hid events");
    // A writer's query rebuilds and rewrites it; then the log verifies again.
    {
        let log = Log::open(dir, buffered_opts()).unwrap();
        let q = auditlog::Query::from_params([("user_id", user.as_str())]).unwrap();
        assert_eq!(log.query(&q).unwrap().total_count, before);
    }
    let report = verify_with(dir, &[]);
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.indexes_checked, idx.len());
}
