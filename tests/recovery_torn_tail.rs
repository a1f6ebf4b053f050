//! Invariant: on `Log::open`, a torn tail (a last record cut short at any length, or garbage
//! after the last record) is cut and reported, every earlier record survives, appends continue
//! and the log verifies; a seal interrupted between footer and trim is finished and reported;
//! damage followed by valid records (or a footer that contradicts its records) is refused with
//! `Error::Corrupt` naming the segment file and offset, and the files are left untouched.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use auditlog::{Error, FailureKind, Log, TornTail, CHECKPOINT_FILE};
use common::*;

const EVENTS: usize = 24;

/// A log of two small segments (one sealed, one active) closed cleanly; returns the chain
/// value of every record, as receipts would have given them.
fn base_log(dir: &Path) -> Vec<auditlog::Hash> {
    write_small_segments(dir, 11, 2, EVENTS / 2);
    let segs = layouts(dir);
    assert!(segs[0].footer.is_some() && segs[1].footer.is_none());
    let log = Log::open_read_only(dir, key()).unwrap();
    let hashes: Vec<_> = log.iter().map(|r| r.unwrap().hash).collect();
    assert_eq!(hashes.len(), EVENTS);
    assert!(log.verify().unwrap().ok);
    hashes
}

/// `base_log`, and its sealed segment with the offset of its footer.
fn base_log_sealed(dir: &Path) -> (Vec<auditlog::Hash>, SegLayout, usize) {
    let hashes = base_log(dir);
    let sealed = layouts(dir).remove(0);
    let fo = sealed.footer.expect("the first segment is sealed");
    (hashes, sealed, fo)
}

/// Keeps only the checkpoints of records before `seq`: what a crash while writing record
/// `seq` leaves (nothing had acknowledged, let alone checkpointed, that record).
fn drop_checkpoints_from(dir: &Path, seq: u64) {
    let path = dir.join(CHECKPOINT_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| auditlog::Checkpoint::from_json(l).unwrap().seq < seq)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!kept.is_empty(), "the sealed segment's checkpoint stays");
    fs::write(path, kept).unwrap();
}

/// Opens for writing and checks the records that survived against the original chain values
/// and events.
fn open_and_check_records(dir: &Path, expected: usize, hashes: &[auditlog::Hash]) -> Log {
    let log = Log::open(dir, buffered_opts()).expect("recovery opens the log");
    let evs = events(11, expected);
    let mut n = 0;
    for (i, r) in log.iter().enumerate() {
        let r = r.expect("record decodes");
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.hash, hashes[i], "seq {i}");
        assert_eq!(r.event, evs[i], "seq {i}");
        n += 1;
    }
    assert_eq!(n, expected, "records present after recovery");
    assert_eq!(log.next_seq(), expected as u64);
    log
}

#[test]
fn torn_last_record_of_every_length_is_cut() {
    let base = tempfile::tempdir().unwrap();
    let hashes = base_log(base.path());
    let last_seq = EVENTS as u64 - 1;
    drop_checkpoints_from(base.path(), last_seq);
    let seg = layouts(base.path()).pop().unwrap();
    let frame = *seg.frames.last().unwrap();
    assert_eq!(frame.seq, last_seq);
    let original = fs::read(&seg.path).unwrap()[frame.offset..frame.offset + frame.len].to_vec();
    let extra = events(12, 1).pop().unwrap();

    // One length at a time on a fresh copy; two threads share the lengths.
    let check_length = |l: usize| -> bool {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let path = dir.path().join(&seg.name);
        let mut bytes = fs::read(&path).unwrap();
        bytes[frame.offset + l..frame.offset + frame.len].fill(0);
        fs::write(&path, &bytes).unwrap();

        // What is left of the record: its first `l` bytes. Only non-zero bytes are torn data;
        // if the record's remaining bytes were zeros anyway, it is whole.
        let whole = original[l..].iter().all(|&b| b == 0);
        let torn_len = original[..l]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p + 1);
        let (expected, torn) = if whole {
            (EVENTS, None)
        } else if torn_len == 0 {
            (EVENTS - 1, None)
        } else {
            (
                EVENTS - 1,
                Some(TornTail {
                    segment: seg.name.clone(),
                    offset: frame.offset as u64,
                    bytes: torn_len as u64,
                    saved_as: None,
                }),
            )
        };

        let log = open_and_check_records(dir.path(), expected, &hashes);
        assert_eq!(log.recovery().torn_tail, torn, "length {l}");
        assert!(log.recovery().sealed_on_open.is_empty());
        assert_eq!(
            log.recovery().active_records,
            expected as u64 - seg.name_seq
        );
        if !whole {
            // The torn bytes are gone from the file.
            let now = fs::read(&path).unwrap();
            assert!(
                now[frame.offset..frame.offset + frame.len]
                    .iter()
                    .all(|&b| b == 0),
                "length {l}: torn bytes left in the file"
            );
        }
        let r = log.append(&extra).expect("append after recovery");
        assert_eq!(r.seq, expected as u64, "length {l}");
        drop(log);

        let report = verify_ro(dir.path());
        assert!(report.ok, "length {l}: {:?}", report.failure);
        assert!(
            report.warnings.is_empty(),
            "length {l}: {:?}",
            report.warnings
        );
        assert_eq!(report.records, expected as u64 + 1);
        assert!(report.checkpoints_checked >= 2);
        torn.is_some()
    };
    let next = AtomicUsize::new(1);
    let torn_cases = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let l = next.fetch_add(1, Ordering::Relaxed);
                if l >= frame.len {
                    break;
                }
                if check_length(l) {
                    torn_cases.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let torn_cases = torn_cases.into_inner();
    assert!(
        torn_cases + 2 >= frame.len - 1,
        "almost every length is torn"
    );
}

