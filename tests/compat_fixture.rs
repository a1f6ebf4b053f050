//! Invariant: a log written by format version 1 (the committed fixture in `tests/fixtures/v1`)
//! stays readable, verifiable and appendable by every later build, with the same records and
//! the same chain values; a damaged copy of it fails verification.
//!
//! The fixture was created once by `generate_fixture` (ignored; run it with
//! `cargo test --test compat_fixture -- --ignored generate_fixture` only when a new fixture is
//! wanted, and then update the recorded values below).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::format::{decode_frame, HEADER_LEN, MIN_FORMAT_VERSION};

// This build must still read format version 1.
const _: () = assert!(MIN_FORMAT_VERSION <= 1);
use auditlog::sample::Generator;
use auditlog::{Durability, Error, FailureKind, HmacKey, Log, Options};

/// The fixture's key: 32 bytes of 0x42.
fn fixture_key() -> HmacKey {
    HmacKey::from_bytes(&[0x42; 32]).unwrap()
}

/// Events in the fixture: `Generator::standard(1)`, the first `FIXTURE_EVENTS` of them.
const FIXTURE_EVENTS: usize = 200;

// The fixture's recorded values, as printed by `generate_fixture` when the committed fixture
// was created. The log id is random at creation, and every chain value depends on it.
const FIXTURE_LOG_ID: &str = "d529428b6dd42cbb3f7d11d9ed0b170b";
const FIXTURE_SEGMENTS: [&str; 2] = ["00000000000000000000.seg", "00000000000000000197.seg"];
const FIXTURE_HASH_100: &str =
    "hmac-sha256:915023e4176d18d269934b64a611010579fd994825e52560a4e2d11dea7e9fd5";
const FIXTURE_LAST_HASH: &str =
    "hmac-sha256:7fdd787ec01790d1eff2587dafc8343e6e2a790ec9156c32efc089185de08c3b";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// A private copy of the fixture (tests never touch the committed files).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&fixture_dir(), dir.path());
    dir
}

#[test]
#[ignore = "writes tests/fixtures/v1; run once to create the fixture"]
fn generate_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(
        tmp.path(),
        Options::new(fixture_key())
            .durability(Durability::Buffered)
            .segment_bytes(64 * 1024),
    )
    .unwrap();
    let events: Vec<_> = Generator::standard(1).take(FIXTURE_EVENTS).collect();
    let receipts = log.append_batch(&events).unwrap();
    println!("log_id {}", log.log_id());
    println!("hash of seq 100 {}", receipts[100].hash_string());
    println!("last hash {}", receipts.last().unwrap().hash_string());
    drop(log);
    let out = fixture_dir();
    if out.exists() {
        fs::remove_dir_all(&out).unwrap();
    }
    // The log itself: metadata, segments and checkpoints. Not the lock file, and not index
    // side files, which are derived data that a reader rebuilds when they are missing.
    fs::create_dir_all(&out).unwrap();
    for entry in fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = common::file_name(&path);
        if name.ends_with(".seg")
            || name == auditlog::META_FILE
            || name == auditlog::CHECKPOINT_FILE
        {
            fs::copy(&path, out.join(&name)).unwrap();
            println!("{name}");
        }
    }
}

#[test]
fn fixture_verifies_with_its_recorded_values() {
    let dir = fixture_copy();
    let files: Vec<String> = common::segment_paths(dir.path())
        .iter()
        .map(|p| common::file_name(p))
        .collect();
    assert_eq!(files, FIXTURE_SEGMENTS);

    // The bytes say version 1.
    let meta = fs::read(dir.path().join(auditlog::META_FILE)).unwrap();
    assert_eq!(&meta[0..8], b"ALOGMETA");
    assert_eq!(u16::from_le_bytes([meta[8], meta[9]]), 1);
    for f in &files {
        let seg = fs::read(dir.path().join(f)).unwrap();
        assert_eq!(&seg[0..8], b"AUDLOGS\x01", "{f}");
        assert!(seg.len() > HEADER_LEN);
    }

    let log = Log::open_read_only(dir.path(), fixture_key()).unwrap();
    assert_eq!(log.log_id(), FIXTURE_LOG_ID);
    let report = log.verify().unwrap();
    assert!(report.ok, "{:?}", report.failure);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.records, FIXTURE_EVENTS as u64);
    assert_eq!(report.first_seq, Some(0));
    assert_eq!(report.last_seq, Some(FIXTURE_EVENTS as u64 - 1));
    assert_eq!(report.segments, 2);
    assert!(report.checkpoints_checked >= 2, "{report:?}");
    assert_eq!(report.last_hash.as_deref(), Some(FIXTURE_LAST_HASH));

    // Every record decodes to exactly the event that was written.
    let expected: Vec<_> = Generator::standard(1).take(FIXTURE_EVENTS).collect();
    let records: Vec<_> = log.iter().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), FIXTURE_EVENTS);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(r.event, expected[i], "seq {i}");
    }
    assert_eq!(
        records[0].event.event_id.as_deref(),
        Some("evt_000000000001")
    );
    assert_eq!(
        records[FIXTURE_EVENTS - 1].event.event_id.as_deref(),
        Some("evt_000000000200")
    );
    assert_eq!(
        format!("hmac-sha256:{}", auditlog::hex(&records[100].hash)),
        FIXTURE_HASH_100
    );
    let stats = log.stats().unwrap();
    assert_eq!(stats.events, FIXTURE_EVENTS as u64);
    assert_eq!(stats.segment_files, FIXTURE_SEGMENTS);

    // Only the fixture's key opens it.
    match Log::open_read_only(dir.path(), HmacKey::from_bytes(&[0x43; 32]).unwrap()) {
        Err(Error::WrongKey { log_id }) => assert_eq!(log_id, FIXTURE_LOG_ID),
        Err(e) => panic!("expected WrongKey, got {e}"),
        Ok(_) => panic!("another key opened the fixture"),
    }
}