#[test]
fn torn_tail_is_a_warning_unless_a_checkpoint_covers_it() {
    let base = tempfile::tempdir().unwrap();
    let hashes = base_log(base.path());
    let seg = layouts(base.path()).pop().unwrap();
    let frame = *seg.frames.last().unwrap();
    let tear = |dir: &Path| {
        let path = dir.join(&seg.name);
        let mut bytes = fs::read(&path).unwrap();
        bytes[frame.offset + frame.len / 2..frame.offset + frame.len].fill(0);
        fs::write(&path, bytes).unwrap();
    };

    // No checkpoint covers the torn record: verify passes with a warning naming the place.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.path(), dir.path());
    tear(dir.path());
    fs::remove_file(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let report = verify_ro(dir.path());
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.records, EVENTS as u64 - 1);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains(&seg.name),
        "{:?}",
        report.warnings
    );
    assert!(
        report.warnings[0].contains(&frame.offset.to_string()),
        "{:?}",
        report.warnings
    );

    // The close of the writer checkpointed the last record, so here the torn record is a
    // failure located at it.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.path(), dir.path());
    tear(dir.path());
    let report = verify_ro(dir.path());
    assert_eq!(
        failure_of(&report),
        (
            FailureKind::CorruptFrame,
            Some(frame.seq),
            Some(seg.name.clone()),
            Some(frame.offset as u64)
        ),
        "{:?}",
        report.failure
    );

    // A writer's open still cuts it (it is the tail), and verify then reports the checkpointed
    // record as missing from the tail.
    let log = open_and_check_records(dir.path(), EVENTS - 1, &hashes);
    assert_eq!(
        log.recovery().torn_tail.as_ref().map(|t| t.offset),
        Some(frame.offset as u64)
    );
    let report = log.verify().unwrap();
    assert_eq!(
        failure_of(&report),
        (FailureKind::Truncated, Some(frame.seq), None, None),
        "{:?}",
        report.failure
    );
    // A different record in its place contradicts the checkpoint.
    let r = log.append(&events(13, 1)[0]).unwrap();
    assert_eq!(r.seq, frame.seq);
    drop(log);
    let report = verify_ro(dir.path());
    let (kind, seq, _, _) = failure_of(&report);
    assert_eq!(
        (kind, seq),
        (FailureKind::CheckpointMismatch, Some(frame.seq))
    );
}

/// Non-zero pseudo-random bytes.
fn garbage(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = auditlog::sample::Rng::new(seed);
    (0..n).map(|_| (rng.below(255) + 1) as u8).collect()
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let base = tempfile::tempdir().unwrap();
    let hashes = base_log(base.path());
    let seg = layouts(base.path()).pop().unwrap();
    let end = seg.written_end;
    // Right after the last record, and further on behind zeros.
    for (gap, len) in [(0usize, 200usize), (0, 1), (0, 7), (1000, 333)] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let path = dir.path().join(&seg.name);
        let mut bytes = fs::read(&path).unwrap();
        let at = end + gap;
        bytes[at..at + len].copy_from_slice(&garbage(len, (gap + len) as u64));
        fs::write(&path, bytes).unwrap();

        // Before a writer opens it, verify reports it as a torn tail that no checkpoint covers.
        let report = verify_ro(dir.path());
        assert!(report.ok, "{:?}", report.failure);
        assert_eq!(report.records, EVENTS as u64);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);

        let log = open_and_check_records(dir.path(), EVENTS, &hashes);
        assert_eq!(
            log.recovery().torn_tail,
            Some(TornTail {
                segment: seg.name.clone(),
                offset: end as u64,
                bytes: (gap + len) as u64,
                saved_as: None,
            }),
            "garbage at +{gap}, {len} bytes"
        );
        let now = fs::read(&path).unwrap();
        assert!(now[end..].iter().all(|&b| b == 0), "garbage left behind");
        let r = log.append(&events(14, 1)[0]).unwrap();
        assert_eq!(r.seq, EVENTS as u64);
        drop(log);
        let report = verify_ro(dir.path());
        assert!(report.ok, "{:?}", report.failure);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(report.records, EVENTS as u64 + 1);
    }
}

/// Damage done to a segment file's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

#[test]
fn damage_before_valid_records_is_refused_and_not_repaired() {
    let base = tempfile::tempdir().unwrap();
    base_log(base.path());
    let seg = layouts(base.path()).pop().unwrap();
    let n = seg.frames.len();
    let cases: Vec<(&str, FrameAt, Damage)> = vec![
        ("flipped payload byte", seg.frames[n / 2], {
            let f = seg.frames[n / 2];
            Box::new(move |b: &mut Vec<u8>| b[f.offset + 100] ^= 0x08)
        }),
        ("zeroed run inside a record", seg.frames[n / 3], {
            let f = seg.frames[n / 3];
            Box::new(move |b: &mut Vec<u8>| b[f.offset + 40..f.offset + 90].fill(0))
        }),
        ("damaged length of the first record", seg.frames[0], {
            let f = seg.frames[0];
            Box::new(move |b: &mut Vec<u8>| b[f.offset] ^= 0x01)
        }),
        ("record removed", seg.frames[n / 2], {
            let f = seg.frames[n / 2];
            Box::new(move |b: &mut Vec<u8>| {
                b.drain(f.offset..f.offset + f.len);
            })
        }),
    ];
    for (what, frame, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let path = dir.path().join(&seg.name);
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, bytes).unwrap();
        let before = snapshot(dir.path());

        for attempt in 0..2 {
            match Log::open(dir.path(), buffered_opts()) {
                Err(e @ Error::Corrupt { .. }) => {
                    let Error::Corrupt { file, offset, .. } = &e else {
                        unreachable!()
                    };
                    assert_eq!(file, &path, "{what}: {e}");
                    assert_eq!(*offset, frame.offset as u64, "{what}: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(&seg.name), "{what}: {msg}");
                    assert!(msg.contains(&frame.offset.to_string()), "{what}: {msg}");
                }
                Err(e) => panic!("{what} (attempt {attempt}): expected Corrupt, got {e}"),
                Ok(_) => panic!("{what} (attempt {attempt}): a damaged log opened"),
            }
        }
        let mut after = snapshot(dir.path());
        after.retain(|(n, _)| n != auditlog::LOCK_FILE);
        let mut before = before;
        before.retain(|(n, _)| n != auditlog::LOCK_FILE);
        assert!(
            before == after,
            "{what}: the refused open changed the files"
        );

        // Verify agrees on where the damage is.
        let report = verify_ro(dir.path());
        let (kind, seq, segment, offset) = failure_of(&report);
        assert_eq!(
            (seq, segment, offset),
            (
                Some(frame.seq),
                Some(seg.name.clone()),
                Some(frame.offset as u64)
            ),
            "{what}: {:?}",
            report.failure
        );
        let want = if what == "record removed" {
            FailureKind::MissingRecords
        } else {
            FailureKind::CorruptFrame
        };
        assert_eq!(kind, want, "{what}");
    }
}

#[test]
fn crash_between_footer_and_trim_is_sealed_on_open() {
    // A seal writes the footer, syncs, then trims the preallocated tail. A crash between the
    // two leaves a valid footer followed by zeros: open finishes the seal and says so.
    let dir = tempfile::tempdir().unwrap();
    let (hashes, sealed, fo) = base_log_sealed(dir.path());
    fs::OpenOptions::new()
        .write(true)
        .open(&sealed.path)
        .unwrap()
        .set_len(SMALL_SEGMENT)
        .unwrap();
    assert!(verify_ro(dir.path()).ok);
    let log = open_and_check_records(dir.path(), EVENTS, &hashes);
    assert_eq!(log.recovery().sealed_on_open, vec![sealed.name.clone()]);
    assert_eq!(log.recovery().torn_tail, None);
    drop(log);
    assert_eq!(
        fs::metadata(&sealed.path).unwrap().len(),
        (fo + auditlog::format::FOOTER_LEN) as u64,
        "the seal was finished"
    );
    assert!(verify_ro(dir.path()).ok);
}