#[test]
fn fixture_opens_for_writing_and_takes_appends() {
    let dir = fixture_copy();
    let log = Log::open(
        dir.path(),
        Options::new(fixture_key())
            .durability(Durability::Buffered)
            .segment_bytes(64 * 1024),
    )
    .unwrap();
    let rec = log.recovery();
    assert!(!rec.created);
    assert_eq!(rec.torn_tail, None);
    assert!(rec.sealed_on_open.is_empty());
    assert_eq!(log.next_seq(), FIXTURE_EVENTS as u64);
    let more: Vec<_> = Generator::standard(1)
        .skip(FIXTURE_EVENTS)
        .take(300)
        .collect();
    let receipts = log.append_batch(&more).unwrap();
    assert_eq!(receipts[0].seq, FIXTURE_EVENTS as u64);
    drop(log);

    let log = Log::open_read_only(dir.path(), fixture_key()).unwrap();
    let report = log.verify().unwrap();
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.records, FIXTURE_EVENTS as u64 + 300);
    assert!(report.segments >= 3);
    // The old records kept their chain values.
    let r = log.get(100).unwrap().unwrap();
    assert_eq!(
        format!("hmac-sha256:{}", auditlog::hex(&r.hash)),
        FIXTURE_HASH_100
    );
    let r = log.get(FIXTURE_EVENTS as u64 + 299).unwrap().unwrap();
    assert_eq!(r.event, more[299]);
}

#[test]
fn damaged_fixture_copy_fails_verification() {
    let dir = fixture_copy();
    let segs = common::layouts(dir.path());
    let sealed = &segs[0];
    assert!(sealed.footer.is_some());
    let frame = sealed.frames[150];
    common::xor_byte(&sealed.path, frame.offset + 77, 0x01);
    let report = verify_fixture(dir.path());
    assert!(!report.ok);
    let f = report.failure.unwrap();
    assert_eq!(
        (f.kind, f.seq, f.segment, f.offset),
        (
            FailureKind::CorruptFrame,
            Some(frame.seq),
            Some(sealed.name.clone()),
            Some(frame.offset as u64)
        )
    );

    // A damaged record in the active segment, followed by valid ones: a writer refuses it.
    let dir = fixture_copy();
    let active = common::layouts(dir.path()).pop().unwrap();
    assert!(active.frames.len() >= 2);
    let frame = active.frames[0];
    let mut bytes = fs::read(&active.path).unwrap();
    bytes[frame.offset + 40] ^= 0x80;
    assert!(decode_frame(&bytes[frame.offset..]).is_err());
    fs::write(&active.path, bytes).unwrap();
    match Log::open(dir.path(), Options::new(fixture_key())) {
        Err(Error::Corrupt { file, offset, .. }) => {
            assert_eq!(file, active.path);
            assert_eq!(offset, frame.offset as u64);
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a damaged fixture opened for writing"),
    }

    // A damaged metadata file.
    let dir = fixture_copy();
    common::xor_byte(&dir.path().join(auditlog::META_FILE), 20, 0x01);
    match Log::open_read_only(dir.path(), fixture_key()) {
        Err(Error::Corrupt { file, .. }) => {
            assert_eq!(file, dir.path().join(auditlog::META_FILE))
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a damaged metadata file opened"),
    }
}

fn verify_fixture(dir: &Path) -> auditlog::VerifyReport {
    Log::open_read_only(dir, fixture_key())
        .unwrap()
        .verify()
        .unwrap()
}