#[test]
fn footer_that_contradicts_its_records_is_refused_not_resealed() {
    // A sealed segment whose footer passes its CRC but names the wrong end of the records is
    // damage (verify reports it); open must refuse it rather than write a new footer over it,
    // which would erase the evidence.
    let base = tempfile::tempdir().unwrap();
    let (_, sealed, fo) = base_log_sealed(base.path());
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.path(), dir.path());
    let path = dir.path().join(&sealed.name);
    let mut b = fs::read(&path).unwrap();
    b[fo + 88] = b[fo + 88].wrapping_add(1); // records_end
    let crc = crc32fast::hash(&b[fo..fo + 124]);
    b[fo + 124..fo + 128].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &b).unwrap();

    let report = verify_ro(dir.path());
    let (kind, _, segment, offset) = failure_of(&report);
    assert_eq!(
        (kind, segment, offset),
        (
            FailureKind::CorruptFrame,
            Some(sealed.name.clone()),
            Some(fo as u64)
        )
    );

    let before = snapshot(dir.path());
    let opened = Log::open(dir.path(), buffered_opts());
    let outcome = match &opened {
        Ok(log) => format!("opened; recovery: {:?}", log.recovery()),
        Err(e) => e.to_string(),
    };
    drop(opened);
    let mut after = snapshot(dir.path());
    after.retain(|(n, _)| n != auditlog::LOCK_FILE);
    let mut before = before;
    before.retain(|(n, _)| n != auditlog::LOCK_FILE);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(n, bytes)| before.iter().find(|(m, _)| m == n).map(|(_, b)| b) != Some(bytes))
        .map(|(n, _)| n)
        .collect();
    assert!(
        outcome.contains("corrupt") && outcome.contains(&sealed.name),
        "expected Error::Corrupt naming {}, got: {outcome}",
        sealed.name
    );
    assert!(changed.is_empty(), "open rewrote {changed:?}");
    assert!(!verify_ro(dir.path()).ok, "the damage is still reported");
}

/// Puts the sealed segment `path` (footer at `fo`) back into the state of a seal in progress:
/// the preallocated length, and only the first half of the footer written.
fn unseal_mid_footer(path: &Path, fo: usize) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(SMALL_SEGMENT).unwrap();
    let half = auditlog::format::FOOTER_LEN / 2;
    std::os::unix::fs::FileExt::write_all_at(&f, &vec![0u8; half], (fo + half) as u64).unwrap();
}

#[test]
fn read_only_open_racing_a_seal_does_not_report_its_half_written_footer() {
    // A read-only log takes no lock: it can copy a rolled segment while the writer's worker is
    // writing its footer, and see half of it. That is not a torn record of a crash (nor damage
    // before later segments): the load reads such a segment again, and by then the seal has
    // finished. Here a thread finishes the footer and the trim 0-3 ms after the open starts,
    // while the test holds the directory's write lock as the writer would.
    let dir = tempfile::tempdir().unwrap();
    let (hashes, sealed, fo) = base_log_sealed(dir.path());
    let whole = fs::read(&sealed.path).unwrap();
    let lock = fs::File::open(dir.path().join(auditlog::LOCK_FILE)).unwrap();
    lock.lock().unwrap();
    for delay_ms in [0, 1, 2, 3, 1, 2, 0, 3] {
        unseal_mid_footer(&sealed.path, fo);
        let path = sealed.path.clone();
        let footer = whole[fo..].to_vec();
        let sealer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, &footer, fo as u64).unwrap();
            f.set_len((fo + footer.len()) as u64).unwrap();
        });
        let log = Log::open_read_only(dir.path(), key()).unwrap();
        let report = log.verify().unwrap();
        sealer.join().unwrap();
        assert!(
            report.ok && report.warnings.is_empty(),
            "delay {delay_ms} ms: {report:?}"
        );
        let got: Vec<_> = log.iter().map(|r| r.unwrap().hash).collect();
        assert_eq!(got, hashes, "delay {delay_ms} ms");
        assert_eq!(fs::read(&sealed.path).unwrap(), whole);
    }
}

#[test]
fn half_written_footer_that_stays_is_reported_by_a_read_only_verify() {
    // The second look (after 5, 10 and 20 ms, taken while a writer holds the lock) must not
    // hide real damage: a footer that stays half written in a segment that later segments
    // follow is still a failure, with or without a writer, and a read-only open changes
    // nothing.
    let dir = tempfile::tempdir().unwrap();
    let (_, sealed, fo) = base_log_sealed(dir.path());
    unseal_mid_footer(&sealed.path, fo);
    let before = snapshot(dir.path());
    let lock = fs::File::open(dir.path().join(auditlog::LOCK_FILE)).unwrap();
    for writer in [false, true] {
        if writer {
            lock.lock().unwrap();
        }
        let report = verify_ro(dir.path());
        let (kind, _, segment, offset) = failure_of(&report);
        assert_eq!(
            (kind, segment, offset),
            (
                FailureKind::CorruptFrame,
                Some(sealed.name.clone()),
                Some(fo as u64)
            ),
            "writer {writer}: {report:?}"
        );
        assert_eq!(snapshot(dir.path()), before, "writer {writer}");
    }
    drop(lock);
    // The writer's open finishes the seal: only a footer can be half written there.
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    assert!(log.verify().unwrap().ok);
}
